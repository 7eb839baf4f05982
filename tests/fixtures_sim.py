"""Simulator fixtures (a pytest plugin loaded from tests/conftest.py).

Override `sim_config` in a test module (or parametrize it indirectly) to change knobs:

    @pytest.fixture
    def sim_config() -> SimulatorConfig:
        return SimulatorConfig(api_keys=frozenset({"sim-key"}), progression="time")
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from PIL import Image

from providers.simulator import Simulator, SimulatorConfig

SIM_API_KEY = "sim-key"


@pytest.fixture
def sim_config() -> SimulatorConfig:
    """Deterministic by default: status moves per poll (1st GET processing, 2nd terminal)."""
    return SimulatorConfig(
        api_keys=frozenset({SIM_API_KEY}),
        progression="polls",
        polls_to_processing=1,
        polls_to_complete=2,
        clip_mode="static",
        webhook_backoff_s=0.0,
    )


@pytest.fixture
async def simulator(sim_config: SimulatorConfig) -> AsyncIterator[Simulator]:
    async with Simulator(sim_config, host="127.0.0.1", port=0) as sim:
        yield sim


def make_png(width: int = 320, height: int = 240) -> bytes:
    """A small gradient PNG, generated here so no binary fixture lives in the repo."""
    img = Image.new("RGB", (width, height))
    img.putdata([
        (x * 255 // width, y * 255 // height, 128) for y in range(height) for x in range(width)
    ])
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def png_file(tmp_path: Path) -> Path:
    """A 320x240 PNG on disk."""
    path = tmp_path / "input.png"
    path.write_bytes(make_png(320, 240))
    return path


@pytest.fixture(scope="session")
def sample_png() -> bytes:
    return make_png()


@pytest.fixture
async def sim_http(simulator: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    """Plain httpx against the simulator, authenticated with the default key."""
    async with httpx.AsyncClient(
        base_url=simulator.base_url,
        headers={"Authorization": f"Bearer {SIM_API_KEY}"},
        trust_env=False,
    ) as client:
        yield client


@dataclass
class ReceivedHook:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver:
    """A tiny HTTP endpoint on loopback that records webhook deliveries.

    `statuses` scripts the replies in order (then 200). Set `hold` to an event to keep the
    next delivery unanswered until it is set (a receiver timeout). `wait_for(n)` returns once
    n deliveries arrived; it waits on an event, not a clock (the timeout only guards a hang).
    """

    def __init__(self) -> None:
        self.received: list[ReceivedHook] = []
        self.statuses: list[int] = []
        self.url = ""
        self.hold: asyncio.Event | None = None
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        self.received.append(
            ReceivedHook(request.path_qs, dict(request.headers), await request.read())
        )
        self._changed.set()
        hold, self.hold = self.hold, None
        if hold is not None:
            await hold.wait()
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status, text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_for(self, count: int, *, guard_s: float = 20.0) -> list[ReceivedHook]:
        async def _wait() -> None:
            while len(self.received) < count:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(_wait(), guard_s)
        return self.received


@pytest.fixture
async def webhook_receiver() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    await receiver.start()
    yield receiver
    await receiver.stop()
