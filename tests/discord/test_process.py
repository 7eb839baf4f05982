"""`python -m bot discord` as a real process: connected to the fake's gateway (HELLO, READY,
then an INTERACTION_CREATE), it takes one /animate to a posted clip, and a restart in the
middle of the job posts that clip once. Operator mistakes are one sentence naming the
setting; the token never shows."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from providers.simulator import Simulator, SimulatorConfig
from storage import ACTIVE, JobStatus, open_database
from tests.bot.conftest import env_for, settings_for
from tests.discord.fake_discord import TOKEN, FakeDiscord
from tests.discord.payloads import Payloads
from tests.fixtures_sim import make_png


@pytest.fixture
def sim_config() -> SimulatorConfig:
    # Deterministic: processing at the first poll, done at the second.
    from tests.fixtures_sim import SIM_API_KEY

    return SimulatorConfig(
        api_keys=frozenset({SIM_API_KEY}), progression="polls", polls_to_processing=1,
        polls_to_complete=2, clip_mode="static", webhook_backoff_s=0.0,
    )  # fmt: skip


def process_env(simulator: Simulator, database_url: str, fake: FakeDiscord,
                **changes: str) -> dict[str, str]:  # fmt: skip
    # time_scale 0.05: the first poll comes ~1.5 s after the submit, so a SIGTERM right
    # after the reply always finds the job still rendering.
    settings = settings_for(simulator, database_url, time_scale=0.05)
    env = {**os.environ, **env_for(settings)}
    env.update(DISCORD_TOKEN=TOKEN, DISCORD_API_BASE_URL=fake.base_url, LOG_LEVEL="WARNING")
    env.update(changes)
    return env


async def start(
    env: dict[str, str], cwd: Path, command: str = "discord"
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", command, cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def stop(proc: asyncio.subprocess.Process) -> tuple[str, str]:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return out.decode(), err.decode()


async def test_the_process_takes_an_animate_to_a_clip_and_survives_a_restart(
    simulator: Simulator, database_url: str, tmp_path: Path
) -> None:
    async with FakeDiscord() as fake:
        # DEBUG: even then no token (the bot's or an interaction's) reaches the logs.
        env = process_env(simulator, database_url, fake, LOG_LEVEL="DEBUG")
        proc = await start(env, tmp_path)
        try:
            await asyncio.wait_for(fake.identified.wait(), 60)
            assert fake.identify is not None
            assert fake.identify["intents"] == 1  # guilds only: nothing privileged
            p = Payloads(fake)
            att = p.attachment(make_png())
            name, opts, resolved = p.animate(att, "the sea breathes")
            payload = p.command(name, opts, resolved)
            await fake.send_event("INTERACTION_CREATE", payload)
            reply = await fake.wait_for(lambda: fake.public_answer(int(payload["id"])))
            assert "$0.10** held" in reply.content
            # Submitted, its status posted in the thread: now restart mid-job.
            await fake.wait_for(lambda: _status_in_thread(fake))
        finally:
            out, err = await stop(proc)
        assert proc.returncode == 0, err
        async with await open_database(database_url) as db:
            (job,) = await db.jobs.list_jobs()
            assert job.status in ACTIVE and job.lease_owner is None  # mid-job, lease given back
        assert fake.clips() == []

        fake.identified.clear()
        proc = await start(env, tmp_path)
        try:
            (clip,) = await fake.wait_for(fake.clips, timeout=90)
        finally:
            out2, err2 = await stop(proc)
        assert proc.returncode == 0, err2
        async with await open_database(database_url) as db:
            done = await db.jobs.get(job.id)
        assert done is not None and done.status is JobStatus.DELIVERED
        assert clip.channel_id == int(reply.id)  # in the thread opened on the reply
        assert len(fake.clips()) == 1 and len(_status_in_thread(fake)) == 1
        for text in (out, err, out2, err2):
            assert TOKEN not in text and "secret-part" not in text
            assert payload["token"] not in text


def _status_in_thread(fake: FakeDiscord) -> list[Any]:
    threads = {int(t["id"]) for t in fake.threads()}
    return [m for m in fake.messages.values()
            if m.channel_id in threads and not m.files and m.author is fake.bot_user]  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"DISCORD_TOKEN": "not-the-token"}, "DISCORD_TOKEN was refused by Discord"),
        ({"DISCORD_TOKEN": ""}, "DISCORD_TOKEN is not set"),
        ({"DISCORD_GUILD_IDS": "123,abc"}, "DISCORD_GUILD_IDS must list server ids"),
        ({"DISCORD_GUILD_IDS": "424242"}, "DISCORD_GUILD_IDS lists server 424242, where the bot"),
    ],
    ids=["bad token", "no token", "guild ids not numbers", "bot not in that server"],
)
async def test_operator_mistakes_are_one_sentence(
    simulator: Simulator, database_url: str, tmp_path: Path, changes: dict[str, str], says: str
) -> None:
    async with FakeDiscord() as fake:
        env = process_env(simulator, database_url, fake, **changes)
        proc = await start(env, tmp_path)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    lines = [line for line in err.decode().splitlines() if line.strip()]
    assert proc.returncode == 2, err.decode()
    assert lines[-1].startswith(f"error: {says}")
    assert lines[-1].count(". ") <= 1 and "Traceback" not in err.decode()
    assert TOKEN not in err.decode() + out.decode() and "not-the-token" not in err.decode()


async def test_discord_shards_runs_the_auto_sharded_client(
    simulator: Simulator, database_url: str, tmp_path: Path
) -> None:
    async with FakeDiscord() as fake:
        env = process_env(simulator, database_url, fake, DISCORD_SHARDS="2")
        proc = await start(env, tmp_path)
        try:
            shards = await fake.wait_for(
                lambda: sorted(tuple(i["shard"]) for i in fake.identifies)
                if len(fake.identifies) == 2 else None, timeout=60,
            )  # fmt: skip
        finally:
            _, err = await stop(proc)
    assert shards == [(0, 2), (1, 2)]
    assert proc.returncode == 0, err


async def test_the_discord_process_is_not_stopped_by_another_platforms_settings(
    simulator: Simulator, database_url: str, tmp_path: Path
) -> None:
    """A Slack token without its signing secret is the `slack` process's problem (it says so
    there); the `discord` process runs only the Discord front door."""
    async with FakeDiscord() as fake:
        env = process_env(simulator, database_url, fake, SLACK_BOT_TOKEN="xoxb-1-2-abc")
        env.pop("SLACK_SIGNING_SECRET", None)
        proc = await start(env, tmp_path)
        try:
            await asyncio.wait_for(fake.identified.wait(), 60)
        finally:
            _, err = await stop(proc)
    assert proc.returncode == 0, err
    assert "SLACK_SIGNING_SECRET" not in err


async def test_serve_with_a_refused_token_says_so_in_one_sentence(
    simulator: Simulator, database_url: str, tmp_path: Path
) -> None:
    async with FakeDiscord() as fake:
        env = process_env(simulator, database_url, fake, DISCORD_TOKEN="not-the-token",
                          WEB_PORT="0")  # fmt: skip
        proc = await start(env, tmp_path, "serve")
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2, err.decode()
    assert err.decode().splitlines()[-1].startswith("error: DISCORD_TOKEN was refused by Discord")
    assert "not-the-token" not in err.decode() + out.decode()
