"""The runner's hard cases: lost replies, busy providers, cancels, expiry, take-over."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from bot.cli.jobs import follow
from bot.models import AnimateRequest, ImageSource
from providers.simulator import Fault, Outcome, Simulator
from storage import JobStatus, NewJob, Scopes
from tests.bot.conftest import Clock, Said

SUBMIT_PATH = "/api/v3/wavespeed-ai/open-video/image-to-video"


def request(png: Path, **options: Any) -> AnimateRequest:
    return AnimateRequest(
        platform="cli",
        event_id=uuid.uuid4().hex,
        user_id="alice",
        image=ImageSource(path=str(png)),
        prompt="waves roll in",
        model="openvideo",
        options=options or {"duration": 5, "resolution": "480p"},
        sink={"kind": "file"},
    )


async def test_lost_submit_reply_keeps_the_hold_and_never_resubmits(
    make_app: Any, simulator: Simulator, png_file: Path, said: Said
) -> None:
    # The provider creates (and bills) the task, but the reply never reaches us.
    simulator.add_fault(
        Fault(method="POST", path_prefix=SUBMIT_PATH, after_handler=True, drop_connection=True)
    )
    clock = Clock()
    async with make_app(clock=clock) as app:
        job = (await app.service.animate(request(png_file))).job
        assert job.status is JobStatus.EXPIRED
        assert "may or may not have been made" in job.status_reason
        reservation = await app.db.ledger.get(job.ledger_key)
        assert reservation is not None and reservation.status == "held"  # not refunded
        clock.jump(10_000)
        assert await app.runner.run_once() == 0  # nothing resubmits it
    assert simulator.stats.submits["wavespeed"] == 1
    assert any("operator" in line for line in said.lines)


async def test_rate_limited_submit_is_submitted_later_exactly_once(
    make_app: Any, simulator: Simulator, png_file: Path
) -> None:
    simulator.add_fault(
        Fault(method="POST", path_prefix=SUBMIT_PATH, status=429, headers={"Retry-After": "30"})
    )
    clock = Clock()
    async with make_app(clock=clock) as app:
        job = (await app.service.animate(request(png_file))).job
        assert job.status is JobStatus.RESERVED and job.submit_started_at is None
        assert job.next_check_at is not None and job.next_check_at > clock()
        assert simulator.tasks == {}
        clock.jump(120)
        await app.runner.run_once()
        job = await app.db.jobs.get(job.id)
        assert job is not None and job.status is JobStatus.SUBMITTED
        job = await follow(app, job.id)
    assert job.status is JobStatus.DELIVERED
    assert len(simulator.tasks) == 1


async def test_poll_errors_are_retried_without_failing_the_job(
    app: Any, simulator: Simulator, png_file: Path
) -> None:
    simulator.add_fault(Fault(method="GET", path_prefix="/api/v3/predictions", times=2, status=503))
    job = await follow(app, (await app.service.animate(request(png_file))).job.id)
    assert job.status is JobStatus.DELIVERED
    assert simulator.stats.faults_applied == 2


async def test_expired_output_is_charged_and_said_plainly(
    app: Any, simulator: Simulator, png_file: Path
) -> None:
    simulator.config.output_ttl_s = -1  # the link is dead by the time we fetch it
    job = await follow(app, (await app.service.animate(request(png_file))).job.id)
    assert job.status is JobStatus.EXPIRED
    assert "expired" in job.status_reason
    reservation = await app.db.ledger.get(job.ledger_key)
    assert reservation is not None and reservation.status == "settled"  # the provider billed


async def test_cancel_before_submission_refunds(
    make_app: Any, simulator: Simulator, png_file: Path
) -> None:
    simulator.add_fault(Fault(method="POST", path_prefix=SUBMIT_PATH, status=429))
    clock = Clock()
    async with make_app(clock=clock) as app:
        job = (await app.service.animate(request(png_file))).job
        await app.service.cancel(job.id, by_user="cli:alice")
        await app.runner.run_once()
        job = await app.db.jobs.get(job.id)
        assert job is not None and job.status is JobStatus.CANCELLED
        assert (await app.db.ledger.get(job.ledger_key)).status == "voided"  # type: ignore[union-attr]
    assert simulator.tasks == {}


async def test_cancel_after_submission_discards_the_clip_but_charges(
    app: Any, simulator: Simulator, png_file: Path, tmp_path: Path
) -> None:
    job = (await app.service.animate(request(png_file))).job
    await app.service.cancel(job.id, by_user="cli:alice")
    job = await follow(app, job.id)
    assert job.status is JobStatus.CANCELLED
    assert "charged" in job.status_reason
    assert (await app.db.ledger.get(job.ledger_key)).status == "settled"  # type: ignore[union-attr]
    assert not list((tmp_path / "out").glob("*.mp4"))


async def test_only_the_owner_can_cancel(app: Any, png_file: Path) -> None:
    from bot.errors import NotAllowed

    job = (await app.service.animate(request(png_file))).job
    try:
        await app.service.cancel(job.id, by_user="cli:mallory")
    except NotAllowed as exc:
        assert "Only the person" in exc.user_message
    else:
        raise AssertionError("a stranger cancelled the job")


async def test_runner_takes_over_a_job_whose_creator_died_before_submitting(
    make_app: Any, simulator: Simulator, png_file: Path
) -> None:
    clock = Clock()
    async with make_app(clock=clock) as app:
        now = clock()
        new = NewJob(
            id="dead0000beef",
            platform="cli",
            event_id="evt-dead",
            user_id="cli:alice",
            server_id=None,
            model="openvideo",
            provider="wavespeed",
            params={"prompt": "waves roll in", "duration": 5, "resolution": "480p", "seed": -1},
            prompt="waves roll in",
            image_ref=str(png_file),
            cost_micros=100_000,
            sink={"kind": "file"},
            meta={"image_source": {"path": str(png_file)}},
            next_check_at=now + 60,
            deadline_at=now + 1800,
            lease_owner="a-process-that-died",
            lease_until=now + 60,
        )
        await app.db.jobs.create_reserved(new, Scopes("cli:alice"), ledger_key="cli:evt-dead")
        assert await app.runner.run_once() == 0  # the lease is still the dead owner's
        clock.jump(61)
        await app.runner.run_once()
        job = await app.db.jobs.get("dead0000beef")
        assert job is not None and job.status is JobStatus.SUBMITTED
    assert len(simulator.tasks) == 1


async def test_webhook_nudge_makes_a_job_due_now(app: Any, png_file: Path) -> None:
    job = (await app.service.animate(request(png_file))).job
    await app.db.jobs.update(job.id, next_check_at=time.time() + 3600)
    assert await app.runner.notify_task("wavespeed", job.provider_task_id)
    job = await app.db.jobs.get(job.id)
    assert job.next_check_at <= time.time()
    assert not await app.runner.notify_task("wavespeed", "no-such-task")


async def test_moderated_novita_and_nsfw_flags_are_kept(
    app: Any, simulator: Simulator, png_file: Path
) -> None:
    simulator.next_outcome(Outcome(nsfw=True))
    job = await follow(app, (await app.service.animate(request(png_file))).job.id)
    assert job.status is JobStatus.DELIVERED and job.meta["nsfw"] is True
