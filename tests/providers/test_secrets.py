"""API keys never reach logs (ours, httpx's, httpcore's at DEBUG), exception text or reprs.

Every path that can fail is driven over real HTTP against the simulator, including a server
that echoes the key back in its error body, and then everything observable is searched.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from providers.errors import ProviderError
from providers.novita import NovitaClient
from providers.simulator import Fault, Simulator, SimulatorConfig
from providers.wavespeed import WaveSpeedClient
from tests.fixtures_sim import WebhookReceiver

WS_KEY = "ws-live-SECRET-7f3a9c0d1e2b4a5f"
NV_KEY = "nv-live-SECRET-0a1b2c3d4e5f6789"
BAD_KEY = "bad-live-SECRET-deadbeefcafe0000"
KEYS = (WS_KEY, NV_KEY, BAD_KEY)
SORA = "/api/v3/openai/sora-2/image-to-video"
WAN = "/v3/async/wan-i2v"
LOGGERS = ("", "httpx", "httpcore", "providers", "providers.wavespeed", "providers.novita")


@pytest.fixture
def sim_config() -> SimulatorConfig:
    return SimulatorConfig(
        api_keys=frozenset({WS_KEY, NV_KEY}),
        progression="polls",
        polls_to_processing=1,
        polls_to_complete=2,
        clip_mode="static",
        webhook_backoff_s=0.0,
    )


class Evidence:
    """Everything a key could leak into: exceptions (text, repr, traceback) and reprs."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.errors = 0

    async def expect_error(self, call: Callable[[], Awaitable[Any]]) -> ProviderError:
        try:
            await call()
        except ProviderError as exc:
            self.errors += 1
            self.texts += [str(exc), repr(exc), repr(exc.args), str(getattr(exc, "body", ""))]
            self.texts.append("".join(traceback.format_exception(exc)))
            return exc
        raise AssertionError("expected a provider error")

    def assert_clean(self, caplog: pytest.LogCaptureFixture, *extra: str) -> None:
        haystack = [*self.texts, *extra, caplog.text]
        for record in caplog.records:
            haystack += [record.getMessage(), repr(record.args)]
        for key in KEYS:
            leaks = [text for text in haystack if key in text]
            assert not leaks, f"key leaked into: {leaks[0][:300]}"


async def no_sleep(seconds: float) -> None:
    return None


