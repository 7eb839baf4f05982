"""Outgoing webhooks with retries, timed by the shared scheduler (no sleeping coroutines)."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from providers.simulator.config import SimulatorConfig
from providers.simulator.scheduler import Scheduler

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivery:
    """One attempt, as recorded for tests: status is None when no HTTP answer came back."""

    task_id: str
    url: str
    attempt: int
    status: int | None
    error: str = ""


class WebhookSender:
    def __init__(
        self,
        http: httpx.AsyncClient,
        scheduler: Scheduler,
        config: SimulatorConfig,
        clock: Callable[[], float],
        unix_clock: Callable[[], float],
    ) -> None:
        self._http = http
        self._scheduler = scheduler
        self._config = config
        self._clock = clock
        self._unix = unix_clock
        self._inflight: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(64)
        self.deliveries: deque[Delivery] = deque(maxlen=config.request_log_max)
        self.attempts = 0
        self.succeeded = 0
        self.gave_up = 0
        self._retries_pending = 0
        self._changed = asyncio.Event()

    def send(self, task_id: str, url: str, body: bytes, *, signed: bool, retries: int) -> None:
        copies = 2 if self._config.webhook_duplicate else 1
        for _ in range(copies):
            self._spawn(task_id, url, body, signed, retries, 1)

    def _spawn(self, task_id: str, url: str, body: bytes, signed: bool, retries: int,
               attempt: int) -> None:
        job = asyncio.get_running_loop().create_task(
            self._attempt(task_id, url, body, signed, retries, attempt))
        self._inflight.add(job)
        job.add_done_callback(self._done)

    def _done(self, job: asyncio.Task[None]) -> None:
        self._inflight.discard(job)
        self._changed.set()

    @property
    def busy(self) -> bool:
        return bool(self._inflight or self._retries_pending)

    async def drain(self) -> None:
        """Return once no delivery is in flight or waiting for a retry (event-driven)."""
        while self.busy:
            self._changed.clear()
            await self._changed.wait()

    def _headers(self, task_id: str, body: bytes) -> dict[str, str]:
        from providers.webhooks import sign_wavespeed_webhook

        ts = int(self._unix()) - (3600 if self._config.webhook_stale_timestamp else 0)
        secret = self._config.webhook_secret
        if self._config.webhook_bad_signature:
            secret = "whsec_" + "not-the-secret"
        return {
            "webhook-id": task_id,
            "webhook-timestamp": str(ts),
            "webhook-signature": sign_wavespeed_webhook(secret, task_id, ts, body),
        }

    async def _attempt(self, task_id: str, url: str, body: bytes, signed: bool, retries: int,
                       attempt: int) -> None:
        headers = {"Content-Type": "application/json", "User-Agent": "animatebot-simulator"}
        if signed:
            headers.update(self._headers(task_id, body))
        status: int | None = None
        error = ""
        self.attempts += 1
        try:
            async with self._slots:
                resp = await self._http.post(
                    url, content=body, headers=headers, timeout=self._config.webhook_timeout_s)
            status = resp.status_code
        except httpx.HTTPError as exc:
            error = type(exc).__name__
        self.deliveries.append(Delivery(task_id, url, attempt, status, error))
        if status is not None and 200 <= status < 300:
            self.succeeded += 1
            return
        if attempt > retries:
            self.gave_up += 1
            log.info("webhook for %s gave up after %d attempts", task_id, attempt)
            return
        delay = self._config.webhook_backoff_s * (2 ** (attempt - 1)) * self._config.time_scale
        self._retries_pending += 1

        def retry() -> None:
            self._retries_pending -= 1
            self._spawn(task_id, url, body, signed, retries, attempt + 1)

        self._scheduler.call_at(self._clock() + delay, retry)

    async def close(self) -> None:
        for job in list(self._inflight):
            job.cancel()
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
