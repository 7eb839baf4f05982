"""A submit slower than the lease: the lease is kept while the POST is in flight, and a task
id that comes back is recorded whatever happened to the job meanwhile."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bot.cli.jobs import follow
from providers.simulator import Fault, Simulator
from storage import Job, JobStatus
from tests.bot.conftest import Clock
from tests.bot.test_runner import SUBMIT_PATH, request

LEASE_S = 1.0


def hold_the_submit(simulator: Simulator) -> tuple[asyncio.Event, asyncio.Event]:
    """The next submit reaches the provider and waits there until the test releases it."""
    reached, release = asyncio.Event(), asyncio.Event()
    simulator.add_fault(
        Fault(method="POST", path_prefix=SUBMIT_PATH, reached=reached, hold=release)
    )
    return reached, release


async def _job_where(app: Any, job_id: str, ok: Any) -> Job:
    """Wait (on the database, not a clock) until the job satisfies `ok`."""
    while True:
        job = await app.db.jobs.get(job_id)
        if job is not None and ok(job):
            return job
        await asyncio.sleep(0.02)


async def test_the_lease_is_renewed_while_the_post_is_in_flight(
    make_app: Any, simulator: Simulator, png_file: Path
) -> None:
    reached, release = hold_the_submit(simulator)
    clock = Clock()
    async with make_app(clock=clock, lease_s=LEASE_S) as app:
        animate = asyncio.create_task(app.service.animate(request(png_file)))
        await reached.wait()  # the POST is at the provider, unanswered
        (job,) = await app.db.jobs.list_jobs()
        clock.jump(30 * LEASE_S)  # far past the lease taken when the POST started
        job = await _job_where(app, job.id, lambda j: (j.lease_until or 0) > clock())
        # Renewed: no runner may take the job over, or give it up as an unknown outcome.
        assert await app.db.jobs.claim_due("another-runner", now=clock(), limit=9, lease_s=9) == []
        assert await app.runner.run_once() == 0
        release.set()
        job = (await animate).job
        assert job.status is JobStatus.SUBMITTED and job.provider_task_id in simulator.tasks
        history = [e.to_status for e in await app.db.jobs.history(job.id)]
        assert history == [JobStatus.RESERVED, JobStatus.SUBMITTED]


async def test_a_task_id_that_comes_back_late_is_recorded_and_followed(
    make_app: Any, simulator: Simulator, png_file: Path
) -> None:
    reached, release = hold_the_submit(simulator)
    async with make_app() as app:
        animate = asyncio.create_task(app.service.animate(request(png_file)))
        await reached.wait()
        (job,) = await app.db.jobs.list_jobs()
        # Meanwhile the job was given up as an unknown outcome (a runner whose database
        # writes failed could not keep the lease, say): expired, hold kept.
        await app.service.submitter.outcome_unknown(job)
        release.set()
        job = (await animate).job
        assert job.provider_task_id is not None and job.provider_task_id in simulator.tasks
        assert job.status is JobStatus.SUBMITTED  # followed again: the hold is still held
        assert "answered late" in job.status_reason
        job = await follow(app, job.id)
        assert job.status is JobStatus.DELIVERED
        reservation = await app.db.ledger.get(job.ledger_key)
        assert reservation is not None and reservation.status == "settled"


async def test_a_late_task_id_is_recorded_even_after_the_operator_resolved_the_job(
    make_app: Any, simulator: Simulator, png_file: Path
) -> None:
    reached, release = hold_the_submit(simulator)
    async with make_app() as app:
        animate = asyncio.create_task(app.service.animate(request(png_file)))
        await reached.wait()
        (job,) = await app.db.jobs.list_jobs()
        await app.service.submitter.outcome_unknown(job)
        await app.db.jobs.resolve_hold(job.id, "void", note="operator: not billed")
        release.set()
        job = (await animate).job
        # Nothing is resumed or charged behind the operator's back, but the id is there to
        # check at the provider.
        assert job.status is JobStatus.EXPIRED
        assert job.provider_task_id is not None and job.provider_task_id in simulator.tasks
        history = await app.db.jobs.history(job.id)
        assert "check that task with the provider" in history[-1].note
        reservation = await app.db.ledger.get(job.ledger_key)
        assert reservation is not None and reservation.status == "voided"
