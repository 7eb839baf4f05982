"""The shared start/stop of long-running processes: a failing part stops the others; a
signal stops them all cleanly; `python -m bot run` is such a process."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from bot.app import App
from bot.cli.processes import run_services
from providers.simulator import Simulator
from tests.bot.conftest import env_for, settings_for


async def test_a_failing_part_stops_the_others_and_is_reraised(
    simulator: Simulator, database_url: str
) -> None:
    stopped = asyncio.Event()

    async def patient(app: App, stop: asyncio.Event) -> None:
        await stop.wait()
        stopped.set()

    async def broken(app: App, stop: asyncio.Event) -> None:
        raise RuntimeError("the gateway refused the token")

    settings = settings_for(simulator, database_url)
    with pytest.raises(RuntimeError, match="refused the token"):
        await run_services(settings, {"patient": patient, "broken": broken})
    assert stopped.is_set()


async def test_a_stop_ends_every_part_and_the_runner(
    simulator: Simulator, database_url: str
) -> None:
    stop = asyncio.Event()
    seen: list[str] = []

    async def part(app: App, stop_: asyncio.Event) -> None:
        seen.append(app.runner.owner)
        stop.set()
        await stop_.wait()

    settings = settings_for(simulator, database_url)
    await run_services(settings, {"part": part}, stop=stop)
    assert seen and stop.is_set()


async def test_run_process_starts_and_stops_on_sigterm(
    simulator: Simulator, database_url: str, tmp_path: Path
) -> None:
    env = {**os.environ, **env_for(settings_for(simulator, database_url))}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run",
        cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    assert b"following jobs" in line
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