async def test_keys_never_leak(
    simulator: Simulator,
    sample_png: bytes,
    webhook_receiver: WebhookReceiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    hook_reprs: list[str] = []

    async def on_request(request: httpx.Request) -> None:
        # What a logging event hook would print: httpx masks the Authorization value.
        hook_reprs.extend([repr(request), repr(request.headers), str(request.url)])
        logging.getLogger("tests.hooks").debug("request %s %s", request, request.headers)

    shared = httpx.AsyncClient(event_hooks={"request": [on_request]}, trust_env=False)
    ev = Evidence()
    base = simulator.base_url
    ws = WaveSpeedClient(SecretStr(WS_KEY), base_url=base, http=shared, sleep=no_sleep)
    nv = NovitaClient(NV_KEY, base_url=base, http=shared, sleep=no_sleep)
    bad_ws = WaveSpeedClient(BAD_KEY, base_url=base, http=shared, sleep=no_sleep)
    bad_nv = NovitaClient(BAD_KEY, base_url=base, http=shared, sleep=no_sleep)
    try:
        # Happy paths (logged by httpx at INFO and httpcore at DEBUG).
        media = await ws.upload(sample_png, filename="in.png", content_type="image/png")
        task = await ws.submit(
            SORA,
            {"image": media.url, "prompt": "x", "duration": 4},
            webhook_url=f"{webhook_receiver.url}/hooks/ws",
        )
        await ws.get(task.task_id)
        done = await ws.get(task.task_id)
        await ws.download(done.outputs[0], max_bytes=20_000_000)
        await ws.balance_micros()
        nv_task = await nv.submit(
            WAN, {"image_url": media.url, "prompt": "x", "width": 832, "height": 480}
        )
        await nv.get(nv_task.task_id)

        # Wrong keys.
        await ev.expect_error(lambda: bad_ws.submit(SORA, {"prompt": "x"}))
        await ev.expect_error(lambda: bad_ws.get(task.task_id))
        await ev.expect_error(lambda: bad_nv.submit(WAN, {"prompt": "x"}))
        await ev.expect_error(lambda: bad_nv.get(nv_task.task_id))

        # A server that echoes the key it was sent, in an error body and in an envelope.
        simulator.add_fault(
            Fault(
                method="POST",
                path_prefix=SORA,
                status=400,
                json={"code": 400, "message": f"bad key {WS_KEY}"},
            )
        )
        await ev.expect_error(lambda: ws.submit(SORA, {"prompt": "x"}))
        simulator.add_fault(
            Fault(
                method="GET",
                path_prefix="/api/v3/balance",
                status=200,
                json={"code": 401, "message": f"Bearer {WS_KEY} inactive"},
            )
        )
        await ev.expect_error(ws.balance_micros)
        simulator.add_fault(
            Fault(
                method="POST",
                path_prefix=WAN,
                status=403,
                json={"reason": "INVALID_API_KEY", "message": f"key {NV_KEY} is not valid"},
            )
        )
        await ev.expect_error(lambda: nv.submit(WAN, {"prompt": "x"}))
        simulator.add_fault(
            Fault(
                method="GET",
                path_prefix="/v3/async",
                status=500,
                body=f"upstream rejected {NV_KEY}",
                times=10,
            )
        )
        await ev.expect_error(lambda: nv.get(nv_task.task_id))  # retried: warnings logged

        # Lost connections and retries exhausted.
        simulator.add_fault(Fault(method="POST", path_prefix=SORA, drop_connection=True))
        await ev.expect_error(lambda: ws.submit(SORA, {"prompt": "x"}))
        simulator.add_fault(
            Fault(method="GET", path_prefix="/api/v3/predictions", times=10, drop_connection=True)
        )
        await ev.expect_error(lambda: ws.get(task.task_id))
        simulator.expire_outputs()
        await ev.expect_error(lambda: ws.download(done.outputs[0], max_bytes=10**8))
    finally:
        await shared.aclose()

    # Nothing leaked anywhere, and the checks really saw the traffic.
    assert ev.errors == 11
    assert any("HTTP Request" in r.getMessage() for r in caplog.records if r.name == "httpx")
    assert any(r.name.startswith("httpcore") for r in caplog.records)
    assert any("retry" in r.getMessage() for r in caplog.records if r.name.startswith("providers"))
    reprs = [repr(c) for c in (ws, nv, bad_ws, bad_nv)] + [str(vars(c)) for c in (ws, nv)]
    ev.assert_clean(caplog, *hook_reprs, *reprs)


async def test_refused_connection_and_repr_do_not_leak(caplog: pytest.LogCaptureFixture) -> None:
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    ev = Evidence()
    # Port 1 on loopback: nothing listens there.
    async with WaveSpeedClient(
        WS_KEY, base_url="http://127.0.0.1:1", sleep=no_sleep, max_retries=1
    ) as ws:
        await ev.expect_error(lambda: ws.submit(SORA, {"prompt": "x"}))
        await ev.expect_error(lambda: ws.get("abc"))
        ev.texts.append(repr(ws))
    assert ev.errors == 2
    ev.assert_clean(caplog)


def test_a_leak_would_be_caught(caplog: pytest.LogCaptureFixture) -> None:
    """The detector itself works: a logged key fails `assert_clean`."""
    caplog.set_level(logging.DEBUG)
    logging.getLogger("providers.test").debug("oops %s", WS_KEY)
    with pytest.raises(AssertionError, match="key leaked"):
        Evidence().assert_clean(caplog)
