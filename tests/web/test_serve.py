"""`python -m bot serve` as a real process: starts, takes a job to a delivered clip through a
provider callback, answers /healthz, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import httpx

from providers.simulator import Simulator
from tests.bot.conftest import env_for, settings_for
from tests.web.conftest import free_socket

GUARD_S = 90  # only against a hang; nothing here depends on how fast things are


def serve_env(
    simulator: Simulator, database_url: str, tmp_path: Path
) -> tuple[int, dict[str, str]]:
    """A free port and the environment of a `serve` process listening on it."""
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    settings = settings_for(
        simulator, database_url,
        time_scale=1.0, web_host="127.0.0.1", web_port=port,
        public_base_url=f"http://127.0.0.1:{port}", clip_dir=str(tmp_path / "clips"),
    )  # fmt: skip
    env = {**os.environ, **env_for(settings)}
    env.pop("PORT", None)
    return port, env


async def animate_no_wait(env: dict[str, str], tmp_path: Path, png_file: Path) -> Any:
    """`animate --no-wait --json` as a separate process; its JSON answer."""
    cli = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "animate", str(png_file), "--prompt", "waves",
        "--user", "alice", "--no-wait", "--json", "--out", str(tmp_path / "out"),
        cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    cli_out, cli_err = await asyncio.wait_for(cli.communicate(), GUARD_S)
    assert cli.returncode == 0, cli_err.decode()
    return json.loads(cli_out.decode().strip().splitlines()[-1])


async def read_until(stream: asyncio.StreamReader, needle: str, seen: list[str]) -> str:
    async def scan() -> str:
        while True:
            raw = await stream.readline()
            if not raw:
                raise AssertionError(f"process ended before {needle!r}; it said {seen}")
            line = raw.decode().rstrip()
            seen.append(line)
            if needle in line:
                return line

    return await asyncio.wait_for(scan(), GUARD_S)


async def test_serve_runs_a_job_to_a_delivered_clip_and_stops_cleanly(
    simulator: Simulator, database_url: str, tmp_path: Path, png_file: Path
) -> None:
    port, env = serve_env(simulator, database_url, tmp_path)
    serve = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "serve", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert serve.stdout is not None
    said: list[str] = []
    try:
        ready = await read_until(serve.stdout, "web endpoint listening on", said)
        assert f"http://127.0.0.1:{port}" in ready
        job = await animate_no_wait(env, tmp_path, png_file)
        assert job["status"] == "submitted"
        [task] = simulator.tasks.values()
        assert task.webhook_url is not None and f":{port}/hooks/wavespeed/" in task.webhook_url
        simulator.complete_now(task.id)  # the provider finishes and calls serve back
        delivered = await read_until(serve.stdout, "clip written to", said)
        assert job["job_id"] in delivered
        async with httpx.AsyncClient(trust_env=False) as http:
            health = await http.get(f"http://127.0.0.1:{port}/healthz")
        assert health.status_code == 200, health.text
    finally:
        if serve.returncode is None:
            serve.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(serve.communicate(), GUARD_S)
    assert serve.returncode == 0, err.decode()
    clip = tmp_path / "out" / f"{job['job_id']}.mp4"
    assert clip.stat().st_size > 0
    assert simulator.stats.polls[task.id] == 0  # the callback, not a poll, finished it


async def test_web_says_which_setting_to_change_when_its_port_is_taken(
    simulator: Simulator, database_url: str, tmp_path: Path
) -> None:
    taken = free_socket()
    taken.listen()
    try:
        settings = settings_for(simulator, database_url, web_port=taken.getsockname()[1])
        env = {**os.environ, **env_for(settings)}
        env.pop("PORT", None)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "web", cwd=tmp_path, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(proc.communicate(), GUARD_S)
    finally:
        taken.close()
    assert proc.returncode == 1
    assert "WEB_PORT" in err.decode() and "Traceback" not in err.decode()


async def test_a_callback_lost_while_down_is_caught_up_when_the_endpoint_starts(
    simulator: Simulator, database_url: str, tmp_path: Path, png_file: Path
) -> None:
    """A deploy: the provider calls back while no endpoint listens and gives up. When
    `serve` starts, it looks at the jobs with the provider within 30 s instead of at their
    next safety-net poll (minutes away at this time scale)."""
    _, env = serve_env(simulator, database_url, tmp_path)
    job = await animate_no_wait(env, tmp_path, png_file)
    [task] = simulator.tasks.values()
    simulator.complete_now(task.id)
    await simulator.sender.drain()  # every delivery attempt failed: nobody listened
    assert simulator.sender.gave_up == 1 and simulator.sender.succeeded == 0
    serve = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "serve", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert serve.stdout is not None
    said: list[str] = []
    try:
        await read_until(serve.stdout, "web endpoint listening on", said)
        delivered = await read_until(serve.stdout, "clip written to", said)
        assert job["job_id"] in delivered
    finally:
        if serve.returncode is None:
            serve.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(serve.communicate(), GUARD_S)
    assert serve.returncode == 0, err.decode()
    assert simulator.stats.polls[task.id] == 1  # found by the one catch-up poll
