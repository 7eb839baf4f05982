"""What a provider callback (webhook) may change, whichever process receives it.

- The URL's token must be genuine (signed by us for this job and this provider), or nothing
  is read at all.
- WaveSpeed signs its callbacks: a valid signature, fresh within 300 s, over the raw body.
  Then a signed "completed" body carries the result, which is recorded at once (the charge
  settled with the status change, in one transaction) and a runner only downloads and
  delivers: no poll. Any other signed status only makes the job due now.
- Novita signs nothing: its body is never trusted. The callback only makes the job due now,
  and the runner fetches the task itself.
- Duplicate, late and out-of-order callbacks change nothing: every change is a
  compare-and-set on the job's status, and a job honours a bounded number of callbacks.

The job is woken through the database (`JobStore.nudge`: PostgreSQL NOTIFY reaches the
runner holding its lease in another process); polling stays as the safety net.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from enum import StrEnum

from bot import messages
from bot.links import LinkSigner
from bot.runner import JobRunner, completion_fields
from providers.base import ProviderTask, TaskStatus
from providers.errors import ProviderError, WebhookVerificationError
from providers.novita import novita_webhook_task_id
from providers.webhooks import verify_wavespeed_webhook
from storage import InvalidTransition, Job, JobStatus, JobStore

log = logging.getLogger(__name__)

SECRET_REFRESH_S = 600.0  # a signature that fails makes us re-read the secret this rarely
_RUNNING = frozenset({JobStatus.SUBMITTED, JobStatus.PROCESSING})
_WAKEABLE = _RUNNING | {JobStatus.RESERVED}  # reserved: the submit is in flight


class Outcome(StrEnum):
    APPLIED = "applied"  # a signed result was recorded; a runner delivers
    WOKEN = "woken"  # the job is due now; a runner polls it
    IGNORED = "ignored"  # duplicate, late, or about nothing we follow: answered 200
    BAD_TOKEN = "bad_token"  # noqa: S105 - not our URL: 404
    BAD_SIGNATURE = "bad_signature"  # forged, stale or unsigned: 401
    UNAVAILABLE = "unavailable"  # we cannot check it now (secret, database): 503, retried


class SecretUnavailable(Exception):
    """The WaveSpeed webhook secret is neither configured nor fetchable right now."""


class WebhookSecret:
    """WAVESPEED_WEBHOOK_SECRET, or the account's secret fetched once and cached; re-read at
    most every SECRET_REFRESH_S when a signature fails (the operator may have rotated it)."""

    def __init__(
        self,
        configured: str | None,
        fetch: Callable[[], Awaitable[str]] | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._value = configured
        self._fixed = configured is not None
        self._fetch = fetch
        self._clock = clock
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> str:
        if self._value is not None:
            return self._value
        async with self._lock:
            if self._value is None:
                await self._load()
        assert self._value is not None
        return self._value

    async def refresh(self) -> str | None:
        """A fresh copy when a re-read is allowed now, else None."""
        if self._fixed or self._fetch is None:
            return None
        async with self._lock:
            if self._fetched_at is not None and self._clock() - self._fetched_at < SECRET_REFRESH_S:
                return None
            await self._load()
            return self._value

    async def _load(self) -> None:
        if self._fetch is None:
            raise SecretUnavailable(
                "no WaveSpeed webhook secret: set WAVESPEED_WEBHOOK_SECRET or WAVESPEED_API_KEY"
            )
        self._fetched_at = self._clock()
        try:
            self._value = await self._fetch()
        except ProviderError as exc:
            raise SecretUnavailable(f"could not fetch the WaveSpeed webhook secret: {exc}") from exc


class CallbackInbox:
    def __init__(
        self,
        *,
        jobs: JobStore,
        runner: JobRunner,
        links: LinkSigner,
        wavespeed_secret: WebhookSecret,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.jobs = jobs
        self.runner = runner
        self.links = links
        self.secret = wavespeed_secret
        self.wall_clock = wall_clock  # the signature's freshness is against real time

    def _job_id(self, provider: str, token: str) -> str | None:
        claims = self.links.verify("hook", token)
        if claims is None or claims.item != provider:
            return None
        return claims.job_id

    async def wavespeed(self, token: str, headers: Mapping[str, str], body: bytes) -> Outcome:
        job_id = self._job_id("wavespeed", token)
        if job_id is None:
            return Outcome.BAD_TOKEN
        try:
            task = await self._verified(headers, body)
        except SecretUnavailable as exc:
            log.error("%s", exc)
            return Outcome.UNAVAILABLE
        except WebhookVerificationError as exc:
            log.warning("refused a WaveSpeed callback for job %s: %s", job_id, exc)
            return Outcome.BAD_SIGNATURE
        job = await self.jobs.get(job_id)
        if job is not None and job.status is JobStatus.EXPIRED and job.provider_task_id is None:
            job = await self._adopt(job, task.task_id)
        if job is None or job.status not in _WAKEABLE:
            return Outcome.IGNORED
        if job.provider_task_id is not None and task.task_id != job.provider_task_id:
            log.warning(
                "job %s: a signed callback about task %s, but the job's task is %s; ignored",
                job.id, task.task_id, job.provider_task_id,
            )  # fmt: skip
            return Outcome.IGNORED
        if task.status is TaskStatus.COMPLETED and task.outputs and await self._record(job, task):
            await self.runner.notify_job(job.id)  # deliver now, wherever the runner is
            return Outcome.APPLIED
        return Outcome.WOKEN if await self.runner.notify_job(job.id) else Outcome.IGNORED

    async def _adopt(self, job: Job, task_id: str) -> Job | None:
        """A submit whose answer was lost (an unknown outcome: the job expired, its hold kept)
        answered after all by WaveSpeed's signed callback for this job's own URL. The task is
        the job's - a job has at most one, since an unknown outcome is never resubmitted - so
        it is recorded and, while the hold is held and no one has resolved the job, followed
        again (the same step as a submit answered late, JobStore.record_late_task)."""
        log.warning("job %s: a signed callback named task %s; recording it", job.id, task_id)
        try:
            return await self.jobs.record_late_task(
                job.id,
                task_id,
                resumed=messages.late_task(task_id, resumed=True, callback=True),
                recorded=messages.late_task(task_id, resumed=False, callback=True),
                resume_at=self.runner.clock(),
            )
        except InvalidTransition:
            return None  # another task was recorded meanwhile: never overwrite it

    async def _verified(self, headers: Mapping[str, str], body: bytes) -> ProviderTask:
        now = self.wall_clock()
        try:
            return verify_wavespeed_webhook(headers, body, await self.secret.get(), now=now)
        except WebhookVerificationError:
            fresh = await self.secret.refresh()
            if fresh is None:
                raise
            return verify_wavespeed_webhook(headers, body, fresh, now=now)

    async def _record(self, job: Job, task: ProviderTask) -> bool:
        """Complete and settle the job from a signed result; False when that is not ours to
        do (a cancel to honour, the submit not yet recorded, or the runner got there first)."""
        if job.status not in _RUNNING or job.cancel_requested:
            return False
        try:
            await self.jobs.transition(
                job.id,
                JobStatus.COMPLETED,
                expect=_RUNNING,
                reason="the provider finished the clip (signed callback)",
                ledger="settle",
                **completion_fields(job, task),
            )
        except InvalidTransition:
            return False
        return True

    async def novita(self, token: str, body: bytes) -> Outcome:
        job_id = self._job_id("novita", token)
        if job_id is None:
            return Outcome.BAD_TOKEN
        task_id = novita_webhook_task_id(body)  # untrusted: only to tell events apart
        if task_id is None:
            return Outcome.IGNORED  # another event type, or not a task result
        job = await self.jobs.get(job_id)
        if job is None or job.status not in _WAKEABLE:
            return Outcome.IGNORED
        if job.provider_task_id is not None and task_id != job.provider_task_id:
            return Outcome.IGNORED
        return Outcome.WOKEN if await self.runner.notify_job(job.id) else Outcome.IGNORED
