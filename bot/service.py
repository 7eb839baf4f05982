"""The one path every front door uses: validate -> quote -> reserve -> submit -> record.

Adapters build an `AnimateRequest`, call `AnimateService.animate`, and render the `Job`
it returns (or the `BotError` it raises). Nothing about money, quotas or providers lives
in an adapter.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from bot.errors import ModelDisabled, NotAllowed, Paused, QuotaRefused, RequestRefused
from bot.images import ImageRejected
from bot.keys import key_refused_message
from bot.media import NO_MEDIA_HOST
from bot.models import AnimateRequest, ImageSource, qualify
from bot.sinks import Progress, SinkRegistry
from bot.submitter import Inputs, Submitter, stored_params
from providers.catalog import ModelSpec, get_model
from providers.params import AnimateParams, InvalidParameters
from providers.pricing import ModelUnavailable, PriceTable, Quote, availability
from storage import (
    ACTIVE,
    IdempotencyConflict,
    Job,
    JobStatus,
    JobStore,
    Ledger,
    Limits,
    NewJob,
    QuotaExceeded,
    SavedLora,
    Scopes,
    ServerStore,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Submission:
    """What the service did with a request: the job as it stands, and whether it is a
    repeat of an event we had already seen (nothing new was reserved). After `reserve`,
    `inputs` are the prepared images `submit` hands to the provider."""

    job: Job
    duplicate: bool = False
    inputs: Inputs | None = None


class AnimateService:
    def __init__(
        self,
        *,
        jobs: JobStore,
        ledger: Ledger,
        servers: ServerStore,
        prices: PriceTable,
        submitter: Submitter,
        sinks: SinkRegistry,
        enabled_providers: frozenset[str],
        owner: str,
        user_limits: Limits | None = None,
        lease_s: float = 60.0,
        job_deadline_s: float = 1800.0,
        clock: Callable[[], float] = time.time,
        wake_runner: Callable[[], None] = lambda: None,
    ) -> None:
        self.jobs = jobs
        self.ledger = ledger
        self.servers = servers
        self.prices = prices
        self.submitter = submitter
        self.sinks = sinks
        self.enabled_providers = enabled_providers
        self.owner = owner
        self.user_limits = user_limits or Limits()  # the operator's default user caps
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
            raise RequestRefused(str(exc), fields=exc.fields or {"model": exc.problems}) from exc
        why = self.unavailable(spec)
        if why is not None:
            raise ModelDisabled(why)
        try:
            quote = self.prices.quote(params)
        except ModelUnavailable as exc:
            raise ModelDisabled(str(exc)) from exc
        return spec, params, quote

    def unavailable(self, spec: ModelSpec) -> str | None:
        """Why `spec` cannot be used here (a missing key or price, or nowhere to upload its
        image), or None when it can."""
        enabled, why = availability(
            spec,
            self.prices,
            has_wavespeed_key="wavespeed" in self.enabled_providers,
            has_novita_key="novita" in self.enabled_providers,
        )
        if not enabled:
            return why
        if self.submitter.media_host(spec.provider) is None:
            return NO_MEDIA_HOST
        return None

    async def resolve_options(
        self, server_id: str | None, model: str, options: Mapping[str, Any]
    ) -> dict[str, Any]:
        """LoRA entries as chat people type them: for models that take LoRA URLs, a saved
        name of the server becomes its URL (and strength, when none is given); a strength
        still missing is 1.0."""
        out = dict(options)
        try:
            spec = get_model(model)
        except InvalidParameters:
            return out  # check() says what is wrong with the model
        url_rules = [r.field for r in spec.lora_rules if r.keys is None]
        if server_id is not None and any(out.get(f) for f in url_rules):
            saved = {lora.name: lora for lora in await self.servers.loras(server_id)}
            for name in url_rules:
                if out.get(name) and saved:
                    out[name] = resolve_saved_loras(out[name], saved)
        for rule in spec.lora_rules:
            if isinstance(out.get(rule.field), list | tuple):
                out[rule.field] = [_default_scale(entry) for entry in out[rule.field]]
        return out

    async def quote(
        self, *, model: str, prompt: str, options: Mapping[str, Any], server_id: str | None
    ) -> tuple[ModelSpec, AnimateParams, Quote]:
        """What a request would cost, with the server's saved LoRAs resolved; no money moves."""
        resolved = await self.resolve_options(server_id, model, options)
        return self.check(model, prompt, resolved)

    async def scopes(
        self, user_id: str, server_id: str | None, role_ids: Collection[str] = ()
    ) -> Scopes:
        """The caps that apply to `user_id` (qualified) on `server_id` (qualified, or None):
        the member's default caps come from the server's caps of `role_ids` when they have
        roles there, else the bot's members' defaults."""
        user_defaults = None
        if server_id is not None and role_ids:
            user_defaults = await self.servers.user_defaults_for(
                server_id, role_ids, self.user_limits
            )
        return Scopes(user_id=user_id, server_id=server_id, user_defaults=user_defaults)

    async def preflight(self, req: AnimateRequest) -> Quote:
        """What `reserve` would refuse, found without the image (`req.image` is not looked
        at) and without moving money: the options (RequestRefused with `fields`), the model,
        a paused server, and a cap that has no room right now. For a form that must answer
        within seconds (Slack's modal shows these on its fields); `reserve` still decides, so
        a request that passes here can be refused there (its image, a race for the last cent).
        """
        server_id = qualify(req.platform, req.server_id) if req.server_id else None
        options = await self.resolve_options(server_id, req.model, req.options)
        _, _, quote = self.check(req.model, req.prompt, options)
        if await self.jobs.get_by_event(req.platform, req.event_id) is not None:
            return quote  # a repeat: `reserve` returns the first job and reserves nothing
        if server_id is not None and await self.servers.is_paused(server_id):
            raise Paused(PAUSED)
        scopes = await self.scopes(qualify(req.platform, req.user_id), server_id, req.role_ids)
        refusal = await self.ledger.would_refuse(scopes, quote.cost_micros, now=self.clock())
        if refusal is not None:
            raise QuotaRefused(refusal.message(), refusal)
        return quote

    async def animate(self, req: AnimateRequest, *, inputs: Inputs | None = None) -> Submission:
        """Validate, read the image, reserve, submit (`reserve` then `submit`)."""
        reserved = await self.reserve(req, inputs=inputs)
        if reserved.duplicate:
            return reserved
        return await self.submit(reserved)

    async def reserve(self, req: AnimateRequest, *, inputs: Inputs | None = None) -> Submission:
        """Validate, read the image, hold the price. Nothing is reserved until the request
        and its image passed every check. A repeated event returns the first job and reserves
        nothing; the same event id with another request is refused. `inputs`: images already
        prepared (a re-roll reuses the first job's).

        The caller holds the job's lease until `submit` (a chat front door posts the reply
        and opens the thread in between); if it dies, a runner submits the job when the
        lease lapses."""
        server_id = qualify(req.platform, req.server_id) if req.server_id else None
        options = await self.resolve_options(server_id, req.model, req.options)
        spec, params, quote = self.check(req.model, req.prompt, options)
        _check_image_source(req)
        fingerprint = request_fingerprint(req, params)
        existing = await self.jobs.get_by_event(req.platform, req.event_id)
        if existing is not None:
            return _repeat(existing, fingerprint, req.event_id)
        if server_id is not None and await self.servers.is_paused(server_id):
            raise Paused(PAUSED)
        refused = await self.submitter.key_refusal(spec.provider)
        if refused is not None:
            raise ModelDisabled(key_refused_message(refused.provider, refused.status_code))
        if inputs is None:
            try:
                inputs = await self.submitter.load_inputs(req.image, params)
            except ImageRejected as exc:
                raise RequestRefused(str(exc), fields={"image": [str(exc)]}) from exc
        scopes = await self.scopes(qualify(req.platform, req.user_id), server_id, req.role_ids)
        now = self.clock()
        new = NewJob(
            id=uuid.uuid4().hex[:12],
            platform=req.platform,
            event_id=req.event_id,
            user_id=scopes.user_id,
            server_id=server_id,
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
            meta={"fingerprint": fingerprint, "quote_basis": quote.basis, **req.meta},
            # We hold the lease: a runner takes the job over only if we die first.
            next_check_at=now + self.lease_s,
            deadline_at=now + self.job_deadline_s,
            lease_owner=self.owner,
            lease_until=now + self.lease_s,
        )
        try:
            created = await self.jobs.create_reserved(
                new, scopes, ledger_key=f"{req.platform}:{req.event_id}", inputs=inputs.stored()
            )
        except QuotaExceeded as exc:
            raise QuotaRefused(exc.refusal.message(), exc.refusal) from exc
        except IdempotencyConflict as exc:  # the key was refused before, for another request
            raise RequestRefused(reused_event(req.event_id)) from exc
        job = created.job
        if not created.created:
            return _repeat(job, fingerprint, req.event_id)
        await self.sinks.for_job(job).progress(job, Progress("queued"))
        return Submission(job, inputs=inputs)

    async def submit(self, reserved: Submission) -> Submission:
        """Hand a job `reserve` just made to the provider, then give the lease to the runner."""
        job = await self.jobs.get(reserved.job.id) or reserved.job
        try:
            job = await self.submitter.submit(job, reserved.inputs)
        finally:
            await self.jobs.release(job.id, self.owner, next_check_at=_next_check(job))
            self.wake_runner()
        return Submission(job)

    async def animate_again(self, job_id: str, req: AnimateRequest, *, reroll: bool) -> Submission:
        """A new clip from an earlier job's image and options, charged anew: a re-roll (a new
        seed) or a retry after a failure (the same seed). `req` says who asks, where, and the
        event (button press) that makes this idempotent; its image, prompt and model are
        ignored. Only the person who started the first clip may (it is their charge)."""
        reserved = await self.reserve_again(job_id, req, reroll=reroll)
        if reserved.duplicate:
            return reserved
        return await self.submit(reserved)

    async def reserve_again(
        self, job_id: str, req: AnimateRequest, *, reroll: bool
    ) -> Submission:
        """`animate_again`, reserved only (see `reserve`); `submit` it after."""
        old, again = await self._again(job_id, req, reroll=reroll)
        inputs = await self.submitter.stored_inputs(old)
        if inputs is None:
            raise RequestRefused(NO_LONGER_KEPT)
        again = again.model_copy(update={"image": ImageSource(data=inputs.image.data)})
        return await self.reserve(again, inputs=inputs)

    async def quote_again(self, job_id: str, req: AnimateRequest, *, reroll: bool) -> Quote:
        """What `animate_again` would charge, to show before anyone presses Confirm (the
        price needs no image: the kept one is only checked to be there)."""
        _, again = await self._again(job_id, req, reroll=reroll)
        server_id = qualify(again.platform, again.server_id) if again.server_id else None
        _, _, quote = await self.quote(
            model=again.model, prompt=again.prompt, options=again.options, server_id=server_id
        )
        return quote

    async def _again(
        self, job_id: str, req: AnimateRequest, *, reroll: bool
    ) -> tuple[Job, AnimateRequest]:
        """The job to run again, and the request that does it (its image: the kept one)."""
        old = await self.jobs.get(job_id)
        if old is None:
            raise RequestRefused(f"There is no job {job_id}.")
        if qualify(req.platform, req.user_id) != old.user_id:
            raise NotAllowed("Only the person who started this clip can run it again.")
        if not reroll and old.status not in RETRYABLE:
            raise RequestRefused(
                f"Only a clip that failed can be retried; this one is {old.status.value}."
            )
        if not await self.submitter.inputs_kept(old):
            raise RequestRefused(NO_LONGER_KEPT)
        options = {k: v for k, v in stored_params(old).items() if k != "prompt"}
        spec = get_model(old.model)
        if reroll and spec.seed_max is not None:
            options["seed"] = reroll_seed(old, req.event_id, spec.seed_max)
        again = req.model_copy(
            update={
                "prompt": old.prompt,
                "model": old.model,
                "options": options,
                "meta": {**req.meta, "again_of": old.id, "reroll": reroll},
            }
        )
        return old, again

    async def cancel(
        self, job_id: str, *, by_user: str | None = None, moderator: bool = False
    ) -> Job:
        """Ask for a job to stop (the person who started it, or a moderator). Not yet
        submitted: cancelled and refunded by the runner. Already submitted: marked; its clip
        is discarded and the ledger records what the provider charges."""
        job = await self.jobs.get(job_id)
        if job is None:
            raise RequestRefused(f"There is no job {job_id}.")
        if by_user is not None and job.user_id != by_user and not moderator:
            raise NotAllowed(
                "Only the person who started this clip, or a moderator, can cancel it."
            )
        if job.status not in ACTIVE:
            raise RequestRefused(f"Job {job_id} is already {job.status.value}.")
        if job.status is JobStatus.COMPLETED:
            raise RequestRefused(
                f"Job {job_id} has finished rendering; it can no longer be cancelled."
            )
        if job.cancel_requested:
            return job
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


