"""An operator's verdict on an unknown outcome happens once: one transaction, one winner."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Literal

import pytest

from storage import Database, JobStatus, NothingToResolve
from tests.storage.test_jobs import create, new_job

S = JobStatus
Outcome = Literal["settle", "void"]


async def expired_with_hold(db: Database) -> str:
    job = (await create(db, new_job())).job
    await db.jobs.transition(job.id, S.EXPIRED, expect={S.RESERVED}, reason="outcome unknown")
    return job.id


@pytest.mark.parametrize(
    ("first", "second"), [("void", "void"), ("settle", "void"), ("settle", "settle")]
)
async def test_overlapping_resolutions_have_one_winner(
    open_db: Callable[..., Awaitable[Database]], first: Outcome, second: Outcome
) -> None:
    # Two operators (two processes: two connections) resolve the same job at once.
    a, b = await open_db(), await open_db()
    job_id = await expired_with_hold(a)
    results = await asyncio.gather(
        a.jobs.resolve_hold(job_id, first, note=f"operator A: {first}"),
        b.jobs.resolve_hold(job_id, second, note=f"operator B: {second}"),
        return_exceptions=True,
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    losers = [r for r in results if isinstance(r, BaseException)]
    assert len(winners) == 1 and len(losers) == 1
    assert isinstance(losers[0], NothingToResolve)  # not InvalidLedgerTransition
    assert "was already resolved" in str(losers[0])

    job = await a.jobs.get(job_id)
    assert job is not None and job.status is S.EXPIRED
    steps = [e.kind for e in await a.ledger.entries()]
    assert steps.count("settle") + steps.count("void") == 1
    notes = [e.note for e in await a.jobs.history(job_id)]
    assert sum(note.startswith("operator") for note in notes) == 1
    reservation = await a.ledger.get(job.ledger_key)
    outcome = "settled" if job.meta["resolved"]["outcome"] == "settle" else "voided"
    assert reservation is not None and reservation.status == outcome
    assert await a.ledger.check_books() == []


async def test_only_an_expired_job_with_a_held_hold_can_be_resolved(db: Database) -> None:
    job = (await create(db, new_job())).job
    with pytest.raises(NothingToResolve, match="has no unresolved hold \\(status reserved\\)"):
        await db.jobs.resolve_hold(job.id, "void", note="too early")
    await db.jobs.transition(job.id, S.FAILED, expect={S.RESERVED}, ledger="void")
    with pytest.raises(NothingToResolve, match="status failed"):
        await db.jobs.resolve_hold(job.id, "settle", note="not expired")
    assert [e.kind for e in await db.ledger.entries()] == ["reserve", "void"]
