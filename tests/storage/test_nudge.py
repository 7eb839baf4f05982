"""A provider callback makes a job due now, even while another runner holds its lease."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import pytest

from storage import Database, JobStatus, NewJob, Scopes
from storage.notify import wakeups_for
from tests.fixtures_db import FakeClock


async def make_job(db: Database, clock: FakeClock) -> str:
    job_id = uuid.uuid4().hex[:12]
    new = NewJob(
        id=job_id, platform="cli", event_id=job_id, user_id="cli:a", server_id=None,
        model="openvideo", provider="wavespeed", params={}, prompt="p", image_ref="x",
        cost_micros=100_000, next_check_at=clock.now + 600,
    )  # fmt: skip
    await db.jobs.create_reserved(new, Scopes(user_id="cli:a"), ledger_key=f"k-{job_id}")
    return job_id


async def test_a_nudge_during_a_lease_makes_the_release_due_now(
    db: Database, clock: FakeClock
) -> None:
    job_id = await make_job(db, clock)
    clock.advance(600)
    [claimed] = await db.jobs.claim_due("runner-a", now=clock.now, limit=1, lease_s=60)
    assert claimed.id == job_id
    assert await db.jobs.nudge(job_id, max_callbacks=5)  # the callback arrives mid-poll
    # still leased: nobody else may take it yet
    assert await db.jobs.claim_due("runner-b", now=clock.now, limit=1, lease_s=60) == []
    due = await db.jobs.release(job_id, "runner-a", next_check_at=clock.now + 300)
    assert due == clock.now  # the release did not push the job back by 300 s
    [again] = await db.jobs.claim_due("runner-b", now=clock.now, limit=1, lease_s=60)
    assert again.id == job_id
    # the claim consumed the nudge: the next routine release keeps its own time
    assert await db.jobs.release(job_id, "runner-b", next_check_at=clock.now + 300) == (
        clock.now + 300
    )


async def test_a_nudge_on_an_idle_job_is_due_at_once_and_bounded(
    db: Database, clock: FakeClock
) -> None:
    job_id = await make_job(db, clock)
    assert await db.jobs.nudge(job_id, max_callbacks=2)
    [claimed] = await db.jobs.claim_due("r", now=clock.now, limit=1, lease_s=60)
    await db.jobs.release(claimed.id, "r", next_check_at=clock.now + 300)
    assert await db.jobs.nudge(job_id, max_callbacks=2)
    assert not await db.jobs.nudge(job_id, max_callbacks=2)  # a leaked URL costs at most 2
    await db.jobs.transition(job_id, JobStatus.CANCELLED, expect={JobStatus.RESERVED},
                             ledger="void")  # fmt: skip
    assert not await db.jobs.nudge(job_id, max_callbacks=99)  # a finished job: nothing


async def test_a_nudge_on_an_unknown_job_changes_nothing(db: Database) -> None:
    assert not await db.jobs.nudge("nope", max_callbacks=5)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_nudge_in_one_process_wakes_listeners_in_another(
    database_url: str, open_db: Callable[..., Awaitable[Database]], clock: FakeClock
) -> None:
    sender, listener = await open_db(), await open_db()
    woken = asyncio.Event()
    wakeups = wakeups_for(database_url, listener.raw)
    wakeups.subscribe(woken.set)
    await wakeups.start()
    try:
        job_id = await make_job(sender, clock)
        assert await sender.jobs.nudge(job_id, max_callbacks=5)
        await asyncio.wait_for(woken.wait(), 30)
    finally:
        await wakeups.close()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_another_schema_is_another_channel(
    database_url: str, open_db: Callable[..., Awaitable[Database]], clock: FakeClock
) -> None:
    """Two deployments (or test schemas) in one database never wake each other."""
    from tests.fixtures_db import create_schema, drop_schema, postgres_base_url, with_search_path

    base = postgres_base_url()
    assert base is not None
    other_schema = await create_schema(base)
    try:
        other = await open_db()  # this test's schema
        mine_url = with_search_path(base, other_schema)
        from storage import open_database

        mine = await open_database(mine_url, clock=clock)
        heard: list[str] = []
        wakeups = wakeups_for(mine_url, mine.raw)
        wakeups.subscribe(lambda: heard.append("woken"))
        await wakeups.start()
        own_heard = asyncio.Event()
        own = wakeups_for(database_url, other.raw)
        own.subscribe(own_heard.set)
        await own.start()
        try:
            job_id = await make_job(other, clock)
            assert await other.jobs.nudge(job_id, max_callbacks=5)
            await asyncio.wait_for(own_heard.wait(), 30)  # delivered where it belongs...
            # ...and a round trip later, still not in the other schema
            await mine.raw.read(lambda tx: tx.fetchval("SELECT 1"))
            assert heard == []
        finally:
            await wakeups.close()
            await own.close()
            await mine.close()
    finally:
        await drop_schema(base, other_schema)


async def test_catch_up_brings_far_looks_forward_and_leaves_the_rest(
    db: Database, clock: FakeClock
) -> None:
    far = await make_job(db, clock)  # next look in 600 s
    await db.jobs.transition(far, JobStatus.SUBMITTED, expect={JobStatus.RESERVED},
                             provider_task_id="t1", next_check_at=clock.now + 600)  # fmt: skip
    near = await make_job(db, clock)
    await db.jobs.transition(near, JobStatus.SUBMITTED, expect={JobStatus.RESERVED},
                             provider_task_id="t2", next_check_at=clock.now + 10)  # fmt: skip
    leased = await make_job(db, clock)
    await db.jobs.transition(leased, JobStatus.SUBMITTED, expect={JobStatus.RESERVED},
                             provider_task_id="t3", next_check_at=clock.now)  # fmt: skip
    [claimed] = await db.jobs.claim_due("r", now=clock.now, limit=1, lease_s=900)
    assert claimed.id == leased
    reserved = await make_job(db, clock)  # not with the provider yet: not touched
    assert await db.jobs.catch_up(within_s=30) == 1
    jobs = {j.id: j for j in await db.jobs.list_jobs()}
    assert clock.now <= (jobs[far].next_check_at or 0) <= clock.now + 30
    assert jobs[near].next_check_at == clock.now + 10
    assert jobs[leased].next_check_at == clock.now + 900
    assert jobs[reserved].next_check_at == clock.now + 600
