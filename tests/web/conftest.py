"""The web endpoint, served for real on loopback over a real App (simulator, database)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from bot.app import App, open_app
from bot.cli.processes import RouteFactory
from bot.models import AnimateRequest, ImageSource
from bot.sinks import FileSink, SinkRegistry
from bot.web import make_runner
from providers.simulator import Simulator, SimulatorConfig
from storage import ACTIVE, Job
from tests.bot.conftest import Said, settings_for
from tests.fixtures_sim import SIM_API_KEY, make_png

PROMPT = "the sea breathes"


@pytest.fixture
def sim_config() -> SimulatorConfig:
    """Tasks finish only when a test says so (`complete_now`), never because we polled."""
    return SimulatorConfig(
        api_keys=frozenset({SIM_API_KEY}),
        progression="polls",
        polls_to_processing=1,
        polls_to_complete=10_000,
        clip_mode="static",
        webhook_backoff_s=0.0,
    )


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@dataclass
class Endpoint:
    app: App
    url: str
    said: Said
    out: Path
    finals: dict[str, asyncio.Event] = field(default_factory=dict)

    def final(self, job_id: str) -> asyncio.Event:
        return self.finals.setdefault(job_id, asyncio.Event())

    async def animate(self, png: Path, *, model: str = "openvideo", **options: Any) -> Job:
        sub = await self.app.service.animate(
            AnimateRequest(
                platform="cli",
                event_id=uuid.uuid4().hex,
                user_id="alice",
                image=ImageSource(path=str(png)),
                prompt=PROMPT,
                model=model,
                options=options or ({"duration": 5} if model == "openvideo" else {}),
                sink={"kind": "file", "dir": str(self.out)},
            )
        )
        return sub.job

    async def delivered(self, job_id: str) -> Job:
        """Wait (on an event, not a clock) until the runner ends the job."""
        job = await self.app.db.jobs.get(job_id)
        if job is None or job.status in ACTIVE:
            await asyncio.wait_for(self.final(job_id).wait(), 60)
        job = await self.app.db.jobs.get(job_id)
        assert job is not None
        return job

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        async with httpx.AsyncClient(trust_env=False) as http:
            return await http.get(self.url + path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        async with httpx.AsyncClient(trust_env=False) as http:
            return await http.post(self.url + path, **kwargs)


@contextlib.asynccontextmanager
async def serve_endpoint(
    simulator: Simulator,
    database_url: str,
    tmp_path: Path,
    *,
    runner: bool = True,
    routes: Sequence[RouteFactory] = (),
    clock: Callable[[], float] | None = None,
    owner: str = "web-test",
    public: bool = True,
    **overrides: Any,
) -> AsyncIterator[Endpoint]:
    """A real App, its web endpoint on a loopback socket, and (unless `runner` is False) its
    job runner. PUBLIC_BASE_URL points at that socket, so providers call back for real."""
    sock = free_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    values: dict[str, Any] = {
        "time_scale": 1.0,  # the poll safety net stays minutes away: callbacks must do it
        "clip_dir": str(tmp_path / "clips"),
        **overrides,
    }
    if public:
        values.setdefault("public_base_url", url)
    settings = settings_for(simulator, database_url, **values)
    said = Said()
    out = tmp_path / "out"
    sinks = SinkRegistry({"file": FileSink(said, default_dir=out)})
    kwargs: dict[str, Any] = {"sinks": sinks, "owner": owner}
    if clock is not None:
        kwargs["clock"] = clock
    async with open_app(settings, **kwargs) as app:
        await app.wakeups.start()
        ep = Endpoint(app, url, said, out)

        def on_final(job: Job) -> None:
            ep.final(job.id).set()

        app.runner.on_final = on_final
        web_runner = make_runner(app, routes)
        await web_runner.setup()
        await web.SockSite(web_runner, sock).start()
        stop = asyncio.Event()
        task = asyncio.create_task(app.runner.run(stop)) if runner else None
        try:
            yield ep
        finally:
            stop.set()
            if task is not None:
                await task
            await web_runner.cleanup()


@pytest.fixture
def png_file(tmp_path: Path) -> Path:
    path = tmp_path / "input.png"
    path.write_bytes(make_png(320, 240))
    return path


@pytest.fixture
def endpoint(
    simulator: Simulator, database_url: str, tmp_path: Path
) -> Callable[..., contextlib.AbstractAsyncContextManager[Endpoint]]:
    def factory(**kwargs: Any) -> contextlib.AbstractAsyncContextManager[Endpoint]:
        kwargs.setdefault("wavespeed_webhook_secret", simulator.webhook_secret)
        return serve_endpoint(simulator, database_url, tmp_path, **kwargs)

    return factory


def requests_for(simulator: Simulator, route_prefix: str) -> int:
    """Requests the simulator served whose route starts with `route_prefix` (e.g. 'GET /api')."""
    return sum(
        n for (method, route), n in simulator.stats.requests.items()
        if f"{method} {route}".startswith(route_prefix)
    )  # fmt: skip
