"""The Slack front door under test: the real bolt app behind a real aiohttp server on
loopback, signed requests over HTTP, the fake Slack Web API, the provider simulator, and a
real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.app import App, open_app
from bot.cli.jobs import follow
from bot.cli.processes import add_chat_sinks, default_sinks
from bot.config import Settings
from bot.slack_adapter.door import SlackDoor
from bot.slack_adapter.process import EVENTS_PATH, open_door
from providers.simulator import Simulator
from storage import Job
from tests.bot.conftest import Clock, settings_for
from tests.fixtures_sim import make_png
from tests.slack import payloads
from tests.slack.fake_slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack()
    await fake.start()
    yield fake
    await fake.stop()


def slack_settings(
    sim: Simulator, database_url: str, fake: FakeSlack, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "slack_bot_token": BOT_TOKEN,
        "slack_signing_secret": SIGNING_SECRET,
        "slack_api_url": fake.api_url,
        **overrides,
    }
    return settings_for(sim, database_url, **values)


class SlackHarness:
    """One bot process: an App, the bolt app on `/slack/events`, and helpers to talk to it
    as Slack does. `restart()` replaces the process (same database, same fake Slack)."""

    def __init__(self, settings: Settings, fake: FakeSlack, tmp: Path) -> None:
        self.settings = settings
        self.fake = fake
        self.tmp = tmp
        self.clock = Clock()
        self.app: App
        self.door: SlackDoor
        self.url = ""
        self._stack: contextlib.AsyncExitStack | None = None
        self._generation = 0

    async def start(self) -> None:
        self._generation += 1
        stack = contextlib.AsyncExitStack()
        self.app = await stack.enter_async_context(
            open_app(self.settings, sinks=default_sinks(self.settings, lambda _: None),
                     owner=f"slack-test-{self._generation}", clock=self.clock)
        )  # fmt: skip
        add_chat_sinks(self.app)
        self.door = open_door(self.app)
        server = web.Application()
        server.router.add_post(EVENTS_PATH, self.door.handle)
        runner = web.AppRunner(server, access_log=None, handle_signals=False)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}{EVENTS_PATH}"
        self.http = await stack.enter_async_context(aiohttp.ClientSession())
        self._stack = stack

    async def stop(self) -> None:
        if self._stack is not None:
            await self._stack.aclose()
            self._stack = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    # --- talking to the bot as Slack does

    async def post(
        self, body: str, *, content_type: str = payloads.FORM, headers: dict[str, str] | None = None
    ) -> tuple[int, str]:
        """POST a body to /slack/events, signed unless `headers` are given; returns the HTTP
        status and body once the ack is in (the lazy work may still run: `settle`)."""
        sent = {"Content-Type": content_type, **(headers if headers is not None
                                                  else payloads.signed(body))}  # fmt: skip
        async with self.http.post(self.url, data=body.encode(), headers=sent) as resp:
            return resp.status, await resp.text()

    async def settle(self) -> None:
        """Wait until the work the listeners started after their acks is done."""
        await self.door.drain()

    async def command(self, command: str, text: str = "", **kw: Any) -> tuple[int, str]:
        kw.setdefault("response_url", self.fake.response_url())
        status, body = await self.post(payloads.slash(command, text, **kw))
        await self.settle()
        return status, body

    async def interact(self, payload: dict[str, Any]) -> tuple[int, str]:
        status, body = await self.post(payloads.interaction(payload))
        await self.settle()
        return status, body

    async def open_modal(
        self, text: str = "", *, user: str = "U1", channel: str = "C1"
    ) -> dict[str, Any]:
        before = len(self.fake.views)
        status, _ = await self.command("/animate", text, user=user, channel=channel)
        assert status == 200
        assert len(self.fake.views) == before + 1, "no modal was opened"
        return list(self.fake.views.values())[-1]

    async def submit(
        self, view: dict[str, Any], *, user: str = "U1", **choices: Any
    ) -> dict[str, Any]:
        """Submit the modal; returns the ack's JSON ({} for a plain ack)."""
        status, body = await self.interact(payloads.submission(view, user=user, **choices))
        assert status == 200, body
        return json.loads(body) if body else {}

    def image(self, name: str = "cat.png", data: bytes | None = None, **kw: Any) -> dict[str, Any]:
        return self.fake.add_file(name, data if data is not None else make_png(320, 240), **kw)

    async def animate(
        self, *, user: str = "U1", channel: str = "C1", prompt: str = "the lamp flickers",
        **choices: Any,
    ) -> dict[str, Any]:  # fmt: skip
        view = await self.open_modal(prompt, user=user, channel=channel)
        choices.setdefault("image", [self.image()])
        answer = await self.submit(view, user=user, **choices)
        assert answer == {}, answer
        return view

    async def job_for(self, view: dict[str, Any]) -> Job:
        job = await self.app.db.jobs.get_by_event("slack", view["id"])
        assert job is not None, "no job was made for this modal"
        return job

    async def follow(self, job_id: str) -> Job:
        job = await follow(self.app, job_id)
        assert job is not None
        return job


@pytest.fixture
async def slack(
    simulator: Simulator, database_url: str, fake_slack: FakeSlack, tmp_path: Path
) -> AsyncIterator[SlackHarness]:
    harness = SlackHarness(
        slack_settings(simulator, database_url, fake_slack), fake_slack, tmp_path
    )
    await harness.start()
    yield harness
    await harness.stop()
