"""The half of a provider client that does not depend on the provider.

`ProviderClient` holds the key, the pooled `httpx.AsyncClient` and the retry policy, sends
authorised requests to the API base URL only, and maps the HTTP statuses both providers
agree on to errors. Subclasses add the provider's endpoints, its reply shapes and the error
signals only it sends (WaveSpeed's envelope codes, Novita's `reason`).
"""

from __future__ import annotations

import logging
import random
from typing import Any, ClassVar, Self

import httpx
from pydantic import SecretStr

from providers._http import (
    UNKNOWN_OUTCOME,
    Redactor,
    Retrier,
    Sleep,
    as_secret,
    body_text,
    make_http_client,
    parse_retry_after,
    send,
)
from providers._http import download as download_output
from providers.errors import (
    AuthenticationError,
    InvalidRequest,
    NotFound,
    ProviderAPIError,
    ProviderServerError,
    RateLimited,
    UnexpectedResponse,
)


class ProviderClient:
    """Base of the provider clients; `sleep` and `rng` replace the back-off wait and jitter."""

    name: str  # the provider, as `providers.base.VideoProvider` names it
    default_base_url: ClassVar[str]
    endpoint_example: ClassVar[str]  # shown when a caller passes something that is not a path
    log: ClassVar[logging.Logger]

    def __init__(
        self,
        api_key: str | SecretStr,
        *,
        base_url: str | None = None,
        http: httpx.AsyncClient | None = None,
        timeout: httpx.Timeout | None = None,
        max_retries: int = 3,
        max_retry_wait_s: float = 60.0,
        sleep: Sleep | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._key = as_secret(api_key)
        self._redact = Redactor(self._key)
        given = self.default_base_url if base_url is None else base_url
        self.base_url = given.rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {given!r}")
        self._owns_http = http is None
        self._http = http or make_http_client(timeout)
        self._timeout = timeout  # per request only when given, else the client's own
        self._retrier = Retrier(
            provider=self.name,
            max_retries=max_retries,
            max_wait_s=max_retry_wait_s,
            sleep=sleep,
            rng=rng,
            logger=self.log,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def download(self, url: str, *, max_bytes: int) -> bytes:
        """Fetch an output clip (presigned; no key sent); `OutputExpired` on 403/404."""
        return await download_output(
            self._http,
            url,
            max_bytes=max_bytes,
            provider=self.name,
            redact=self._redact,
            retrier=self._retrier,
        )

    # --- plumbing for subclasses ---

    def _raise_for_status(
        self, response: httpx.Response, *, what: str, outcome_unknown: bool = False
    ) -> dict[str, Any]:
        """The JSON object of a successful reply; every other reply raises. Per provider."""
        raise NotImplementedError

    def _checked_endpoint(self, endpoint: str) -> str:
        """A path on this API; refusing absolute URLs keeps the key from reaching another host."""
        if not endpoint.startswith("/") or endpoint.startswith("//") or "://" in endpoint:
            raise ValueError(
                f"endpoint must be a path such as {self.endpoint_example}, got {endpoint!r}"
            )
        return endpoint

    async def _post(
        self,
        path: str,
        *,
        what: str,
        json: Any,
        outcome_unknown: bool = False,
        params: dict[str, str] | None = None,
        request_timeout: httpx.Timeout | None = None,
    ) -> tuple[httpx.Response, dict[str, Any]]:
        """One authorised POST, never retried; the response (for error bodies) and its JSON."""
        response = await send(
            self._http,
            "POST",
            self.base_url + path,
            provider=self.name,
            what=what,
            redact=self._redact,
            outcome_unknown=outcome_unknown,
            json=json,
            params=params,
            headers=self._headers(json_body=True),
            **({"timeout": request_timeout} if request_timeout is not None else self._timeout_kw()),
        )
        return response, self._raise_for_status(
            response, what=what, outcome_unknown=outcome_unknown
        )

    async def _read(
        self, path: str, *, what: str, params: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """An authorised GET, retried on 429/5xx/lost connections."""

        async def once() -> dict[str, Any]:
            response = await send(
                self._http,
                "GET",
                self.base_url + path,
                provider=self.name,
                what=what,
                redact=self._redact,
                params=params,
                headers=self._headers(),
                **self._timeout_kw(),
            )
            return self._raise_for_status(response, what=what)

        return await self._retrier.call(once, what=what)

    def _headers(self, *, json_body: bool = False) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self._key.get_secret_value()}"}
        if json_body:
            headers["Content-Type"] = "application/json"
        return headers

    def _timeout_kw(self) -> dict[str, Any]:
        return {"timeout": self._timeout} if self._timeout is not None else {}

    def _status_error(
        self,
        code: int,
        text: str,
        response: httpx.Response,
        *,
        outcome_unknown: bool,
        envelope: bool = False,
    ) -> ProviderAPIError:
        """The error for a failure status both providers use the same way.

        `code` is the HTTP status, or with `envelope` a code inside a 200 reply: envelope
        codes outside 5xx (WaveSpeed's 5004) are not server errors, and an envelope 2xx is
        not the "2xx other than 200" reply that leaves a submit's outcome unknown. The
        provider checks its own "wallet empty" signal before calling this.
        """
        kw: dict[str, Any] = {
            "status_code": code,
            "body": body_text(response, self._redact),
            "provider": self.name,
        }
        if code in (401, 403):
            return AuthenticationError(text, **kw)
        if code in (400, 413, 422):
            return InvalidRequest(text, **kw)
        if code == 404:
            return NotFound(text, **kw)
        if code == 429:
            return RateLimited(
                text, retry_after=parse_retry_after(response.headers.get("retry-after")), **kw
            )
        if code >= 500 and (code < 600 or not envelope):
            return ProviderServerError(
                f"{text}; {UNKNOWN_OUTCOME}" if outcome_unknown else text, **kw
            )
        if 200 <= code < 300 and not envelope:
            return UnexpectedResponse(
                f"{text}; only HTTP 200 counts as success"
                + (f"; {UNKNOWN_OUTCOME}" if outcome_unknown else ""),
                **kw,
            )
        return ProviderAPIError(text, **kw)
