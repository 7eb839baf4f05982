"""Shared HTTP plumbing: Retry-After parsing, the backoff schedule, transport errors, downloads."""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime

import httpx
import pytest
from pydantic import SecretStr

from providers._http import (
    Redactor,
    Retrier,
    as_int,
    as_secret,
    download,
    parse_retry_after,
    send,
)
from providers.errors import (
    AuthenticationError,
    OutputExpired,
    OutputTooLarge,
    ProviderConnectionError,
    ProviderServerError,
    ProviderTimeout,
    RateLimited,
    RequestNotSent,
)
from tests.providers.helpers import Handler, Sleeps

LOG = logging.getLogger("tests.http")
KEY = SecretStr("key-SHOULD-NOT-LEAK")


def retrier(sleeps: Sleeps, *, max_retries: int = 3, max_wait_s: float = 60.0) -> Retrier:
    return Retrier(
        provider="test",
        max_retries=max_retries,
        max_wait_s=max_wait_s,
        sleep=sleeps,
        rng=random.Random(7),
        logger=LOG,
    )


# --- Retry-After ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", 3.0),
        (" 1.5 ", 1.5),
        ("0", 0.0),
        ("-4", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_retry_after_http_date() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Wed, 01 Jan 2025 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now=now) == 0.0


# --- backoff schedule ----------------------------------------------------------------------


def test_backoff_is_jittered_exponential_and_capped() -> None:
    r = retrier(Sleeps())
    for n in range(8):
        base = min(0.5 * 2**n, 8.0)
        for _ in range(50):
            wait = r.wait_s(n, ProviderServerError("x"))
            assert 0.75 * base <= wait <= base


def test_retry_after_in_range_is_used_verbatim() -> None:
    r = retrier(Sleeps(), max_wait_s=10)
    assert r.wait_s(0, RateLimited("x", retry_after=7.0)) == 7.0
    # Zero or absent: fall back to backoff.
    assert r.wait_s(0, RateLimited("x", retry_after=0.0)) <= 0.5
    assert r.wait_s(0, RateLimited("x", retry_after=None)) <= 0.5


async def test_retries_then_succeeds_with_recorded_waits() -> None:
    sleeps = Sleeps()
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RateLimited("slow down", retry_after=2.0)
        if calls == 2:
            raise ProviderServerError("boom", status_code=503)
        if calls == 3:
            raise ProviderConnectionError("reset")
        return "ok"

    assert await retrier(sleeps).call(flaky, what="read") == "ok"
    assert calls == 4
    assert sleeps.waits[0] == 2.0
    assert 0.75 * 1.0 <= sleeps.waits[1] <= 1.0  # second retry: base 1 s
    assert 0.75 * 2.0 <= sleeps.waits[2] <= 2.0


async def test_retries_exhausted_reraises_last_error() -> None:
    sleeps = Sleeps()
    calls = 0

    async def always_503() -> None:
        nonlocal calls
        calls += 1
        raise ProviderServerError(f"boom {calls}", status_code=503)

    with pytest.raises(ProviderServerError, match="boom 3"):
        await retrier(sleeps, max_retries=2).call(always_503, what="read")
    assert calls == 3
    assert len(sleeps.waits) == 2


async def test_non_retryable_errors_are_not_retried() -> None:
    calls = 0

    async def unauthorised() -> None:
        nonlocal calls
        calls += 1
        raise AuthenticationError("no", status_code=401)

    with pytest.raises(AuthenticationError):
        await retrier(Sleeps()).call(unauthorised, what="read")
    assert calls == 1


async def test_retry_after_beyond_limit_stops_at_once() -> None:
    sleeps = Sleeps()
    calls = 0

    async def limited() -> None:
        nonlocal calls
        calls += 1
        raise RateLimited("later", retry_after=120.0)

    with pytest.raises(RateLimited) as caught:
        await retrier(sleeps, max_wait_s=60).call(limited, what="read")
    assert caught.value.retry_after == 120.0
    assert calls == 1
    assert sleeps.waits == []


async def test_zero_retries_means_one_attempt() -> None:
    calls = 0

    async def down() -> None:
        nonlocal calls
        calls += 1
        raise ProviderConnectionError("down")

    with pytest.raises(ProviderConnectionError):
        await retrier(Sleeps(), max_retries=0).call(down, what="read")
    assert calls == 1


def test_negative_retries_are_refused() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        retrier(Sleeps(), max_retries=-1)


# --- transport errors ----------------------------------------------------------------------


def raising_transport(exc: Exception) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return httpx.MockTransport(handler)


