"""Job store: create with its hold, transitions + history + CAS, leases, claim order."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from storage import (
    ACTIVE,
    Database,
    DuplicateJob,
    InvalidTransition,
    JobStatus,
    LimitDefaults,
    Limits,
    NewJob,
    QuotaExceeded,
    Scopes,
    UnknownJob,
)
from tests.fixtures_db import FakeClock

S = JobStatus


def new_job(n: int = 1, **over: object) -> NewJob:
    base = NewJob(
        id=f"job-{n}",
        platform="discord",
        event_id=f"evt-{n}",
        user_id="discord:alice",
        server_id="discord:guild",
        model="wan-2.1",
        provider="wavespeed",
        params={"duration": 5, "resolution": "480p"},
        prompt="a cat surfing",
        image_ref="https://cdn.example/cat.png",
        cost_micros=300_000,
        sink={"kind": "discord", "channel": "c1"},
        meta={"attempt": 0},
        next_check_at=None,
    )
    return replace(base, **over)  # type: ignore[arg-type]


def scopes_of(job: NewJob) -> Scopes:
    return Scopes(job.user_id, job.server_id)


async def create(db: Database, job: NewJob, key: str | None = None):  # type: ignore[no-untyped-def]
    return await db.jobs.create_reserved(job, scopes_of(job), ledger_key=key or f"led-{job.id}")


async def test_create_reserved_holds_money_and_records_history(
    db: Database, clock: FakeClock
) -> None:
    res = await create(db, new_job())
    assert res.created
    job = res.job
    assert (job.status, job.ledger_key, job.cost_micros, job.params) == (
        S.RESERVED, "led-job-1", 300_000, {"duration": 5, "resolution": "480p"},
    )  # fmt: skip
    assert job.sink == {"kind": "discord", "channel": "c1"} and job.cancel_requested is False
    hold = await db.ledger.get("led-job-1")
    assert hold is not None and (hold.status, hold.amount_micros, hold.model) == (
        "held",
        300_000,
        "wan-2.1",
    )
    assert [(e.from_status, e.to_status) for e in await db.jobs.history("job-1")] == [
        (None, S.RESERVED)
    ]
    assert await db.jobs.get("job-1") == job
    assert await db.jobs.get_by_event("discord", "evt-1") == job
    assert await db.jobs.get("nope") is None


async def test_duplicate_event_returns_same_job_and_one_hold(db: Database) -> None:
    first = await create(db, new_job())
    again = await create(db, new_job(id="job-other"), key="led-other")
    assert not again.created and again.job.id == "job-1"
    assert await db.ledger.get("led-other") is None
    # concurrent duplicates of one event, several processes' worth of tasks
    results = await asyncio.gather(
        *(create(db, new_job(2, id=f"dup-{i}"), key=f"led-dup-{i}") for i in range(8))
    )
    assert sum(r.created for r in results) == 1
    assert len({r.job.id for r in results}) == 1
    entries = await db.ledger.entries()
    assert sum(e.kind == "reserve" for e in entries) == 2
    assert first.job.id == "job-1"
    with pytest.raises(DuplicateJob):
        await create(db, new_job(3, id="job-1"), key="led-3")
    assert await db.ledger.get("led-3") is None
    assert await db.ledger.check_books() == []


async def test_refused_create_leaves_no_job(open_db) -> None:  # type: ignore[no-untyped-def]
    db = await open_db(defaults=LimitDefaults(user=Limits(daily_micros=500_000)))
    await create(db, new_job(1))
    with pytest.raises(QuotaExceeded) as info:
        await create(db, new_job(2))
    assert info.value.refusal.cap == "daily"
    assert await db.jobs.get("job-2") is None
    assert await db.jobs.get_by_event("discord", "evt-2") is None
    assert await db.jobs.history("job-2") == []
    # the retried event gets the same refusal
    with pytest.raises(QuotaExceeded) as again:
        await create(db, new_job(2))
    assert again.value.refusal == info.value.refusal
    assert await db.ledger.check_books() == []


async def test_transitions_cas_history_and_ledger(db: Database, clock: FakeClock) -> None:
    await create(db, new_job())
    clock.advance(1)
    job = await db.jobs.transition(
        "job-1", S.SUBMITTED, expect={S.RESERVED}, reason="submitted", provider_task_id="t-9",
        next_check_at=clock.now + 5,
    )  # fmt: skip
    assert (job.status, job.provider_task_id, job.status_reason) == (
        S.SUBMITTED,
        "t-9",
        "submitted",
    )
    assert await db.jobs.find_by_task("wavespeed", "t-9") == job
    assert await db.jobs.find_by_task("novita", "t-9") is None
    with pytest.raises(InvalidTransition) as info:
        await db.jobs.transition("job-1", S.PROCESSING, expect={S.RESERVED})
    assert info.value.current == S.SUBMITTED and info.value.job.id == "job-1"
    await db.jobs.transition("job-1", S.PROCESSING, expect={S.SUBMITTED}, progress_percent=40)
    done = await db.jobs.transition(
        "job-1", S.COMPLETED, expect={S.PROCESSING}, reason="clip ready", ledger="settle",
        settle_micros=250_000, output_url="https://out/1.mp4",
    )  # fmt: skip
    assert done.output_url == "https://out/1.mp4"
    hold = await db.ledger.get("led-job-1")
    assert hold is not None and (hold.status, hold.settled_micros) == ("settled", 250_000)
    await db.jobs.transition("job-1", S.DELIVERED, expect={S.COMPLETED}, delivered_ref="msg-1")
    hist = await db.jobs.history("job-1")
    assert [(e.from_status, e.to_status) for e in hist] == [
        (None, S.RESERVED),
        (S.RESERVED, S.SUBMITTED),
        (S.SUBMITTED, S.PROCESSING),
        (S.PROCESSING, S.COMPLETED),
        (S.COMPLETED, S.DELIVERED),
    ]
    assert hist[3].note == "clip ready"
    with pytest.raises(UnknownJob):
        await db.jobs.transition("nope", S.FAILED, expect=ACTIVE)
    with pytest.raises(ValueError, match="cannot update"):
        await db.jobs.update("job-1", status="failed")


async def test_transition_with_failing_ledger_step_changes_nothing(db: Database) -> None:
    await create(db, new_job())
    with pytest.raises(Exception, match="only"):
        await db.jobs.transition(
            "job-1", S.COMPLETED, expect={S.RESERVED}, ledger="settle", settle_micros=999_999
        )
    job = await db.jobs.get("job-1")
    assert job is not None and job.status == S.RESERVED
    assert len(await db.jobs.history("job-1")) == 1
    failed = await db.jobs.transition(
        "job-1", S.FAILED, expect={S.RESERVED}, ledger="void", reason="bad image", error_code=1200
    )
    assert failed.error_code == 1200
    hold = await db.ledger.get("led-job-1")
    assert hold is not None and hold.status == "voided"
    assert await db.ledger.check_books() == []


async def test_concurrent_cas_only_one_wins(db: Database) -> None:
    await create(db, new_job())

    async def attempt(to: JobStatus) -> str:
        try:
            await db.jobs.transition("job-1", to, expect={S.RESERVED}, ledger="void")
            return "ok"
        except InvalidTransition:
            return "lost"

    outcomes = await asyncio.gather(*(attempt(s) for s in [S.FAILED, S.CANCELLED] * 4))
    assert outcomes.count("ok") == 1
    assert sum(e.kind == "void" for e in await db.ledger.entries()) == 1


async def test_update_list_and_counts(db: Database, clock: FakeClock) -> None:
    for n in range(1, 4):
        await create(db, new_job(n, user_id="discord:bob" if n == 3 else "discord:alice"))
        clock.advance(1)
    job = await db.jobs.update("job-2", meta={"x": [1, 2]}, cancel_requested=True, poll_count=3)
    assert (job.meta, job.cancel_requested, job.poll_count) == ({"x": [1, 2]}, True, 3)
    with pytest.raises(UnknownJob):
        await db.jobs.update("nope", poll_count=1)
    await db.jobs.transition("job-1", S.FAILED, expect={S.RESERVED}, ledger="void")
    assert [j.id for j in await db.jobs.list_jobs()] == ["job-3", "job-2", "job-1"]
    assert [j.id for j in await db.jobs.list_jobs(limit=1)] == ["job-3"]
    assert [j.id for j in await db.jobs.list_jobs(status=S.FAILED)] == ["job-1"]
    mine = await db.jobs.list_jobs(status=ACTIVE, user_id="discord:alice")
    assert [j.id for j in mine] == ["job-2"]
    assert await db.jobs.list_jobs(status=[]) == []
    with pytest.raises(ValueError, match="limit must be a whole number >= 0"):
        await db.jobs.list_jobs(limit=-1)  # the same refusal on both backends
    assert await db.jobs.count_by_status() == {"reserved": 2, "failed": 1}


async def test_claim_order_lease_renew_and_lapse(db: Database, clock: FakeClock) -> None:
    now = clock.now
    due = {1: now - 30, 2: now - 10, 3: now - 20, 4: now + 100, 5: now - 40}
    for n, at in due.items():
        await create(db, new_job(n, next_check_at=at))
    await db.jobs.transition("job-5", S.FAILED, expect={S.RESERVED}, ledger="void")  # inactive
    assert await db.jobs.next_due_at() == now - 30
    a = await db.jobs.claim_due("runner-a", now=now, limit=2, lease_s=60)
    assert [j.id for j in a] == ["job-1", "job-3"]
    assert all(j.lease_owner == "runner-a" and j.lease_until == now + 60 for j in a)
    b = await db.jobs.claim_due("runner-b", now=now, limit=10, lease_s=60)
    assert [j.id for j in b] == ["job-2"]
    assert await db.jobs.claim_due("runner-c", now=now, limit=10, lease_s=60) == []
    assert await db.jobs.next_due_at() == now + 60  # all due jobs are leased until then
    # a renews job-1 only; job-3's lease lapses and c takes it over
    assert await db.jobs.renew("runner-a", ["job-1", "job-2"], now=now + 50, lease_s=60) == 1
    c = await db.jobs.claim_due("runner-c", now=now + 61, limit=10, lease_s=60)
    # a lapsed lease is due at its end (the same time for both here; then by id)
    assert [j.id for j in c] == ["job-2", "job-3"]
    # the old owner can no longer renew or release what it lost
    assert await db.jobs.renew("runner-a", ["job-3"], now=now + 62, lease_s=60) == 0
    await db.jobs.release("job-3", "runner-a", next_check_at=now + 1000)
    assert (await db.jobs.get("job-3")).lease_owner == "runner-c"  # type: ignore[union-attr]
    await db.jobs.release("job-3", "runner-c", next_check_at=now + 1000)
    released = await db.jobs.get("job-3")
    assert released is not None and released.lease_owner is None
    assert released.next_check_at == now + 1000
    # release records fields in the same write
    await db.jobs.release("job-2", "runner-c", next_check_at=now + 5, poll_count=7)
    job2 = await db.jobs.get("job-2")
    assert job2 is not None and (job2.poll_count, job2.lease_owner) == (7, None)
    assert job2.next_check_at == now + 5
    assert await db.jobs.claim_due("x", now=now, limit=0, lease_s=1) == []


async def test_concurrent_claims_never_share_a_job(open_db, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    db = await open_db()
    others = [await open_db() for _ in range(3)]
    for n in range(40):
        await create(db, new_job(n, next_check_at=clock.now - n))
    stores = [db, *others]
    results = await asyncio.gather(
        *(
            s.jobs.claim_due(f"r{i}", now=clock.now, limit=7, lease_s=30)
            for i, s in enumerate(stores * 2)
        )
    )
    ids = [j.id for batch in results for j in batch]
    assert len(ids) == len(set(ids)) == 40


async def test_many_active_jobs_claim_in_due_order(db: Database, clock: FakeClock) -> None:
    """10,000 active jobs: claim_due picks the earliest due ones (status, next_check_at index)."""
    rows = 10_000
    now = clock.now

    async def bulk(tx) -> None:  # type: ignore[no-untyped-def]
        for n in range(rows):
            await tx.execute(
                "INSERT INTO jobs (id, platform, event_id, user_id, server_id, model, provider,"
                " params, prompt, image_ref, cost_micros, sink, meta, next_check_at, status,"
                " ledger_key, created_at, updated_at) VALUES ($1, 'p', $1, 'u', NULL, 'm', 'w',"
                " '{}', '', '', 0, '{}', '{}', $2, $3, $1, $4, $4)",
                f"bulk-{n}", now + (n * 7919 % rows) - rows / 2,
                "processing" if n % 3 else "submitted", now,
            )  # fmt: skip

    await db.raw.write(bulk)
    got = await db.jobs.claim_due("r", now=now, limit=50, lease_s=30)
    earliest = {f"bulk-{n}" for n in range(rows) if n * 7919 % rows < 50}
    assert {j.id for j in got} == earliest
    # while leased, a job is due again when its lease ends
    assert {j.next_check_at for j in got} == {now + 30}
    assert (await db.jobs.count_by_status())["processing"] == rows - len(range(0, rows, 3))


async def test_begin_submit_is_a_compare_and_set(db: Database, clock: FakeClock) -> None:
    """Only the lease holder marks a reserved, uncancelled, unsubmitted job as submitting."""
    now = clock.now
    await create(db, new_job(1, lease_owner="me", lease_until=now + 60, next_check_at=now + 60))
    await create(db, new_job(2, lease_owner="me", lease_until=now + 60, next_check_at=now + 60))
    kw = {"now": now, "lease_s": 60, "meta": {"image_url": "u"}}

    assert await db.jobs.begin_submit("job-1", "someone-else", **kw) is None
    started = await db.jobs.begin_submit("job-1", "me", **kw)
    assert started is not None and started.submit_started_at == now
    assert started.meta == {"image_url": "u"} and started.lease_until == now + 60
    assert await db.jobs.begin_submit("job-1", "me", **kw) is None  # never twice

    await db.jobs.update("job-2", cancel_requested=True)
    assert await db.jobs.begin_submit("job-2", "me", **kw) is None
    job2 = await db.jobs.get("job-2")
    assert job2 is not None and job2.submit_started_at is None
