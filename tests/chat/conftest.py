"""The shared chat layer, driven through the real service, runner, ledger and simulator.

`RecordingPoster` stands in for a platform (Discord and Slack each have their own tests with
their real libraries): it keeps the messages it was asked to post in memory, so the tests can
check what a person would see.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from bot.app import App, open_app
from bot.chat.actions import Button
from bot.chat.delivery import ChatSink, UploadRefused
from bot.chat.markup import DISCORD, Markup
from bot.chat.status import StatusView
from bot.sinks import Clip, SinkRegistry
from providers.simulator import Simulator
from storage import Job
from tests.bot.conftest import settings_for


@dataclass
class Message:
    ref: str
    where: str
    text: str
    buttons: list[str] = field(default_factory=list)
    file: bytes | None = None
    edits: int = 0


class RecordingPoster:
    markup: Markup = DISCORD

    def __init__(self) -> None:
        self.messages: dict[str, Message] = {}
        self.private: list[tuple[str, str]] = []
        self.limit = 10 * 1024 * 1024
        self.nsfw_ok = False
        self.refuse_upload: str | None = None
        self._ids = itertools.count(1)

    def _new(self, where: str, text: str, buttons: list[Button], file: bytes | None) -> str:
        ref = f"m{next(self._ids)}"
        self.messages[ref] = Message(ref, where, text, [b.custom_id for b in buttons], file)
        return ref

    def upload_limit(self, job: Job) -> int:
        return self.limit

    async def allows_nsfw(self, job: Job) -> bool:
        return self.nsfw_ok

    async def show_status(self, job: Job, view: StatusView) -> str:
        existing = self.messages.get(job.message_id or "")
        if existing is not None:
            existing.text = view.text()
            existing.buttons = [b.custom_id for b in view.buttons]
            existing.edits += 1
            return existing.ref
        return self._new(job.thread_id or job.channel_id or "?", view.text(), view.buttons, None)

    async def find_posted(self, job: Job) -> str | None:
        for msg in self.messages.values():
            if msg.file is not None and job.id in msg.text:
                return msg.ref
        return None

    async def post_clip(self, job: Job, clip: Clip, text: str, buttons: list[Button]) -> str:
        if self.refuse_upload:
            raise UploadRefused(self.refuse_upload)
        where = job.thread_id or job.channel_id or "?"
        return self._new(where, f"{text} [{job.id}]", buttons, clip.data)

    async def post_text(self, job: Job, text: str, buttons: list[Button]) -> str:
        return self._new(job.thread_id or job.channel_id or "?", text, buttons, None)

    async def tell_privately(self, job: Job, text: str) -> None:
        self.private.append((job.user_id, text))

    def status_of(self, job: Job) -> Message:
        assert job.message_id is not None, "no status message was recorded"
        return self.messages[job.message_id]

    def clips(self) -> list[Message]:
        return [m for m in self.messages.values() if m.file is not None]


@pytest.fixture
def poster() -> RecordingPoster:
    return RecordingPoster()


@pytest.fixture
def make_chat_app(
    simulator: Simulator, database_url: str, poster: RecordingPoster
) -> Callable[..., Any]:
    def factory(links: Any = None, fitter: Any = None, **overrides: Any) -> Any:
        settings = settings_for(simulator, database_url, **overrides)
        sinks = SinkRegistry()

        class Ctx:
            async def __aenter__(self) -> App:
                self._cm = open_app(settings, sinks=sinks, owner="chat-test")
                app = await self._cm.__aenter__()
                kwargs: dict[str, Any] = {"links": links}
                if fitter is not None:
                    kwargs["fitter"] = fitter
                sinks.register(
                    "test-chat", ChatSink(poster, jobs=app.db.jobs, ledger=app.db.ledger, **kwargs)
                )
                return app

            async def __aexit__(self, *exc: object) -> None:
                await self._cm.__aexit__(*exc)

        return Ctx()

    return factory


@pytest.fixture
async def chat_app(make_chat_app: Callable[..., Any]) -> AsyncIterator[App]:
    async with make_chat_app() as app:
        yield app
