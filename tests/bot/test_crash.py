"""A bot process killed right after submitting: the restarted runner delivers once, charges once."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from bot.app import open_app
from bot.sinks import FileSink, SinkRegistry
from providers.simulator import Simulator
from storage import JobStatus
from tests.bot.conftest import Clock, Said, env_for, settings_for


async def test_killed_after_submit_delivers_once_and_charges_once(
    simulator: Simulator, database_url: str, tmp_path: Path, png_file: Path
) -> None:
    simulator.config.polls_to_complete = 1_000_000  # the first process never sees it finish
    settings = settings_for(simulator, database_url, time_scale=1.0)
    out = tmp_path / "clips"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "animate",
        str(png_file),
        "--prompt",
        "tide comes in",
        "--user",
        "alice",
        "--out",
        str(out),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env_for(settings)},
        cwd=tmp_path,
    )
    assert proc.stdout is not None
    lines = []
    while True:
        line = (await proc.stdout.readline()).decode()
        lines.append(line)
        assert line, f"the CLI ended before submitting: {lines} {await proc.stderr.read()!r}"
        if "submitted to wavespeed" in line:
            break
    proc.kill()  # SIGKILL: no cleanup, no chance to record anything more
    await proc.wait()
    assert len(simulator.tasks) == 1

    simulator.config.polls_to_complete = 2
    clock = Clock()
    clock.offset = 3600  # long after: every lease and due time has lapsed
    said = Said()
    sinks = SinkRegistry({"file": FileSink(said)})
    async with open_app(settings, sinks=sinks, owner="restarted", clock=clock) as app:
        (job,) = await app.db.jobs.list_jobs()
        assert job.status is JobStatus.SUBMITTED
        for _ in range(10):
            await app.runner.run_once()
            job = await app.db.jobs.get(job.id)
            assert job is not None
            if job.status is JobStatus.DELIVERED:
                break
            clock.offset += 600
        assert job.status is JobStatus.DELIVERED
        await app.runner.run_once()  # a further pass delivers nothing again
        reservation = await app.db.ledger.get(job.ledger_key)
        history = [e.to_status for e in await app.db.jobs.history(job.id)]
        entries = [e.kind for e in await app.db.ledger.entries()]

    assert reservation is not None and reservation.status == "settled"
    assert reservation.settled_micros == job.cost_micros == 100_000
    assert entries == ["reserve", "settle"]
    assert history.count("delivered") == 1
    assert simulator.stats.submits["wavespeed"] == 1
    assert [p.name for p in out.glob("*.mp4")] == [f"{job.id}.mp4"]
    assert sum("clip written" in line for line in said.lines) == 1
