"""The long-running processes of the Procfile (`run`, `web`, `discord`, `slack`) and `serve`.

They share one way to start and stop: open the `App`, run the job runner unless the operator
moved it to a `worker` process (`RUN_WORKER=false`), run each front door as a service until
SIGINT/SIGTERM or until one of them fails, then stop them all. The runner finishes the job
steps in flight and gives their leases back, so another process takes over at once instead of
waiting for a lease to lapse.

Every process that runs the runner (these, and `animate`, `job --cancel`) builds its sinks
here, so any of them honours any job's sink: a job names its sink by data stored with it
(`job.sink`: `{"kind": "file", "dir": ...}`), never by an object of the process that took it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any

from bot.app import App, open_app
from bot.chat.delivery import ChatPoster, ChatSink
from bot.config import Settings
from bot.sinks import Clip, FileSink, LogSink, SinkRegistry
from storage import Job

log = logging.getLogger(__name__)

# A front door or other long-running part: runs until `stop` is set, then returns.
Service = Callable[[App, asyncio.Event], Coroutine[Any, Any, None]]


def announce(line: str) -> None:
    """A line on stdout, flushed at once: readiness lines (tests and operators wait for
    them), and what the CLI's own sinks say."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


# Routes a front door adds to the bot's one HTTP endpoint (Slack's /slack/events in HTTP
# mode), built once the App exists: aiohttp route definitions (`web.post(path, handler)`).
RouteFactory = Callable[[App], Sequence[Any]]


def chat_services(settings: Settings) -> dict[str, Service]:
    """The chat front doors whose tokens are set, as services for `serve`: the Discord
    gateway client; Slack in Socket Mode. Each front door adds itself here."""
    from bot.slack_adapter.process import slack_services

    services: dict[str, Service] = {**slack_services(settings)}
    if settings.discord_token is not None:
        from bot.discord_adapter import discord_service

        services["discord"] = discord_service(announce)
    return services


def chat_routes(settings: Settings) -> list[RouteFactory]:
    """HTTP routes of the chat front doors, mounted on the web endpoint by `serve` (Slack in
    HTTP mode). Each front door adds itself here."""
    from bot.slack_adapter.process import slack_route_factories

    return [*slack_route_factories(settings)]


DEFAULT_OUT_DIR = "animate-out"


def default_sinks(settings: Settings, say: Callable[[str], None] = announce) -> SinkRegistry:
    """The sinks that need nothing but settings: the file sink (CLI jobs, written to the
    folder the job names, else ./animate-out), and for a job whose front door is not known
    here, a log line and its clip kept under CLIP_DIR, so nothing is lost. Every path
    recorded is absolute. Chat sinks are added by `add_chat_sinks` once the App exists."""
    return SinkRegistry(
        {"file": FileSink(say, default_dir=Path(DEFAULT_OUT_DIR).resolve())},
        default=LogSink(Path(settings.clip_dir).resolve()),
    )


def chat_sink(app: App, poster: ChatPoster) -> ChatSink:
    """A chat platform's sink, with lasting signed links to clips too big to upload when the
    web endpoint is configured (PUBLIC_BASE_URL; else the provider's own link)."""

    async def link(job: Job, clip: Clip) -> str | None:
        return await asyncio.to_thread(app.clips.keep, job.id, clip.data, clip.filename)

    return ChatSink(poster, jobs=app.db.jobs, ledger=app.db.ledger, links=link)


def add_chat_sinks(app: App) -> None:
    """Register a chat sink for each platform whose token is set, so that any process
    running the job runner delivers any job of those platforms (through the bot token, never
    through an object that lived in the process that took the command). Each front door
    adds itself here."""
    if app.settings.slack_bot_token is not None:
        from bot.slack_adapter.process import add_slack_sink

        add_slack_sink(app)
    if app.settings.discord_token is not None:
        from bot.discord_adapter import discord_poster

        app.sinks.register("discord", chat_sink(app, discord_poster(app)))


async def run_services(
    settings: Settings,
    services: Mapping[str, Service],
    *,
    runner: bool | None = None,
    sinks: SinkRegistry | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run `services` (and the job runner when `runner`, default `settings.run_worker`)
    until `stop` is set, a signal arrives, or one of them fails (then the others are
    stopped and the failure re-raised)."""
    stop = stop or asyncio.Event()
    with_runner = settings.run_worker if runner is None else runner
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    failure: BaseException | None = None
    async with open_app(settings, sinks=sinks or default_sinks(settings)) as app:
        add_chat_sinks(app)
        await app.wakeups.start()  # hear other processes' wake-ups (PostgreSQL LISTEN)
        coros: dict[str, Coroutine[Any, Any, None]] = {
            name: service(app, stop) for name, service in services.items()
        }
        if with_runner:
            coros["runner"] = app.runner.run(stop)
        tasks: dict[asyncio.Task[None], str] = {
            asyncio.create_task(c, name=name): name for name, c in coros.items()
        }
        stopper = asyncio.ensure_future(stop.wait())
        try:
            # the first thing to end - a signal, or a part that returned or failed - ends all
            await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.set()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            stopper.cancel()
        for name, result in zip(tasks.values(), results, strict=True):
            if isinstance(result, Exception):
                log.error("%s stopped with an error: %s", name, result)
                failure = failure or result
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(sig)
    if failure is not None:
        raise failure

