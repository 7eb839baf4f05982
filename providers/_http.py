"""HTTP plumbing shared by the provider clients: timeouts, transport errors, retries, downloads.

The status -> error mapping both providers share is `providers._client.ProviderClient`; what
is here is the plumbing under it: which failures are retried, how long we wait, and that an
API key never reaches a log line or an exception message.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import random
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx
from pydantic import SecretStr
from tenacity import AsyncRetrying, RetryCallState, stop_after_attempt

from providers.errors import (
    OutputExpired,
    OutputTooLarge,
    ProviderConnectionError,
    ProviderError,
    ProviderServerError,
    ProviderTimeout,
    RateLimited,
    RequestNotSent,
    UnexpectedResponse,
)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]

# Reads answer fast; a clip download or a presigned PUT of a 10 MB image may not.
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
TRANSFER_TIMEOUT = httpx.Timeout(120.0, connect=10.0)
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)

BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 8.0
UNKNOWN_OUTCOME = (
    "the task may have been created and billed; recover it by task id, do not resubmit"
)


def as_secret(api_key: str | SecretStr | None) -> SecretStr:
    """Refuse a missing key up front: it should fail before any request is made."""
    secret = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key or "")
    value = secret.get_secret_value()
    if not isinstance(value, str) or not value.strip():
        raise ValueError("an API key is required (got an empty one)")
    return secret


def make_http_client(timeout: httpx.Timeout | None) -> httpx.AsyncClient:
    """One pooled client per provider client; no default headers, so no key lives on it."""
    return httpx.AsyncClient(timeout=timeout or DEFAULT_TIMEOUT, limits=DEFAULT_LIMITS)


class EnvironmentProxies(httpx.AsyncBaseTransport):
    """Sends each request the way the environment says (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY,
    NO_PROXY, read by the standard library as curl reads them): through a proxy or direct.

    For clients built with `trust_env=False` around a transport of our own (the counting one,
    bot/metrics.py): with `trust_env=True` httpx mounts its own proxy transports in front of
    ours, and requests through a proxy would go uncounted and without our connection limits.
    """

    def __init__(self, limits: httpx.Limits, environ: Mapping[str, str] | None = None) -> None:
        self._limits = limits
        self._proxies = _environment_proxies(environ)
        self._direct = httpx.AsyncHTTPTransport(limits=limits)
        self._via: dict[str, httpx.AsyncHTTPTransport] = {}

    def route(self, url: httpx.URL) -> str | None:
        """The proxy a request to `url` goes through; None = direct."""
        proxy = self._proxies.get(url.scheme) or self._proxies.get("all")
        if _is_loopback(url.host):
            return None  # this machine: a proxy's loopback would be another machine's
        # proxy_bypass_environment: NO_PROXY as the standard library reads it (CPython has it
        # since 2.7; typeshed leaves it out)
        bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
        if not proxy or bypass(url.host, self._proxies):
            return None
        return proxy

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        proxy = self.route(request.url)
        if proxy is None:
            return await self._direct.handle_async_request(request)
        if proxy not in self._via:
            self._via[proxy] = httpx.AsyncHTTPTransport(proxy=proxy, limits=self._limits)
        return await self._via[proxy].handle_async_request(request)

    async def aclose(self) -> None:
        for transport in (self._direct, *self._via.values()):
            await transport.aclose()


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _environment_proxies(environ: Mapping[str, str] | None) -> dict[str, str]:
    """{scheme or "all" or "no": value} from the *_proxy variables (either case)."""
    if environ is None:
        return urllib.request.getproxies_environment()
    found: dict[str, str] = {}
    for name, value in environ.items():
        if value and name.lower().endswith("_proxy"):
            found.setdefault(name.lower()[: -len("_proxy")], value)
    return found


class Redactor:
    """Removes one secret from text we did not write (provider bodies, transport messages)."""

    def __init__(self, secret: SecretStr) -> None:
        self._secret = secret

    def __call__(self, text: str) -> str:
        value = self._secret.get_secret_value()
        return text.replace(value, "[redacted]") if value else text

    def __repr__(self) -> str:
        return "Redactor(**********)"


async def send(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    provider: str,
    what: str,
    redact: Redactor,
    outcome_unknown: bool = False,
    **kwargs: Any,
) -> httpx.Response:
    """One request; transport failures become our typed errors.

    `outcome_unknown` marks a request that creates something billable (a submit): a failure
    with no answer must tell the caller that the task may exist.
    """
    try:
        return await http.request(method, url, **kwargs)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise RequestNotSent(
            _transport_message(provider, what, "could not connect", exc, redact, False)
            + ("; nothing was sent, so no task was created" if outcome_unknown else "")
        ) from None
    except httpx.TimeoutException as exc:
        raise ProviderTimeout(
            _transport_message(provider, what, "timed out", exc, redact, outcome_unknown)
        ) from None
    except httpx.TransportError as exc:
        raise ProviderConnectionError(
            _transport_message(provider, what, "got no answer", exc, redact, outcome_unknown)
        ) from None


def _transport_message(
    provider: str,
    what: str,
    verb: str,
    exc: Exception,
    redact: Redactor,
    outcome_unknown: bool,
) -> str:
    # `from None` above: the chained httpx error holds the request, and with it the key.
    detail = redact(str(exc)) or type(exc).__name__
    message = f"{provider} {what} {verb} ({type(exc).__name__}: {detail})"
    return f"{message}; {UNKNOWN_OUTCOME}" if outcome_unknown else message


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP-date; None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN / inf
        return None
    return max(seconds, 0.0)


def as_int(value: Any) -> int | None:
    """A whole number from a field that may be an int, a float or a numeric string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value == value and abs(value) != float("inf") else None
    if isinstance(value, str) and value.strip():
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return None
        return int(number) if number.is_finite() else None
    return None


