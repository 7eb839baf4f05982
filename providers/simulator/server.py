"""The Simulator: one aiohttp server speaking WaveSpeed (/api/v3), Novita (/v3) and /_sim."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx
from aiohttp import web

from providers.simulator import control_api, novita_api, wavespeed_api
from providers.simulator.appkey import SIM_KEY
from providers.simulator.config import Fault, Outcome, SimulatorConfig
from providers.simulator.delivery import Delivery, WebhookSender
from providers.simulator.engine import Engine, SimTask
from providers.simulator.media import MediaStore, MediaUnreachable

log = logging.getLogger(__name__)
REASONS = {429: "Too Many Requests", 502: "Bad Gateway", 503: "Service Unavailable",
           504: "Gateway Timeout"}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class SimStats:
    """Counters for assertions and benchmarks (cheap: no per-request objects kept)."""

    requests: Counter[tuple[str, str]] = field(default_factory=Counter)  # (method, route)
    submits: Counter[str] = field(default_factory=Counter)  # by provider
    polls: Counter[str] = field(default_factory=Counter)  # by task id
    faults_applied: int = 0


class Simulator:
    """A faithful WaveSpeed + Novita stand-in on loopback. Use as `async with Simulator(cfg)`."""

    def __init__(
        self, config: SimulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.config = config or SimulatorConfig()
        self.host, self.port = host, port
        self.base_url = ""
        self.faults: list[Fault] = []
        self.stats = SimStats()
        self.request_log: deque[tuple[str, str, int]] = deque(maxlen=self.config.request_log_max)
        self.engine = Engine(self.config, self._on_finish)
        self._runner: web.AppRunner | None = None
        # trust_env=False: an HTTP(S)_PROXY in the environment must not capture loopback calls.
        self._http = httpx.AsyncClient(
            trust_env=False, limits=httpx.Limits(max_connections=128, max_keepalive_connections=64)
        )
        self.media = MediaStore(self._http)
        self.sender = WebhookSender(
            self._http, self.engine.scheduler, self.config, self.engine.now, self.engine.unix_now
        )
        self._fetches: set[asyncio.Future[None]] = set()

    # --- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application(
            middlewares=[self._observe, self._inject_faults, self._authenticate],
            client_max_size=64 * 1024 * 1024,
        )
        app[SIM_KEY] = self
        control_api.add_routes(app)
        novita_api.add_routes(app)
        wavespeed_api.add_routes(app)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=2048)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://{self.host}:{port}"
        self.media.base_url = self.base_url
        self.engine.scheduler.start()

    async def stop(self) -> None:
        await self.engine.scheduler.stop()
        await self.sender.close()
        for fut in list(self._fetches):
            fut.cancel()
        if self._fetches:
            await asyncio.gather(*self._fetches, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self._http.aclose()

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- the Python control API ---------------------------------------------------------
    @property
    def webhook_secret(self) -> str:
        return self.config.webhook_secret

    @property
    def tasks(self) -> dict[str, SimTask]:
        return self.engine.tasks

    @property
    def webhook_deliveries(self) -> deque[Delivery]:
        return self.sender.deliveries

    def add_fault(self, fault: Fault) -> None:
        self.faults.append(fault)

    def next_outcome(self, outcome: Outcome) -> None:
        """The next submitted task (either provider) gets this fate; queued in order."""
        self.engine.next_outcomes.append(outcome)

    def force(self, task_id: str, outcome: Outcome) -> None:
        """Decide a task's fate now. The webhook fires only if it was not yet terminal."""
        self.engine.finish(self.engine.tasks[task_id], outcome)

    def complete_now(self, task_id: str) -> None:
        """Finish a task now with the fate it was given at submit (usually "completed")."""
        self.engine.finish(self.engine.tasks[task_id])

    async def drain_webhooks(self) -> None:
        """Wait until every webhook was delivered or given up (retries included)."""
        await self.sender.drain()

    def expire_outputs(self) -> None:
        self.engine.expire_outputs()

    def advance_clock(self, seconds: float) -> None:
        self.engine.advance_clock(seconds)

    def reset(self) -> None:
        self.engine.reset()
        self.media.reset()
        self.faults.clear()
        self.stats = SimStats()
        self.request_log.clear()
        self.sender.deliveries.clear()
        self.sender.attempts = self.sender.succeeded = self.sender.gave_up = 0

    def stats_json(self) -> dict[str, Any]:
        statuses = Counter(task.status for task in self.engine.tasks.values())
        return {
            "requests": {f"{m} {r}": n for (m, r), n in self.stats.requests.items()},
            "submits": dict(self.stats.submits),
            "polls_total": sum(self.stats.polls.values()),
            "polls_max_per_task": max(self.stats.polls.values(), default=0),
            "tasks": len(self.engine.tasks),
            "task_statuses": dict(statuses),
            "faults_applied": self.stats.faults_applied,
            "faults_pending": len(self.faults),
            "webhooks": {
                "attempts": self.sender.attempts,
                "succeeded": self.sender.succeeded,
                "gave_up": self.sender.gave_up,
            },
        }

    # --- used by the route modules ------------------------------------------------------
    def output_url(self, task: SimTask) -> str:
        expires = int(task.output_expires_at or 0)
        if task.provider == "novita":
            ttl = int(self.config.novita_output_ttl_s)
            query = f"X-Amz-Expires={ttl}&expires={expires}"
            return f"{self.base_url}/_sim/outputs/{task.id}.mp4?{query}"
        return f"{self.base_url}/_sim/outputs/{task.id}.mp4?expires={expires}"

    def record_poll(self, task: SimTask) -> None:
        self.stats.polls[task.id] += 1
        self.engine.record_poll(task)

    def start_fetch(self, task: SimTask, url: str, *, check_image: bool) -> None:
        """Fetch the input as the provider does when the task starts; failure = code 1402."""
        fut = asyncio.ensure_future(self._fetch(task, url, check_image))
        task.fetch = fut
        self._fetches.add(fut)

        def done(_: asyncio.Future[None]) -> None:
            self._fetches.discard(fut)
            if task.fetch is fut:
                task.fetch = None  # 10k finished futures are memory nobody needs

        fut.add_done_callback(done)

    async def _fetch(self, task: SimTask, url: str, check_image: bool) -> None:
        cfg = self.config
        try:
            data = await self.media.fetch(
                url, timeout_s=cfg.image_fetch_timeout_s, max_bytes=cfg.image_max_bytes
            )
        except MediaUnreachable as exc:
            if task.terminal:  # already decided (forced): a late fetch result changes nothing
                return
            self.engine.finish(task, Outcome(status="failed", code=1402, error=str(exc)))
            return
        if check_image and cfg.clip_mode == "image":
            problem = self.media.check_image(data)
            if problem and not task.terminal:
                self.engine.finish(
                    task, Outcome(status="failed", code=1401, error=f"invalid parameter: {problem}")
                )
                return
        task.image_bytes = data

    async def settle_fetch(self, task: SimTask) -> None:
        """A poll waits for the input fetch, so "polls" progression stays deterministic."""
        if task.fetch is not None and not task.fetch.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(task.fetch)

    def send_novita_event(self, task_id: str, url: str, payload: dict[str, Any]) -> None:
        body = json.dumps({"event_type": "ASYNC_TASK_RESULT", "payload": payload}).encode()
        self.sender.send(task_id, url, body, signed=False,
                         retries=self.config.novita_webhook_retries)

    def _on_finish(self, task: SimTask) -> None:
        if not task.webhook_url:
            return
        if task.provider == "novita":
            self.send_novita_event(task.id, task.webhook_url, novita_api.result_of(self, task))
            return
        body = json.dumps(wavespeed_api.prediction(self, task), separators=(",", ":")).encode()
        self.sender.send(task.id, task.webhook_url, body, signed=True,
                         retries=self.config.webhook_retries)

    # --- middlewares --------------------------------------------------------------------
    @web.middleware
    async def _observe(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.engine.scheduler.run_due()
        route = request.match_info.route.resource
        key = (request.method, route.canonical if route is not None else "<unmatched>")
        self.stats.requests[key] += 1
        status = 500
        try:
            if self.config.latency_s:
                await asyncio.sleep(self.config.latency_s)
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            if self.config.request_log_max:
                self.request_log.append((request.method, request.path, status))

    @web.middleware
    async def _inject_faults(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        fault = self._take_fault(request)
        if fault is None:
            return await handler(request)
        self.stats.faults_applied += 1
        if fault.reached is not None:
            fault.reached.set()
        if fault.hold is not None:
            await fault.hold.wait()
        if fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        if fault.after_handler:
            await handler(request)
        elif fault.status is None and not fault.drop_connection:
            return await handler(request)
        if fault.drop_connection:
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=499)  # never reaches the client: the socket is gone
        return self._fault_response(request, fault)

    def _take_fault(self, request: web.Request) -> Fault | None:
        for fault in self.faults:
            # A catch-all fault must not break the control API or the media it serves.
            internal = request.path.startswith("/_sim/")
            if internal and not fault.path_prefix.startswith("/_sim"):
                continue
            if fault.matches(request.method, request.path):
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    @staticmethod
    def _fault_response(request: web.Request, fault: Fault) -> web.Response:
        status = fault.status or 500
        if fault.body is not None:
            return web.Response(status=status, text=fault.body, headers=fault.headers)
        body = fault.json
        if body is None:
            reason = REASONS.get(status, "Internal Server Error")
            if request.path.startswith("/v3/"):
                body = {"code": status, "reason": "RATE_LIMIT_EXCEEDED" if status == 429
                        else "SERVICE_NOT_AVAILABLE", "message": reason, "metadata": {}}
            else:
                body = {"code": status, "message": reason}
        return web.json_response(body, status=status, headers=fault.headers)

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path.startswith(("/api/v3/", "/v3/", "/openapi/")):
            auth = request.headers.get("Authorization", "")
            key = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
            if key not in self.config.api_keys:
                message = "Unauthorized: missing or invalid API key"
                if path.startswith(("/v3/", "/openapi/")):
                    return novita_api.novita_error(401, "FAILED_TO_AUTH", message)
                return wavespeed_api.error_reply(401, message)
        return await handler(request)
