"""The bolt app: Slack's requests in, through bolt's own request handling.

HTTP mode: bolt checks every request's signature (`SLACK_SIGNING_SECRET`, HMAC-SHA256 of
`v0:timestamp:body`, at most 5 minutes old) and answers a forged, stale or unsigned request
with 401 before any listener runs. A correctly signed request seen before (a replay within
those 5 minutes) is refused the same way here. Socket Mode has no signatures (the
connection itself is authenticated with the app token).

The lazy work a listener starts after its ack is tracked, so a stopping process finishes it
(a reservation half made is not left to a lease) and tests wait for it instead of sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_bolt.lazy_listener.async_internals import to_runnable_function
from slack_bolt.lazy_listener.asyncio_runner import AsyncioLazyListenerRunner
from slack_bolt.middleware.async_middleware import AsyncMiddleware
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack_adapter.listeners import Listeners, Parts

log = logging.getLogger(__name__)

SIGNATURE_WINDOW_S = 300  # slack_sdk's SignatureVerifier refuses older timestamps
SEEN_MAX = 200_000  # signatures remembered at most (a few MB at Slack's busiest)


class RefuseReplays(AsyncMiddleware):
    """401 for a signature already seen within the signature window (a replayed request);
    runs after bolt's signature check, so only correctly signed requests are remembered."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()

    async def async_process(
        self,
        *,
        req: AsyncBoltRequest,
        resp: BoltResponse,
        next: Callable[[], Awaitable[BoltResponse]],  # bolt's name for it
    ) -> BoltResponse:
        if req.mode == "socket_mode":
            return await next()
        signature = req.headers.get("x-slack-signature", [""])[0]
        now = self.clock()
        self._forget(now)
        if signature in self._seen:
            log.warning("refused a replayed Slack request (a signature seen before)")
            return BoltResponse(status=401, body={"error": "invalid request"})
        self._seen[signature] = now + SIGNATURE_WINDOW_S + 60
        return await next()

    def _forget(self, now: float) -> None:
        """Drop signatures past the window (oldest first: expiries grow with insertion)."""
        while self._seen:
            expiry = next(iter(self._seen.values()))
            if expiry > now and len(self._seen) <= SEEN_MAX:
                return
            self._seen.popitem(last=False)


class TrackedLazyRunner(AsyncioLazyListenerRunner):
    """bolt's lazy runner, keeping the tasks it starts so they can be awaited."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__(logger)
        self.tasks: set[asyncio.Future[Any]] = set()

    def start(self, function: Callable[..., Awaitable[None]], request: AsyncBoltRequest) -> None:
        task = asyncio.ensure_future(
            to_runnable_function(internal_func=function, logger=self.logger, request=request)
        )
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def drain(self) -> None:
        """Wait until no lazy work is running (work may start more work)."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)


class _SkipTokenNotice(logging.Filter):
    """bolt reads SLACK_BOT_TOKEN from the environment itself and then warns that the
    client we give it wins; it does, by design: drop that one notice."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


BOLT_LOG = logging.getLogger("bot.slack_adapter.bolt")
BOLT_LOG.addFilter(_SkipTokenNotice())


class SlackDoor:
    """The bolt `AsyncApp` with its listeners; `handle` serves `/slack/events`."""

    def __init__(
        self,
        parts: Parts,
        client: AsyncWebClient,
        *,
        signing_secret: str | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.socket_mode = signing_secret is None
        self.bolt = AsyncApp(
            name="animatebot",
            client=client,
            signing_secret=signing_secret or "",
            # the ack function's answer is the HTTP answer; lazy work runs after it
            process_before_response=True,
            request_verification_enabled=not self.socket_mode,
            logger=BOLT_LOG,
        )
        self.lazy = TrackedLazyRunner(self.bolt.logger)
        self.bolt.listener_runner.lazy_listener_runner = self.lazy
        if not self.socket_mode:
            self.bolt.use(RefuseReplays(clock))
        Listeners(parts).register(self.bolt)

    async def handle(self, request: web.Request) -> web.Response:
        answer = await self.bolt.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(answer)

    async def drain(self) -> None:
        await self.lazy.drain()