def body_text(response: httpx.Response, redact: Redactor) -> str:
    try:
        return redact(response.text)[:2000]
    except (UnicodeDecodeError, LookupError):
        return "<undecodable body>"


def json_object(
    response: httpx.Response, *, provider: str, what: str, redact: Redactor
) -> dict[str, Any]:
    """The reply as a JSON object, or `UnexpectedResponse` (never a bare ValueError)."""
    try:
        data = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        raise UnexpectedResponse(
            f"{provider} {what}: HTTP {response.status_code} reply is not a JSON object",
            status_code=response.status_code,
            body=body_text(response, redact),
        )
    return data


def error_json(response: httpx.Response) -> Any:
    """An error reply's JSON, or None when its body is not JSON (gateways answer in HTML)."""
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        return None


def provider_message(data: Any) -> str:
    """The human text a provider put in an error body, whichever field it used."""
    if isinstance(data, Mapping):
        for key in ("message", "error", "msg", "detail", "reason"):
            value = data.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
        inner = data.get("data")
        if isinstance(inner, Mapping):
            return provider_message(inner)
    return ""


class Retrier:
    """Retries reads on 429, 5xx and lost connections with jittered exponential backoff.

    Wait before retry n (0-based) is `min(0.5 * 2**n, 8) * uniform(0.75, 1)`, or the
    provider's Retry-After when it is in (0, max_wait_s]. A Retry-After longer than
    `max_wait_s` stops the retries at once: the caller gets `RateLimited.retry_after` and
    can schedule the next attempt itself instead of hammering the provider.
    """

    def __init__(
        self,
        *,
        provider: str,
        max_retries: int,
        max_wait_s: float,
        sleep: Sleep | None = None,
        rng: random.Random | None = None,
        logger: logging.Logger,
    ) -> None:
        if max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, got {max_retries}")
        self.provider = provider
        self.max_retries = max_retries
        self.max_wait_s = max_wait_s
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._log = logger

    def should_retry(self, exc: BaseException | None) -> bool:
        if not isinstance(exc, ProviderError) or not exc.retryable:
            return False
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            return exc.retry_after <= self.max_wait_s
        return True

    def wait_s(self, retry_index: int, exc: BaseException | None) -> float:
        if (
            isinstance(exc, RateLimited)
            and exc.retry_after is not None
            and (0 < exc.retry_after <= self.max_wait_s)
        ):
            return exc.retry_after
        backoff = min(BACKOFF_BASE_S * 2**retry_index, BACKOFF_CAP_S)
        return backoff * self._rng.uniform(0.75, 1.0)

    async def call(self, fn: Callable[[], Awaitable[T]], *, what: str) -> T:
        def retry(state: RetryCallState) -> bool:
            return state.outcome is not None and self.should_retry(state.outcome.exception())

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            return self.wait_s(state.attempt_number - 1, exc)

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            delay = state.next_action.sleep if state.next_action else 0.0
            self._log.warning(
                "%s %s failed (%s); retry %d/%d in %.2f s",
                self.provider,
                what,
                type(exc).__name__,
                state.attempt_number,
                self.max_retries,
                delay,
            )

        kwargs: dict[str, Any] = {}
        if self._sleep is not None:
            kwargs["sleep"] = self._sleep
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_retries + 1),
            retry=retry,
            wait=wait,
            before_sleep=before_sleep,
            reraise=True,
            **kwargs,
        )
        return await retrying(fn)