RETRYABLE = frozenset({JobStatus.FAILED, JobStatus.EXPIRED})
PAUSED = "/animate is paused on this server by its moderators; nothing was charged."
NO_LONGER_KEPT = (
    "The image of this clip is no longer kept, so it cannot be run again; "
    "start a new /animate with the image."
)


def reused_event(event_id: str) -> str:
    return (
        f"Event id {event_id} was already used for a different request (another image, "
        "options or person); nothing was reserved. Use a new event id."
    )


def request_fingerprint(req: AnimateRequest, params: AnimateParams) -> str:
    """What makes two requests "the same": who, where, the validated options and the image.
    A repeat of an event must match it; anything else under the same event id is refused."""
    src = req.image
    if src.data is not None:
        image = "sha256:" + hashlib.sha256(src.data).hexdigest()
    else:
        image = src.url or src.path or ""
    body = {
        "user": qualify(req.platform, req.user_id),
        "server": qualify(req.platform, req.server_id) if req.server_id else None,
        "params": params.model_dump(mode="json"),
        "image": image,
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def reroll_seed(old: Job, event_id: str, seed_max: int) -> int:
    """A new seed for a re-roll, fixed by the press that asked for it, so that a replayed
    press is the same request (and finds its job) rather than a second charge."""
    digest = hashlib.sha256(f"{old.id}:{event_id}".encode()).digest()
    seed = int.from_bytes(digest[:8], "big") % (seed_max + 1)
    return seed if seed != old.params.get("seed") else (seed + 1) % (seed_max + 1)


def _repeat(job: Job, fingerprint: str, event_id: str) -> Submission:
    recorded = job.meta.get("fingerprint")
    if recorded is not None and recorded != fingerprint:
        raise RequestRefused(reused_event(event_id))
    return Submission(job, duplicate=True)


DEFAULT_LORA_SCALE = 1.0


def _default_scale(entry: Any) -> Any:
    if isinstance(entry, Mapping) and entry.get("scale") in (None, ""):
        return {**entry, "scale": DEFAULT_LORA_SCALE}
    return entry


def resolve_saved_loras(value: Any, saved: Mapping[str, SavedLora]) -> Any:
    """Replace saved LoRA names by their URLs in a LoRA list of {"path", "scale"} entries (or
    "NAME=SCALE" strings); a missing scale takes the saved one. Other entries pass unchanged."""
    if not isinstance(value, list | tuple):
        return value
    out: list[Any] = []
    for entry in value:
        if isinstance(entry, Mapping):
            path, scale = str(entry.get("path", "")), entry.get("scale")
        elif isinstance(entry, str):
            path, _, text = entry.rpartition("=") if "=" in entry else (entry, "", "")
            scale = text or None
        else:
            path, scale = "", None
        lora = saved.get(path.strip().lower())
        if lora is None:
            out.append(entry)
        else:
            out.append({"path": lora.url, "scale": lora.scale if scale in (None, "") else scale})
    return out
