"""The Discord front door, driven through discord.py itself against `FakeDiscord`.

`bot` is a logged-in client of the real bot (its `setup_hook` has run: gateway address from
the fake, commands synced, dynamic buttons registered) on a real App (simulator, database,
runner). `bot.send(payload)` hands a raw INTERACTION_CREATE to discord.py exactly as the
gateway would (`ConnectionState.parse_interaction_create`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from discord.gateway import DiscordWebSocket
from discord.http import Route

from bot.app import App, open_app
from bot.chat.delivery import ChatSink
from bot.cli.jobs import follow
from bot.cli.processes import add_chat_sinks, default_sinks
from bot.discord_adapter.client import AnimateClient, AnimateShardedClient, make_client
from bot.discord_adapter.front import DiscordFrontDoor
from providers.simulator import Simulator
from storage import Job
from tests.bot.conftest import settings_for
from tests.discord.fake_discord import TOKEN, FakeDiscord, Message
from tests.discord.payloads import Payloads
from tests.fixtures_sim import make_png


@dataclass
class Bot:
    fake: FakeDiscord
    app: App
    client: AnimateClient | AnimateShardedClient
    front: DiscordFrontDoor
    p: Payloads

    @property
    def sink(self) -> ChatSink:
        sink = self.app.sinks.get("discord")
        assert isinstance(sink, ChatSink)
        return sink

    def send(self, payload: dict[str, Any]) -> int:
        """Deliver an INTERACTION_CREATE to discord.py; returns the interaction id."""
        self.client._connection.parse_interaction_create(payload)  # type: ignore[arg-type]
        return int(payload["id"])

    def animate(self, prompt: str = "the lamp flickers", *, image: bytes | None = None,
                **options: Any) -> int:  # fmt: skip
        kw = {k: options.pop(k) for k in ("user_id", "roles", "permissions", "channel")
              if k in options}  # fmt: skip
        att = self.p.attachment(image if image is not None else make_png())
        name, opts, resolved = self.p.animate(att, prompt, **options)
        return self.send(self.p.command(name, opts, resolved, **kw))

    def press(self, custom_id: str, on: Message, **kw: Any) -> int:
        """Press a button of a message the bot posted."""
        return self.send(self.p.button(custom_id, self.fake.message_json(on), **kw))

    async def answer(self, interaction_id: int) -> str:
        """The (ephemeral) answer to a press or command, once it is there."""
        texts = await self.fake.wait_for(lambda: self.fake.ephemeral_texts(interaction_id))
        await self.front.idle()
        return str(texts[-1])

    async def reply(self, interaction_id: int) -> Message:
        """The public reply to an /animate once it shows the price."""
        return await self.fake.wait_for(lambda: self._reply(interaction_id))

    def _reply(self, interaction_id: int) -> Message | None:
        msg = self.fake.public_answer(interaction_id)
        return msg if msg is not None and "held" in msg.content else None

    async def refusal(self, interaction_id: int) -> str:
        """The one ephemeral answer to an interaction that was refused."""
        texts = await self.fake.wait_for(lambda: self.fake.ephemeral_texts(interaction_id))
        return str(texts[0])

    async def job_of(self, interaction_id: int) -> Job:
        job = await self.app.db.jobs.get_by_event("discord", str(interaction_id))
        assert job is not None
        return job

    async def started(self, interaction_id: int) -> Job:
        """The job once its reply, thread and submission are done (the reply is posted
        while the front door holds the interaction, so `idle` cannot return early)."""
        await self.reply(interaction_id)
        await self.front.idle()
        return await self.job_of(interaction_id)

    async def finish(self, job_id: str) -> Job:
        """Run the job runner until the job is final."""
        done = await follow(self.app, job_id)
        assert done is not None
        return done


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    saved = (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY)
    try:
        async with FakeDiscord() as server:
            yield server
    finally:
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = saved


@pytest.fixture
def make_bot(
    simulator: Simulator, database_url: str, fake: FakeDiscord
) -> Callable[..., contextlib.AbstractAsyncContextManager[Bot]]:
    @contextlib.asynccontextmanager
    async def factory(owner: str = "discord-test", **overrides: Any) -> AsyncIterator[Bot]:
        settings = settings_for(
            simulator, database_url, discord_token=TOKEN,
            discord_api_base_url=fake.base_url, **overrides,
        )  # fmt: skip
        async with open_app(settings, sinks=default_sinks(settings), owner=owner) as app:
            add_chat_sinks(app)
            sink = app.sinks.get("discord")
            assert isinstance(sink, ChatSink)
            front = DiscordFrontDoor(app, sink)
            client = make_client(
                front, api_base=settings.discord_api_base_url,
                guild_ids=settings.discord_guild_ids, shards=settings.discord_shards,
            )  # fmt: skip
            async with client:
                await client.login(TOKEN)
                try:
                    yield Bot(fake, app, client, front, Payloads(fake))
                finally:
                    await front.drain()

    return factory


@pytest.fixture
async def bot(make_bot: Callable[..., Any]) -> AsyncIterator[Bot]:
    async with make_bot() as b:
        yield b