async def submit_through(exc: Exception) -> None:
    """A submit-like POST (`outcome_unknown`) over a transport that fails with `exc`."""
    async with httpx.AsyncClient(transport=raising_transport(exc)) as http:
        await send(
            http,
            "POST",
            "http://x/y",
            provider="p",
            what="submit",
            redact=Redactor(KEY),
            outcome_unknown=True,
        )


async def test_timeout_maps_to_provider_timeout_and_says_task_may_exist() -> None:
    with pytest.raises(ProviderTimeout) as caught:
        await submit_through(httpx.ReadTimeout("read timed out"))
    assert "may have been created" in str(caught.value)
    assert caught.value.__cause__ is None  # the httpx request (with its headers) is not chained


async def test_connect_error_maps_to_connection_error_and_redacts() -> None:
    leak = httpx.ConnectError(f"refused for {KEY.get_secret_value()}")
    async with httpx.AsyncClient(transport=raising_transport(leak)) as http:
        with pytest.raises(ProviderConnectionError) as caught:
            await send(http, "GET", "http://x/y", provider="p", what="read", redact=Redactor(KEY))
    assert isinstance(caught.value, RequestNotSent)
    assert KEY.get_secret_value() not in str(caught.value)
    assert "may have been created" not in str(caught.value)


@pytest.mark.parametrize(
    "exc", [httpx.ConnectError("refused"), httpx.ConnectTimeout("slow"), httpx.PoolTimeout("full")]
)
async def test_never_connected_is_definite_even_for_a_submit(exc: Exception) -> None:
    with pytest.raises(RequestNotSent, match="no task was created") as caught:
        await submit_through(exc)
    assert "may have been created" not in str(caught.value)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (httpx.ReadError("reset"), ProviderConnectionError),
        (httpx.RemoteProtocolError("closed"), ProviderConnectionError),
        (httpx.WriteTimeout("slow"), ProviderTimeout),
    ],
)
async def test_lost_after_sending_is_unknown_for_a_submit(exc: Exception, kind: type) -> None:
    with pytest.raises(kind, match="may have been created") as caught:
        await submit_through(exc)
    assert not isinstance(caught.value, RequestNotSent)


def test_as_secret_refuses_empty_key() -> None:
    for missing in ("  ", "", None, SecretStr("")):
        with pytest.raises(ValueError, match="API key"):
            as_secret(missing)
    assert repr(Redactor(KEY)).count("key-") == 0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, 3),
        (3.9, 3),
        ("3600", 3600),
        ("12.0", 12),
        ("", None),
        ("x", None),
        (True, None),
        (None, None),
        (float("nan"), None),
        ("Infinity", None),
    ],
)
def test_as_int_tolerates_strings(value: object, expected: int | None) -> None:
    assert as_int(value) == expected


# --- downloads -----------------------------------------------------------------------------


async def fetch(
    handler: Handler, url: str = "https://cdn/x.mp4", *, sleeps: Sleeps | None = None
) -> bytes:
    """`download` with a 100-byte limit from a server that answers with `handler`."""
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        return await download(
            http,
            url,
            max_bytes=100,
            provider="p",
            redact=Redactor(KEY),
            retrier=retrier(sleeps or Sleeps()),
        )


async def test_download_sends_no_authorization_and_follows_statuses() -> None:
    seen: list[httpx.Request] = []
    statuses = iter([503, 200])

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(next(statuses), content=b"clip-bytes")

    sleeps = Sleeps()
    data = await fetch(handler, sleeps=sleeps)
    assert data == b"clip-bytes"
    assert len(seen) == 2 and len(sleeps.waits) == 1
    assert all("authorization" not in r.headers for r in seen)


@pytest.mark.parametrize("status", [403, 404])
async def test_download_expired_link(status: int) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(status, text="<Error>AccessDenied</Error>")

    with pytest.raises(OutputExpired) as caught:
        await fetch(handler)
    assert caught.value.status_code == status
    assert calls == 1  # an expired link does not come back by retrying


async def test_download_over_limit_is_abandoned() -> None:
    def declared(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"x" * 200)

    def streamed(request: httpx.Request) -> httpx.Response:
        async def body():  # no content-length: the limit is enforced while reading
            for _ in range(10):
                yield b"x" * 50

        return httpx.Response(200, content=body())

    for handler in (declared, streamed):
        with pytest.raises(OutputTooLarge, match="limit is 100 bytes"):
            await fetch(handler)


async def test_download_refuses_non_http_urls() -> None:
    with pytest.raises(ValueError, match="http"):
        await fetch(lambda r: httpx.Response(200), "file:///etc/passwd")
