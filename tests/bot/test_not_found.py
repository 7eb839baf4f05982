"""A 404 for a task we created is not proof that it is gone: the hold stays, the job is
polled until its deadline, and past it the outcome is left to the operator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.cli.jobs import follow
from providers.simulator import Fault, Simulator
from storage import JobStatus
from tests.bot.conftest import Clock
from tests.bot.test_runner import request

POLL_PATH = "/api/v3/predictions"


async def test_transient_404s_never_void_a_task_that_exists(
    app: Any, simulator: Simulator, png_file: Path
) -> None:
    # A gateway answers 404 to three polls in a row while the task runs (and is billed).
    simulator.add_fault(Fault(method="GET", path_prefix=POLL_PATH, status=404, times=3))
    job = await follow(app, (await app.service.animate(request(png_file))).job.id)
    assert simulator.stats.faults_applied == 3
    assert job.status is JobStatus.DELIVERED
    reservation = await app.db.ledger.get(job.ledger_key)
    assert reservation is not None and reservation.status == "settled"
    assert [e.kind for e in await app.db.ledger.entries()] == ["reserve", "settle"]


async def test_404s_past_the_deadline_leave_the_hold_to_the_operator(
    make_app: Any, simulator: Simulator, png_file: Path
) -> None:
    simulator.add_fault(Fault(method="GET", path_prefix=POLL_PATH, status=404, times=1000))
    clock = Clock()
    # real-time poll delays (not the suite's 1000x faster ones): a job polled just now is
    # never due again within the same pass on a slow machine; the clock jumps past them
    async with make_app(clock=clock, time_scale=1.0) as app:
        job = (await app.service.animate(request(png_file))).job
        for _ in range(5):  # well before the deadline: keep polling, whatever the count
            clock.jump(300)
            assert await app.runner.run_once() == 1
            job = await app.db.jobs.get(job.id)
            assert job is not None and job.status is JobStatus.SUBMITTED
        assert job.meta["not_found"] == 5
        clock.jump(app.settings.job_deadline_s)
        assert await app.runner.run_once() == 1
        job = await app.db.jobs.get(job.id)
        assert job is not None and job.status is JobStatus.EXPIRED
        assert job.provider_task_id is not None and job.provider_task_id in job.status_reason
        assert f"job {job.id} --resolve settle|void" in job.status_reason
        reservation = await app.db.ledger.get(job.ledger_key)
        assert reservation is not None and reservation.status == "held"  # not voided
        assert job.next_check_at is None
        clock.jump(10_000)
        assert await app.runner.run_once() == 0

        job = await app.db.jobs.resolve_hold(job.id, "settle", note="billed per the dashboard")
        reservation = await app.db.ledger.get(job.ledger_key)
        assert reservation is not None and reservation.status == "settled"
