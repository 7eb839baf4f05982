"""`python -m bot slack` as a real process: HTTP mode on /slack/events end to end, a restart
between the clip's upload and its record without a second post, the operator's setting
errors in one sentence, and Socket Mode over a WebSocket."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.cli.processes import chat_routes, chat_services, run_services
from bot.slack_adapter.blocks import STATUS_EVENT
from providers.simulator import Simulator
from storage import JobStatus, open_database
from tests.bot.conftest import env_for
from tests.slack import payloads
from tests.slack.conftest import slack_settings
from tests.slack.fake_slack import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET, FakeSlack, by_metadata


class BotProcess:
    """`python -m bot slack` (or `serve`) with the test's settings; `url` (its
    /slack/events) once it says it listens."""

    def __init__(self, env: dict[str, str], cwd: Path, name: str, command: str = "slack") -> None:
        self.env, self.cwd, self.name, self.command = env, cwd, name, command
        self.proc: asyncio.subprocess.Process | None = None
        self.url = ""

    async def start(self) -> None:
        self.err = (self.cwd / f"{self.name}.err").open("wb")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", self.command,
            cwd=self.cwd, env=self.env, stdout=asyncio.subprocess.PIPE, stderr=self.err,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = (await asyncio.wait_for(self.proc.stdout.readline(), 60)).decode()
        assert "web endpoint listening on http://" in line, line + self.stderr()
        self.base = line.split("listening on ", 1)[1].split()[0]
        self.url = self.base + "/slack/events"

    def stderr(self) -> str:
        return (self.cwd / f"{self.name}.err").read_text()

    async def post(self, http: aiohttp.ClientSession, body: str, **kw: Any) -> tuple[int, str]:
        headers = {"Content-Type": kw.get("content_type", payloads.FORM), **payloads.signed(body)}
        async with http.post(self.url, data=body.encode(), headers=headers) as resp:
            return resp.status, await resp.text()

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        code = await asyncio.wait_for(self.proc.wait(), 60)
        self.err.close()
        return code


def process_env(
    sim: Simulator, database_url: str, fake: FakeSlack, **overrides: Any
) -> dict[str, str]:
    settings = slack_settings(sim, database_url, fake, web_port=0, lease_s=2.0, **overrides)
    env = {**os.environ, **env_for(settings)}
    env.pop("SLACK_APP_TOKEN", None)
    return env


async def test_http_mode_end_to_end_and_a_restart_between_upload_and_record(
    simulator: Simulator, database_url: str, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    fake = fake_slack
    env = process_env(simulator, database_url, fake)
    first = BotProcess(env, tmp_path, "first")
    await first.start()
    async with aiohttp.ClientSession() as http:
        status, _ = await first.post(
            http, payloads.slash("/animate", "the lamp flickers", response_url=fake.response_url())
        )
        assert status == 200
        await fake.wait_for("views.open")
        (view,) = fake.views.values()
        uploaded = fake.hold("files.completeUploadExternal")  # Slack posts; the bot never hears
        image = fake.add_file("cat.png", _png())
        status, body = await first.post(
            http, payloads.interaction(payloads.submission(view, image=[image]))
        )
        assert (status, body) == (200, "")
        await fake.wait_for("files.completeUploadExternal")
        assert len(fake.clip_messages()) == 1
        await first.stop(signal.SIGKILL)  # dies between the upload and its record
        uploaded.set()

        second = BotProcess(env, tmp_path, "second")
        await second.start()
        async with http.get(second.base + "/healthz") as health:
            assert health.status == 200  # the slack process is the bot's endpoint too

        def delivered() -> bool:
            statuses = by_metadata(fake.messages.get("C1", []), STATUS_EVENT)
            return any(s["text"].startswith("✅") for s in statuses)

        await fake.wait_until(delivered)
        assert await second.stop() == 0, second.stderr()

    assert len(fake.calls_to("files.completeUploadExternal")) == 1
    (clip,) = fake.clip_messages()
    assert clip["text"].startswith("<@U1> your clip is ready")
    async with await open_database(database_url) as db:
        job = await db.jobs.get_by_event("slack", view["id"])
        assert job is not None and job.status is JobStatus.DELIVERED
        assert job.delivered_ref == clip["files"][0]["permalink"]
        reservation = await db.ledger.get(job.ledger_key)
        assert reservation is not None and reservation.status == "settled"
    for proc in (first, second):
        assert BOT_TOKEN not in proc.stderr() and SIGNING_SECRET not in proc.stderr()


def _png() -> bytes:
    from tests.fixtures_sim import make_png

    return make_png(320, 240)


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"slack_signing_secret": None}, "SLACK_SIGNING_SECRET is not set"),
        ({"slack_bot_token": "xoxp-a-user-token"}, "SLACK_BOT_TOKEN is not a bot token"),
        ({"slack_bot_token": "xoxb-revoked"}, "Slack refused SLACK_BOT_TOKEN (invalid_auth)"),
        ({"slack_app_token": "xoxb-not-an-app-token"}, "SLACK_APP_TOKEN is not an app-level"),
        ({"slack_app_token": "xapp-revoked"}, "Slack refused SLACK_APP_TOKEN (invalid_auth)"),
    ],
)
async def test_a_setting_that_cannot_work_is_one_sentence_and_exit_2(
    simulator: Simulator, database_url: str, fake_slack: FakeSlack, tmp_path: Path,
    overrides: dict[str, Any], words: str,
) -> None:  # fmt: skip
    env = process_env(simulator, database_url, fake_slack, **overrides)
    if overrides.get("slack_signing_secret", "") is None:
        env.pop("SLACK_SIGNING_SECRET", None)
    if "slack_app_token" in overrides:
        env["SLACK_APP_TOKEN"] = overrides["slack_app_token"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "slack", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    text = err.decode()
    assert proc.returncode == 2, text
    assert words in text and text.startswith("error: ")
    assert len([line for line in text.splitlines() if line.startswith("error:")]) == 1
    for secret in ("xoxb-revoked", "xoxp-a-user-token", "xapp-revoked", BOT_TOKEN, SIGNING_SECRET):
        assert secret not in text and secret not in out.decode()


async def test_socket_mode_takes_a_command_over_the_websocket(
    simulator: Simulator, database_url: str, fake_slack: FakeSlack
) -> None:
    fake = fake_slack
    settings = slack_settings(
        simulator, database_url, fake, slack_app_token=APP_TOKEN, slack_signing_secret=None
    )
    services = chat_services(settings)
    assert list(services) == ["slack"] and chat_routes(settings) == []
    stop = asyncio.Event()
    running = asyncio.create_task(run_services(settings, services, stop=stop))
    try:
        envelope = await fake.send_envelope(
            "slash_commands",
            {"command": "/animate", "text": "waves", "team_id": "T0TEAM", "user_id": "U1",
             "channel_id": "C1", "trigger_id": payloads.trigger(),
             "response_url": fake.response_url(), "api_app_id": "A1"},
        )  # fmt: skip
        await fake.wait_until(
            lambda: any(a.get("envelope_id") == envelope for a in fake.socket_acks)
        )
        (opened,) = await fake.wait_for("views.open")
        view = (
            json.loads(opened.args["view"])
            if isinstance(opened.args["view"], str)
            else opened.args["view"]
        )
        assert view["callback_id"] == "animate_modal"
        (connect,) = fake.calls_to("apps.connections.open")
        assert connect.token == APP_TOKEN
    finally:
        stop.set()
        await asyncio.wait_for(running, 60)


def test_http_mode_mounts_the_route_for_serve(
    simulator: Simulator, database_url: str, fake_slack: FakeSlack
) -> None:
    settings = slack_settings(simulator, database_url, fake_slack)
    assert list(chat_services(settings)) == ["slack"]  # the token check at start
    (factory,) = chat_routes(settings)
    assert factory.__name__ == "slack_routes"


async def test_serve_mounts_slack_on_the_one_endpoint(
    simulator: Simulator, database_url: str, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    env = process_env(simulator, database_url, fake_slack)
    serve = BotProcess(env, tmp_path, "serve", command="serve")
    await serve.start()
    try:
        async with aiohttp.ClientSession() as http:
            body = payloads.slash("/animate", "waves", response_url=fake_slack.response_url())
            status, _ = await serve.post(http, body)
            assert status == 200
            await fake_slack.wait_for("views.open")
            forged = {"Content-Type": payloads.FORM, **payloads.signed(body, secret="nope")}
            async with http.post(serve.url, data=body.encode(), headers=forged) as resp:
                assert resp.status == 401
    finally:
        assert await serve.stop() == 0, serve.stderr()
    assert len(fake_slack.calls_to("views.open")) == 1


async def test_serve_says_which_slack_setting_is_missing(
    simulator: Simulator, database_url: str, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    env = process_env(simulator, database_url, fake_slack)
    env.pop("SLACK_SIGNING_SECRET", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "serve", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    assert err.decode().startswith("error: SLACK_SIGNING_SECRET is not set")
