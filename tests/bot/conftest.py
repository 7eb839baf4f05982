"""Fixtures for the animate path: real simulator, real database, real service and runner."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.app import App, open_app
from bot.config import Settings
from bot.sinks import FileSink, SinkRegistry
from providers.simulator import Simulator
from tests.fixtures_sim import SIM_API_KEY

NO_CAPS: dict[str, Any] = {
    "user_daily_cap_usd": None,
    "user_monthly_cap_usd": None,
    "server_daily_cap_usd": None,
    "server_monthly_cap_usd": None,
    "user_concurrent_jobs": None,
    "server_concurrent_jobs": None,
    "user_jobs_per_hour": None,
}


def settings_for(sim: Simulator, database_url: str, **overrides: Any) -> Settings:
    """Settings that point every provider at the simulator; no .env is read."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "wavespeed_api_key": SIM_API_KEY,
        "wavespeed_base_url": sim.base_url,
        "novita_api_key": SIM_API_KEY,
        "novita_base_url": sim.base_url,
        "allow_private_image_urls": True,
        "price_overrides": {"wan-2.1": {"480p": "0.30", "720p": "0.45"}},
        "time_scale": 0.001,  # poll delays of a few ms: the simulator advances per poll
        **NO_CAPS,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def env_for(settings: Settings) -> dict[str, str]:
    """The same settings as environment variables, for the CLI and subprocesses."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            if name in NO_CAPS:
                env[name.upper()] = "none"
        elif isinstance(value, dict):
            import json

            env[name.upper()] = json.dumps(value)
        elif hasattr(value, "get_secret_value"):
            env[name.upper()] = value.get_secret_value()
        elif isinstance(value, tuple):
            env[name.upper()] = ",".join(str(v) for v in value)
        elif isinstance(value, Decimal):
            env[name.upper()] = str(value)
        elif isinstance(value, tuple):
            env[name.upper()] = ",".join(map(str, value))
        else:
            env[name.upper()] = str(value)
    return env


class Clock:
    """Real time plus an offset the test moves: leases and due times lapse without sleeping."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def jump(self, seconds: float) -> None:
        self.offset += seconds


class Said:
    """Collects what the CLI sink would print."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)


@pytest.fixture
def said() -> Said:
    return Said()


@pytest.fixture
def make_app(
    simulator: Simulator, database_url: str, tmp_path: Path, said: Said
) -> Callable[..., Any]:
    """`async with make_app(**settings_overrides) as app:` — a fully wired App."""

    def factory(clock: Callable[[], float] | None = None, **overrides: Any) -> Any:
        settings = settings_for(simulator, database_url, **overrides)
        sinks = SinkRegistry({"file": FileSink(said, default_dir=tmp_path / "out")})
        kwargs: dict[str, Any] = {"sinks": sinks, "owner": "test-runner"}
        if clock is not None:
            kwargs["clock"] = clock
        return open_app(settings, **kwargs)

    return factory


@pytest.fixture
async def app(make_app: Callable[..., Any]) -> AsyncIterator[App]:
    async with make_app() as app:
        yield app