async def download(
    http: httpx.AsyncClient,
    url: str,
    *,
    max_bytes: int,
    provider: str,
    redact: Redactor,
    retrier: Retrier,
) -> bytes:
    """Fetch an output clip WITHOUT our Authorization header (CDN and S3 links are presigned).

    403/404 mean the link lapsed (`OutputExpired`); 429/5xx and lost connections are retried.
    The body is streamed and abandoned as soon as it passes `max_bytes`.
    """
    if not url.startswith(("http://", "https://")):
        raise ValueError("an output URL must start with http:// or https://")
    if max_bytes <= 0:
        raise ValueError(f"max_bytes must be positive, got {max_bytes}")

    async def once() -> bytes:
        try:
            async with http.stream(
                "GET", url, timeout=TRANSFER_TIMEOUT, follow_redirects=True
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    _raise_for_download(response, provider=provider, redact=redact)
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > max_bytes:
                    raise _too_large(provider, max_bytes, int(declared))
                chunks: list[bytes] = []
                received = 0
                async for chunk in response.aiter_bytes():
                    received += len(chunk)
                    if received > max_bytes:
                        raise _too_large(provider, max_bytes, None)
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.TimeoutException as exc:
            raise ProviderTimeout(
                _transport_message(provider, "output download", "timed out", exc, redact, False)
            ) from None
        except httpx.TransportError as exc:
            raise ProviderConnectionError(
                _transport_message(provider, "output download", "got no answer", exc, redact, False)
            ) from None

    return await retrier.call(once, what="output download")


def _too_large(provider: str, max_bytes: int, declared: int | None) -> OutputTooLarge:
    size = f"{declared} bytes" if declared is not None else f"more than {max_bytes} bytes"
    return OutputTooLarge(f"{provider} output is {size}; the limit is {max_bytes} bytes")


def _raise_for_download(response: httpx.Response, *, provider: str, redact: Redactor) -> None:
    status = response.status_code
    body = body_text(response, redact)
    if status in (403, 404, 410):
        raise OutputExpired(
            f"{provider} output URL answered HTTP {status}: the link has expired or was removed",
            status_code=status,
            body=body,
        )
    if status == 429:
        raise RateLimited(
            f"{provider} output download was rate limited (HTTP 429)",
            body=body,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )
    if status >= 500:
        raise ProviderServerError(
            f"{provider} output download failed with HTTP {status}", status_code=status, body=body
        )
    raise UnexpectedResponse(
        f"{provider} output download answered HTTP {status}", status_code=status, body=body
    )
