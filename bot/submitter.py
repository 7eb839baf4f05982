"""Getting a reserved job to the provider: prepare the image, host it, POST once, record.

Used by the service on the fast path and by the runner when it takes over a job whose
process died before submitting. Only the holder of the job's lease submits, and the POST is
never repeated: a POST that got no answer leaves the outcome unknown, and the hold stays
until someone checks with the provider (README, "How the money works").

The lease is renewed while the upload and the POST are in flight (a slow provider must not
let another runner give the job up under us), and a task id that comes back is recorded
whatever the job's state by then. A provider that refuses our key (401/403) is not sent
another submit until the key changes (`bot/keys.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bot import messages
from bot.errors import RequestRefused
from bot.images import ImageLimits, ImageRejected, PreparedImage, load_image
from bot.keys import ProviderKeys, key_refused_message
from bot.media import NO_MEDIA_HOST, MediaHost
from bot.models import ImageSource
from bot.schedule import first_poll_delay
from bot.sinks import Progress, SinkRegistry
from providers.base import VideoProvider
from providers.catalog import get_model
from providers.errors import (
    AuthenticationError,
    InsufficientCredit,
    ProviderAPIError,
    ProviderConnectionError,
    ProviderError,
    ProviderServerError,
    RateLimited,
    RequestNotSent,
    UnexpectedResponse,
)
from providers.params import AnimateParams
from storage import InvalidTransition, Job, JobStatus, JobStore, StoredImage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Inputs:
    """A job's prepared images: the picture to animate and, for models that take one, the
    picture the clip should end on."""

    image: PreparedImage
    last_image: PreparedImage | None = None

    def stored(self) -> dict[str, StoredImage]:
        out = {"image": to_stored(self.image)}
        if self.last_image is not None:
            out["last_image"] = to_stored(self.last_image)
        return out


def to_stored(image: PreparedImage) -> StoredImage:
    return StoredImage(image.data, image.content_type, image.filename, image.width, image.height)


def from_stored(image: StoredImage) -> PreparedImage:
    fmt = "JPEG" if image.content_type == "image/jpeg" else "PNG"
    return PreparedImage(
        data=image.data, content_type=image.content_type, filename=image.filename,
        width=image.width, height=image.height, source_format=fmt, converted=False,
    )  # fmt: skip


def stored_params(job: Job) -> dict[str, Any]:
    """The validated parameters as stored, ready to validate again."""
    return {k: v for k, v in job.params.items() if k != "model"}


class Submitter:
    def __init__(
        self,
        *,
        jobs: JobStore,
        providers: Mapping[str, VideoProvider],
        media_host: Callable[[str], MediaHost | None],
        sinks: SinkRegistry,
        image_limits: ImageLimits,
        http: Any,
        owner: str,
        lease_s: float,
        time_scale: float = 1.0,
        clock: Callable[[], float] = time.time,
        webhook_url: Callable[[Job], str | None] | None = None,
        keys: ProviderKeys | None = None,
    ) -> None:
        self.jobs = jobs
        self.providers = providers
        self.media_host = media_host
        self.sinks = sinks
        self.image_limits = image_limits
        self.http = http
        self.owner = owner
        self.lease_s = lease_s
        self.time_scale = time_scale
        self.clock = clock
        self.webhook_url = webhook_url or (lambda job: None)
        self.keys = keys

    async def load_inputs(self, source: ImageSource, params: AnimateParams) -> Inputs:
        """Read, check and prepare the person's image (and the model's last image, when
        asked for) before any money moves; raises ImageRejected with a sentence for them."""
        image = await self._load(source)
        last_ref = getattr(params, "last_image", None)
        last_image = await self._load(ImageSource(url=str(last_ref))) if last_ref else None
        return Inputs(image, last_image)

    async def inputs_kept(self, job: Job) -> bool:
        """Whether `stored_inputs` has something to give (without reading the images)."""
        return bool(job.meta.get("image_source")) or await self.jobs.has_input(job.id)

    async def stored_inputs(self, job: Job) -> Inputs | None:
        """The inputs kept with the job (None once purged). Jobs reserved before inputs were
        kept in the database still name their source in `meta.image_source`."""
        stored = await self.jobs.get_input(job.id)
        if stored is not None:
            last = await self.jobs.get_input(job.id, "last_image")
            return Inputs(from_stored(stored), from_stored(last) if last else None)
        legacy = job.meta.get("image_source")
        if not legacy:
            return None
        params = get_model(job.model).validate(stored_params(job))
        inputs = await self.load_inputs(ImageSource(**legacy), params)
        # keep them now, as the service does for every new job: a signed image URL (Novita)
        # serves the kept input. A no-op insert for a slot already kept.
        for slot, image in inputs.stored().items():
            await self.jobs.put_input(job.id, slot, image)
        return inputs

    async def submit(self, job: Job, inputs: Inputs | None = None) -> Job:
        """Run the job's submission, holding its lease throughout; returns the job as it now
        stands. `inputs`: the images the service just prepared; None = the ones kept with the
        job (a runner taking over)."""
        if not job.cancel_requested:
            refusal = await self.key_refusal(job.provider)
            if refusal is not None:
                msg = key_refused_message(refusal.provider, refusal.status_code)
                return await self.fail(job, messages.rejected_before_submit(msg))
        async with self._lease_kept(job.id):
            return await self._submit(job, inputs)

    def host_providers(self, provider: str) -> list[str]:
        """The providers a job for `provider` talks to: its own, and its image host's."""
        host_provider = getattr(self.media_host(provider), "provider", "")
        return [provider] + ([host_provider] if host_provider else [])

    async def key_refusal(self, provider: str) -> Any:
        """A recorded refusal of a key this job needs, or None."""
        if self.keys is None:
            return None
        return await self.keys.first_refusal(self.host_providers(provider))

    @contextlib.asynccontextmanager
    async def _lease_kept(self, job_id: str) -> AsyncIterator[None]:
        """Renew the job's lease every third of its length (real seconds) until the block
        ends, so no runner takes a job over while its upload or POST is still in flight."""
        stop = asyncio.Event()

        async def renew() -> None:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.lease_s / 3)
                    return
                try:
                    held = await self.jobs.renew(
                        self.owner, [job_id], now=self.clock(), lease_s=self.lease_s
                    )
                except Exception:
                    log.warning("job %s: could not renew its lease; trying again", job_id)
                    continue
                if not held:
                    log.warning("job %s: its lease was taken while submitting", job_id)
                    return

        keeper = asyncio.create_task(renew(), name=f"lease-{job_id}")
        try:
            yield
        finally:
            stop.set()
            await keeper

    async def _submit(self, job: Job, inputs: Inputs | None) -> Job:
        if job.cancel_requested:
            return await self.fail(job, messages.cancelled_before_submit(), JobStatus.CANCELLED)
        spec = get_model(job.model)
        params = spec.validate(stored_params(job))
        if inputs is None:
            try:
                inputs = await self.stored_inputs(job)
            except ImageRejected as exc:
                return await self.fail(job, messages.rejected_before_submit(str(exc)))
            if inputs is None:
                msg = "The image of this clip is no longer kept, so it cannot be submitted."
                return await self.fail(job, messages.rejected_before_submit(msg))
        image, last_image = inputs.image, inputs.last_image

        host = self.media_host(job.provider)
        if host is None:
            await self.fail(job, messages.rejected_before_submit(NO_MEDIA_HOST))
            raise RequestRefused(NO_MEDIA_HOST)
        try:
            image_url = await host.host(image, job_id=job.id)
            last_url = (
                await host.host(last_image, job_id=job.id, slot="last_image")
                if last_image
                else None
            )
        except AuthenticationError as exc:
            return await self._key_refused(job, exc, getattr(host, "provider", job.provider))
        except ProviderError as exc:
            log.warning("job %s: image upload failed: %s", job.id, exc)
            msg = "Could not hand the image to the provider; please try again."
            return await self.fail(job, messages.rejected_before_submit(msg))

        payload = spec.build_payload(
            params,
            image_url=image_url,
            image_size=(image.width, image.height),
            last_image_url=last_url,
        )
        meta = {**job.meta, "image_url": image_url, "image_size": [image.width, image.height]}
        started = await self.jobs.begin_submit(
            job.id, self.owner, now=self.clock(), lease_s=self.lease_s, meta=meta
        )
        if started is None:
            current = await self.jobs.get(job.id)
            if (
                current is not None
                and current.status is JobStatus.RESERVED
                and current.cancel_requested
                and current.lease_owner == self.owner
            ):
                return await self.fail(
                    current, messages.cancelled_before_submit(), JobStatus.CANCELLED
                )
            log.warning("job %s: not ours to submit any more; leaving it", job.id)
            return current or job
        job = started
        return await self._post(job, spec.endpoint, payload, spec.typical_render_s)

    async def _load(self, source: ImageSource) -> PreparedImage:
        target: Any = source.url or source.path or source.data
        if target is None:
            raise ImageRejected("No image was attached: attach a PNG, JPEG or WEBP image.")
        return await load_image(
            target, limits=self.image_limits, headers=source.headers or None, http=self.http
        )

    async def _post(
        self, job: Job, endpoint: str, payload: dict[str, Any], typical_s: float
    ) -> Job:
        provider = self.providers[job.provider]
        hook = self.webhook_url(job)
        try:
            task = await provider.submit(endpoint, payload, webhook_url=hook)
        except (RateLimited, RequestNotSent) as exc:
            # Definitely not taken (a 429, or no connection at all): safe to submit later.
            return await self._submit_later(job, exc)
        except (ProviderConnectionError, ProviderServerError, UnexpectedResponse) as exc:
            log.error("job %s: submit outcome unknown: %s", job.id, exc)
            return await self.outcome_unknown(job)
        except AuthenticationError as exc:
            return await self._key_refused(job, exc, job.provider)
        except InsufficientCredit as exc:
            log.error("job %s: provider account problem: %s", job.id, exc)
            return await self.fail(job, messages.rejected_before_submit(messages.no_credit()))
        except ProviderAPIError as exc:  # 4xx: the provider refused; no task exists
            msg = f"The provider refused the request: {exc}."
            return await self.fail(job, messages.rejected_before_submit(msg))
        # With a callback URL, polling is only the safety net: much slower (bot.schedule).
        delay = first_poll_delay(typical_s, job.provider, callback=hook is not None)
        delay *= self.time_scale
        extra: dict[str, Any] = {"meta": {**job.meta, "callback": True}} if hook else {}
        try:
            job = await self.jobs.transition(
                job.id,
                JobStatus.SUBMITTED,
                expect={JobStatus.RESERVED},
                reason=f"submitted as {task.task_id}",
                provider_task_id=task.task_id,
                next_check_at=self.clock() + delay,
                **extra,
            )
        except InvalidTransition as exc:
            return await self._late_task(exc.job, task.task_id, delay)
        await self.sinks.for_job(job).progress(job, Progress("submitted"))
        return job

    async def _late_task(self, job: Job, task_id: str, delay: float) -> Job:
        """The job moved on while the POST was in flight: keep the task id anyway."""
        log.error(
            "job %s: the provider created task %s after the job became %s; recording it",
            job.id, task_id, job.status.value,
        )  # fmt: skip
        job = await self.jobs.record_late_task(
            job.id,
            task_id,
            resumed=messages.late_task(task_id, resumed=True),
            recorded=messages.late_task(task_id, resumed=False),
            resume_at=self.clock() + delay,
        )
        if job.status is JobStatus.SUBMITTED:
            await self.sinks.for_job(job).progress(job, Progress("submitted"))
        return job

    async def _key_refused(self, job: Job, exc: AuthenticationError, provider: str) -> Job:
        """The provider refused our key: one sentence for everyone, and no more submits to
        it from any process until the key changes."""
        provider = exc.provider or provider
        log.error("job %s: %s refused the API key: %s", job.id, provider, exc)
        if self.keys is not None:
            await self.keys.refused(provider, status_code=exc.status_code, detail=str(exc))
        msg = key_refused_message(provider, exc.status_code)
        return await self.fail(job, messages.rejected_before_submit(msg))

    async def _submit_later(self, job: Job, exc: ProviderError) -> Job:
        now = self.clock()
        if job.deadline_at is not None and now > job.deadline_at:
            msg = "The provider stayed too busy to take this clip; please try again later."
            return await self.fail(job, messages.rejected_before_submit(msg))
        retry_after = getattr(exc, "retry_after", None) or 0.0
        wait = max(retry_after, 10.0 * random.uniform(0.75, 1.25))
        log.info(
            "job %s: provider did not take the submit (%s); again in %.0f s",
            job.id,
            type(exc).__name__,
            wait,
        )
        return await self.jobs.update(
            job.id,
            submit_started_at=None,
            next_check_at=now + wait * self.time_scale,
            status_reason="The provider is busy; the clip will be submitted shortly.",
        )

    async def outcome_unknown(self, job: Job) -> Job:
        """The POST may have created a task we cannot name: keep the hold, tell everyone."""
        msg = messages.outcome_unknown(job.cost_micros, job.id)
        job = await self.jobs.transition(
            job.id, JobStatus.EXPIRED, expect={JobStatus.RESERVED}, reason=msg, next_check_at=None
        )
        await self.sinks.for_job(job).failed(job, msg)
        return job

    async def fail(self, job: Job, message: str, to: JobStatus = JobStatus.FAILED) -> Job:
        """A definite failure before the provider took the task: void the hold."""
        job = await self.jobs.transition(
            job.id,
            to,
            expect={JobStatus.RESERVED},
            reason=message,
            ledger="void",
            next_check_at=None,
        )
        await self.sinks.for_job(job).failed(job, message)
        return job
