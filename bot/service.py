"""The one path every front door uses: validate -> quote -> reserve -> submit -> record.

Adapters build an `AnimateRequest`, call `AnimateService.animate`, and render the `Job`
it returns (or the `BotError` it raises). Nothing about money, quotas or providers lives
in an adapter.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.errors import ModelDisabled, NotAllowed, QuotaRefused, RequestRefused
from bot.media import NO_MEDIA_HOST
from bot.models import AnimateRequest, qualify
from bot.sinks import Progress, SinkRegistry
from bot.submitter import Submitter
from providers.catalog import ModelSpec, get_model
from providers.params import AnimateParams, InvalidParameters
from providers.pricing import ModelUnavailable, PriceTable, Quote, availability
from storage import ACTIVE, Job, JobStatus, JobStore, NewJob, QuotaExceeded, Scopes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Submission:
    """What the service did with a request: the job as it stands, and whether it is a
    repeat of an event we had already seen (nothing new was reserved)."""

    job: Job
    duplicate: bool = False


class AnimateService:
    def __init__(
        self,
        *,
        jobs: JobStore,
        prices: PriceTable,
        submitter: Submitter,
        sinks: SinkRegistry,
        enabled_providers: frozenset[str],
        owner: str,
        lease_s: float = 60.0,
        job_deadline_s: float = 1800.0,
        clock: Callable[[], float] = time.time,
        wake_runner: Callable[[], None] = lambda: None,
    ) -> None:
        self.jobs = jobs
        self.prices = prices
        self.submitter = submitter
        self.sinks = sinks
        self.enabled_providers = enabled_providers
        self.owner = owner
        self.lease_s = lease_s
        self.job_deadline_s = job_deadline_s
        self.clock = clock
        self.wake_runner = wake_runner

    def check(
        self, model: str, prompt: str, options: dict[str, Any]
    ) -> tuple[ModelSpec, AnimateParams, Quote]:
        """Validate and price a request without touching money; raises RequestRefused."""
        try:
            spec = get_model(model)
            params = spec.validate({"prompt": prompt, **options})
        except InvalidParameters as exc:
            raise RequestRefused(str(exc)) from exc
        enabled, why = availability(
            spec,
            self.prices,
            has_wavespeed_key="wavespeed" in self.enabled_providers,
            has_novita_key="novita" in self.enabled_providers,
        )
        if not enabled:
            raise ModelDisabled(why)
        if self.submitter.media_host(spec.provider) is None:
            raise ModelDisabled(NO_MEDIA_HOST)
        try:
            quote = self.prices.quote(params)
        except ModelUnavailable as exc:
            raise ModelDisabled(str(exc)) from exc
        return spec, params, quote

    async def animate(self, req: AnimateRequest) -> Submission:
        """Reserve and submit. A repeated event returns the first job and reserves nothing."""
        existing = await self.jobs.get_by_event(req.platform, req.event_id)
        if existing is not None:
            return Submission(existing, duplicate=True)
        spec, params, quote = self.check(req.model, req.prompt, dict(req.options))
        _check_image_source(req)
        now = self.clock()
        image_source: dict[str, Any] = {}
        if req.image.url:
            image_source = {"url": req.image.url}
        elif req.image.path:
            image_source = {"path": req.image.path}
        new = NewJob(
            id=uuid.uuid4().hex[:12],
            platform=req.platform,
            event_id=req.event_id,
            user_id=qualify(req.platform, req.user_id),
            server_id=qualify(req.platform, req.server_id) if req.server_id else None,
            model=spec.id,
            provider=spec.provider,
            params=params.model_dump(mode="json"),
            prompt=params.prompt,
            image_ref=req.image.ref(),
            cost_micros=quote.cost_micros,
            channel_id=req.channel_id,
            thread_id=req.thread_id,
            message_id=req.message_id,
            sink=dict(req.sink),
            meta={"image_source": image_source, "quote_basis": quote.basis},
            # We hold the lease: a runner takes the job over only if we die first.
            next_check_at=now + self.lease_s,
            deadline_at=now + self.job_deadline_s,
            lease_owner=self.owner,
            lease_until=now + self.lease_s,
        )
        scopes = Scopes(user_id=new.user_id, server_id=new.server_id)
        try:
            created = await self.jobs.create_reserved(
                new, scopes, ledger_key=f"{req.platform}:{req.event_id}"
            )
        except QuotaExceeded as exc:
            raise QuotaRefused(exc.refusal.message(), exc.refusal) from exc
        job = created.job
        if not created.created:
            return Submission(job, duplicate=True)
        await self.sinks.for_job(job).progress(job, Progress("queued"))
        try:
            job = await self.submitter.submit(job, req.image)
        finally:
            await self.jobs.release(job.id, self.owner, next_check_at=_next_check(job))
            self.wake_runner()
        return Submission(job)

    async def cancel(self, job_id: str, *, by_user: str | None = None) -> Job:
        """Ask for a job to stop. Not yet submitted: cancelled and refunded by the runner.
        Already submitted: marked; its clip is discarded and the ledger records what the
        provider charges."""
        job = await self.jobs.get(job_id)
        if job is None:
            raise RequestRefused(f"There is no job {job_id}.")
        if by_user is not None and job.user_id != by_user:
            raise NotAllowed("Only the person who started this clip can cancel it.")
        if job.status not in ACTIVE:
            raise RequestRefused(f"Job {job_id} is already {job.status.value}.")
        if job.status is JobStatus.COMPLETED:
            raise RequestRefused(
                f"Job {job_id} has finished rendering; it can no longer be cancelled."
            )
        job = await self.jobs.update(job_id, cancel_requested=True, next_check_at=self.clock())
        self.wake_runner()
        return job


def _next_check(job: Job) -> float | None:
    return job.next_check_at if job.status in ACTIVE else None


def _check_image_source(req: AnimateRequest) -> None:
    src = req.image
    if sum(x is not None for x in (src.url, src.path, src.data)) != 1:
        raise RequestRefused("Attach exactly one image (PNG, JPEG or WEBP).")
    if src.url and not src.url.lower().startswith(("http://", "https://")):
        raise RequestRefused("The image must be an http(s) link or an attached file.")
