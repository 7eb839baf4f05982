"""The job runner: follows every in-flight job until its clip is delivered or it ends.

One loop per process claims due jobs from the database (with leases, so several runners
share the work and a dead one's jobs are taken over), handles each once — submit, poll,
settle, deliver — and records when to look again. Nothing waits in memory: a job between
two polls is only a row with `next_check_at`, which is what lets one process follow 10,000
jobs and resume all of them after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot import messages
from bot.errors import BotError
from bot.schedule import SLOW_POLL_INTERVAL_S, error_backoff, next_poll_delay
from bot.sinks import Clip, Progress, SinkRegistry
from bot.submitter import Submitter
from providers.base import ProviderTask, TaskStatus, VideoProvider
from providers.catalog import get_model
from providers.errors import NotFound, OutputExpired, ProviderError, RateLimited
from storage import ACTIVE, InvalidTransition, Job, JobStatus, JobStore

log = logging.getLogger(__name__)

FINAL = frozenset(JobStatus) - ACTIVE


@dataclass(frozen=True)
class Next:
    """When to look at a job again (None: never) and what to record as its lease is released,
    so a routine poll costs one database write."""

    at: float | None
    fields: dict[str, Any] = field(default_factory=dict)


NEVER = Next(None)
MAX_CLIP_BYTES = 512 * 1024 * 1024
# A 404 for a task we created is not proof that it is gone (a gateway can answer 404 while
# the task runs and is billed): the job keeps its hold and keeps being polled, with backoff,
# until its deadline; past it, after this many 404s in a row, it is left to the operator as an
# unknown outcome (expired, hold kept) - never voided on a 404.
NOT_FOUND_GIVE_UP = 3
IDLE_LOOK_S = 5.0  # how often an idle runner looks for jobs that other processes created
# Providers call back once per task (retrying only unanswered deliveries); a leaked callback
# URL therefore costs at most this many extra polls.
MAX_CALLBACKS_PER_JOB = 5


def completion_fields(job: Job, task: ProviderTask) -> dict[str, Any]:
    """What a finished task records on its job (a poll's answer or a signed callback)."""
    return {
        "output_url": task.outputs[0] if task.outputs else None,
        "meta": {**job.meta, "nsfw": bool(task.nsfw and task.nsfw[0])},
    }


class JobRunner:
    def __init__(
        self,
        *,
        jobs: JobStore,
        providers: Mapping[str, VideoProvider],
        sinks: SinkRegistry,
        submitter: Submitter,
        owner: str,
        concurrency: int = 32,
        batch: int = 256,
        lease_s: float = 60.0,
        time_scale: float = 1.0,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        on_final: Callable[[Job], None] | None = None,
    ) -> None:
        self.jobs = jobs
        self.providers = providers
        self.sinks = sinks
        self.submitter = submitter
        self.owner = owner
        self.concurrency = concurrency
        self.batch = batch
        self.lease_s = lease_s
        self.time_scale = time_scale
        self.clock = clock
        self.rng = rng or random.Random()
        self.on_final = on_final
        self._wake = asyncio.Event()  # something changed: a wake() or a slot freed
        self._look = True  # claim at the next turn whatever `_due` says
        self._due: float | None = None  # earliest time a job is known to fall due
        self._in_flight: set[asyncio.Task[None]] = set()
        # time.monotonic() of the loop's last turn while `run` is running (for /healthz)
        self.beat: float | None = None

    def wake(self) -> None:
        """Look for due jobs now (a new job, a webhook, a cancel)."""
        self._look = True
        self._wake.set()

    async def notify_task(self, provider: str, task_id: str) -> bool:
        """A webhook said this task changed: poll it now. The webhook body is not trusted."""
        job = await self.jobs.find_by_task(provider, task_id)
        if job is None or job.status not in ACTIVE:
            return False
        return await self.notify_job(job.id)

    async def notify_job(self, job_id: str) -> bool:
        """A provider called back about this job: due now, or as soon as its lease is given
        back (a runner polling it, a submit in flight); every process's runner is woken."""
        if not await self.jobs.nudge(job_id, max_callbacks=MAX_CALLBACKS_PER_JOB):
            return False
        self.wake()
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Follow jobs until `stop` is set; in-flight handling finishes before returning.

        The database is asked for due jobs only when one is known to be due (from the last
        look, or from what this runner just released), when woken, or every few seconds for
        jobs other processes created: a finished poll does not cost a claim.
        """
        try:
            while not stop.is_set():
                self.beat = time.monotonic()
                now = self.clock()
                free = self.concurrency - len(self._in_flight)
                if free > 0 and (self._look or self._due is None or self._due <= now):
                    self._look = False
                    if await self._claim_and_start(free) == free:
                        continue  # the slots are full; more may be due
                    self._due = await self.jobs.next_due_at()
                await self._wait(stop, free)
        finally:
            self.beat = None
            if self._in_flight:
                await asyncio.gather(*self._in_flight, return_exceptions=True)

    def alive(self, stale_s: float = 60.0) -> bool | None:
        """None when `run` is not running in this process; else whether its loop turned
        within `stale_s` (it turns at least every IDLE_LOOK_S, or when a job step ends)."""
        if self.beat is None:
            return None
        return time.monotonic() - self.beat <= stale_s

    async def run_once(self) -> int:
        """Handle every job due now, once; for tests and `run --once`."""
        total = 0
        while True:
            jobs = await self.jobs.claim_due(
                self.owner, now=self.clock(), limit=self.batch, lease_s=self.lease_s
            )
            if not jobs:
                return total
            total += len(jobs)
            await asyncio.gather(*(self._handle(job) for job in jobs))

    async def _claim_and_start(self, free: int) -> int:
        jobs = await self.jobs.claim_due(
            self.owner, now=self.clock(), limit=min(free, self.batch), lease_s=self.lease_s
        )
        for job in jobs:
            task = asyncio.create_task(self._handle(job), name=f"job-{job.id}")
            self._in_flight.add(task)
            task.add_done_callback(self._done)
        return len(jobs)

    def _done(self, task: asyncio.Task[None]) -> None:
        if self.beat is not None:
            self.beat = time.monotonic()
        self._in_flight.discard(task)
        self._wake.set()  # a slot is free

    def _note_due(self, at: float | None) -> None:
        if at is not None and (self._due is None or at < self._due):
            self._due = at

    async def _wait(self, stop: asyncio.Event, free: int) -> None:
        now = self.clock()
        if free <= 0:
            timeout: float | None = None  # until a slot frees
        elif self._due is None:
            timeout = IDLE_LOOK_S
        else:
            # A job still due right after a claim is another runner's: do not spin on it.
            timeout = min(IDLE_LOOK_S, max(self._due - now, 0.05))
        self._wake.clear()
        waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
        if timeout is not None and not self._wake.is_set() and not stop.is_set():
            self._look = True  # the periodic look, for jobs other processes created

    # --- one job, once ---

    async def _handle(self, job: Job) -> None:
        nxt = NEVER
        try:
            nxt = await self._step(job)
        except InvalidTransition:
            log.info("job %s changed under us; leaving it", job.id)
        except Exception:
            log.exception("job %s: unexpected error; will look again", job.id)
            nxt = Next(self.clock() + error_backoff(2, rng=self.rng) * self.time_scale)
        finally:
            due = nxt.at
            with contextlib.suppress(Exception):
                # a callback that arrived during the lease makes the job due now
                due = await self.jobs.release(
                    job.id, self.owner, next_check_at=nxt.at, **nxt.fields
                )
            self._note_due(due)
        if self.on_final is not None:
            current = await self.jobs.get(job.id)
            if current is not None and current.status in FINAL:
                self.on_final(current)

    def _after(self, seconds: float, **fields: Any) -> Next:
        """Look again `seconds` (unscaled) from now, recording `fields` with the release."""
        return Next(self.clock() + seconds * self.time_scale, fields)

    async def _step(self, job: Job) -> Next:
        """Advance the job by one step; says when to look at it again and what to record."""
        if job.status is JobStatus.RESERVED:
            if job.submit_started_at is not None and job.provider_task_id is None:
                await self.submitter.outcome_unknown(job)
                return NEVER
            try:
                job = await self.submitter.submit(job)
            except BotError:
                return NEVER
            return Next(job.next_check_at) if job.status in ACTIVE else NEVER
        if job.status in (JobStatus.SUBMITTED, JobStatus.PROCESSING):
            return await self._poll(job)
        if job.status is JobStatus.COMPLETED:
            return await self._deliver(job)
        return NEVER

    async def _poll(self, job: Job) -> Next:
        provider = self.providers.get(job.provider)
        if provider is None:
            log.error("job %s: provider %s is not configured here", job.id, job.provider)
            return self._after(SLOW_POLL_INTERVAL_S)
        assert job.provider_task_id is not None
        misses = int(job.meta.get("not_found", 0))
        try:
            task = await provider.get(job.provider_task_id)
        except RateLimited as exc:
            return self._after(exc.retry_after or error_backoff(1, rng=self.rng))
        except NotFound:
            misses += 1
            past_deadline = job.deadline_at is not None and self.clock() > job.deadline_at
            if misses >= NOT_FOUND_GIVE_UP and past_deadline:
                return await self._not_found(job)
            log.warning("job %s: the provider answered 404 for its task (%d in a row)",
                        job.id, misses)  # fmt: skip
            wait = error_backoff(misses, rng=self.rng)
            return self._after(wait, meta={**job.meta, "not_found": misses})
        except ProviderError as exc:
            errors = int(job.meta.get("poll_errors", 0)) + 1
            log.warning("job %s: poll failed (%s); retrying", job.id, type(exc).__name__)
            wait = error_backoff(errors, rng=self.rng)
            return self._after(wait, meta={**job.meta, "poll_errors": errors})
        if task.status is TaskStatus.COMPLETED:
            return await self._completed(job, task)
        if task.status.terminal:
            return await self._failed(job, task)
        return await self._still_running(job, task, misses)

    async def _still_running(self, job: Job, task: ProviderTask, misses: int) -> Next:
        now = self.clock()
        elapsed = (now - (job.submit_started_at or job.created_at)) / self.time_scale
        fields: dict[str, Any] = {"poll_count": job.poll_count + 1}
        if task.progress_percent is not None:
            fields["progress_percent"] = task.progress_percent
        meta = {**job.meta, "not_found": 0} if misses else dict(job.meta)
        if job.status is JobStatus.SUBMITTED and task.status is TaskStatus.PROCESSING:
            job = await self.jobs.transition(
                job.id, JobStatus.PROCESSING, expect={JobStatus.SUBMITTED}, reason="rendering"
            )
        sink = self.sinks.for_job(job)
        if job.deadline_at is not None and now > job.deadline_at:
            if not meta.get("told_slow"):
                meta["told_slow"] = True
                await sink.progress(job, Progress("slow", elapsed, task.progress_percent))
            return self._after(SLOW_POLL_INTERVAL_S, meta=meta, **fields)
        if task.status is TaskStatus.PROCESSING:
            await sink.progress(job, Progress("processing", elapsed, task.progress_percent))
        spec = get_model(job.model)
        delay = next_poll_delay(
            elapsed,
            typical_render_s=spec.typical_render_s,
            provider=job.provider,
            rng=self.rng,
            callback=bool(job.meta.get("callback")),
        )
        if meta != job.meta:
            fields["meta"] = meta
        return self._after(delay, **fields)

    async def _completed(self, job: Job, task: ProviderTask) -> Next:
        fields: dict[str, Any] = {"poll_count": job.poll_count + 1, **completion_fields(job, task)}
        running = {JobStatus.SUBMITTED, JobStatus.PROCESSING}
        if job.cancel_requested:
            msg = messages.cancelled_after_completion(job.cost_micros)
            job = await self.jobs.transition(
                job.id, JobStatus.CANCELLED, expect=running, reason=msg, ledger="settle", **fields
            )
            await self.sinks.for_job(job).failed(job, msg)
            return NEVER
        job = await self.jobs.transition(
            job.id,
            JobStatus.COMPLETED,
            expect=running,
            reason="the provider finished the clip",
            ledger="settle",
            **fields,
        )
        return await self._deliver(job)

    async def _failed(self, job: Job, task: ProviderTask) -> Next:
        running = {JobStatus.SUBMITTED, JobStatus.PROCESSING}
        if job.cancel_requested:
            msg, to = messages.cancelled_after_failure(), JobStatus.CANCELLED
        else:
            reason = task.error or f"status {task.raw_status or task.status.value}"
            msg = messages.provider_failed(job.cost_micros, reason=reason, code=task.error_code)
            to = JobStatus.FAILED
        job = await self.jobs.transition(
            job.id,
            to,
            expect=running,
            reason=msg,
            ledger="void",
            error_code=task.error_code,
            poll_count=job.poll_count + 1,
        )
        await self.sinks.for_job(job).failed(job, msg)
        return NEVER

    async def _not_found(self, job: Job) -> Next:
        """Still 404 past the deadline: the outcome is unknown. The hold stays for the
        operator (`job ID --resolve settle|void` after checking the task at the provider)."""
        assert job.provider_task_id is not None
        msg = messages.task_not_found(job.cost_micros, job.id, job.provider_task_id)
        job = await self.jobs.transition(
            job.id,
            JobStatus.EXPIRED,
            expect={JobStatus.SUBMITTED, JobStatus.PROCESSING},
            reason=msg,
            next_check_at=None,
        )
        await self.sinks.for_job(job).failed(job, msg)
        return NEVER

    async def _deliver(self, job: Job) -> Next:
        """Download the clip now (Novita links live ~1 h) and hand it to the job's sink."""
        provider = self.providers.get(job.provider)
        attempts = int(job.meta.get("delivery_attempts", 0)) + 1
        if provider is None or not job.output_url:
            return self._after(SLOW_POLL_INTERVAL_S)
        try:
            data = await provider.download(job.output_url, max_bytes=MAX_CLIP_BYTES)
        except OutputExpired:
            msg = messages.output_expired(job.cost_micros)
            job = await self.jobs.transition(
                job.id, JobStatus.EXPIRED, expect={JobStatus.COMPLETED}, reason=msg
            )
            await self.sinks.for_job(job).failed(job, msg)
            return NEVER
        except ProviderError as exc:
            log.warning("job %s: clip download failed (%s); retrying", job.id, type(exc).__name__)
            return self._retry_delivery(job, attempts)
        clip = Clip(data=data, filename=f"{job.id}.mp4", nsfw=bool(job.meta.get("nsfw")))
        try:
            ref = await self.sinks.for_job(job).deliver(job, clip)
        except Exception:
            log.exception("job %s: delivery failed; will retry", job.id)
            return self._retry_delivery(job, attempts)
        await self.jobs.transition(
            job.id,
            JobStatus.DELIVERED,
            expect={JobStatus.COMPLETED},
            reason="clip delivered",
            delivered_ref=ref,
        )
        return NEVER

    def _retry_delivery(self, job: Job, attempts: int) -> Next:
        wait = error_backoff(attempts, rng=self.rng)
        return self._after(wait, meta={**job.meta, "delivery_attempts": attempts})
