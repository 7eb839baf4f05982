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


async def test_default_sinks_record_absolute_paths_and_keep_unknown_kinds_under_clip_dir(
    simulator: Simulator, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from bot.cli.processes import default_sinks
    from bot.sinks import Clip

    monkeypatch.chdir(tmp_path)
    settings = settings_for(simulator, database_url, clip_dir="kept")
    sinks = default_sinks(settings, lambda line: None)
    clip = Clip(data=b"mp4", filename="abc123def456.mp4")
    file_job = SimpleNamespace(id="abc123def456", sink={"kind": "file", "dir": "rel/out"})
    chat_job = SimpleNamespace(id="abc123def456", sink={"kind": "a-platform-not-here"})
    written = Path(await sinks.for_job(file_job).deliver(file_job, clip))
    kept = Path(await sinks.for_job(chat_job).deliver(chat_job, clip))
    assert written == tmp_path / "rel" / "out" / "abc123def456.mp4"
    # the kept-clip store's layout, so CLIP_RETENTION_DAYS purges it too
    assert kept == tmp_path / "kept" / "abc123def456" / "abc123def456.mp4"
    assert written.is_absolute() and kept.is_absolute() and kept.read_bytes() == b"mp4"
