"""Retention: refused holds and old input images go; the ledger's entries and every hold
that carries money or a job's outcome stay."""

from __future__ import annotations

import pytest

from storage import Database, LimitDefaults, Limits, QuotaExceeded, Scopes, StoredImage
from tests.fixtures_db import FakeClock
from tests.storage.test_jobs import new_job

DAY = 86_400.0


@pytest.fixture
def limit_defaults() -> LimitDefaults:
    return LimitDefaults(user=Limits(daily_micros=500_000))


async def test_purge_keeps_money_and_the_ledger(db: Database, clock: FakeClock) -> None:
    bob = Scopes("cli:bob")
    await db.ledger.reserve("held", bob, 100_000)
    await db.ledger.reserve("settled", bob, 100_000)
    await db.ledger.settle("settled")
    await db.ledger.reserve("voided", bob, 100_000)
    await db.ledger.void("voided")
    with pytest.raises(QuotaExceeded):
        await db.ledger.reserve("refused-old", bob, 900_000)
    image = StoredImage(b"\x89PNG...", "image/png", "in.png", 320, 240)
    job = new_job(1, user_id="cli:bob", server_id=None)
    await db.jobs.create_reserved(job, Scopes("cli:bob"), ledger_key="job-1",
                                  inputs={"image": image})  # fmt: skip
    clock.advance(31 * DAY)
    with pytest.raises(QuotaExceeded):
        await db.ledger.reserve("refused-new", bob, 900_000)
    entries = await db.ledger.entries()

    now = clock()
    purged = await db.purge(refusals_before=now - 30 * DAY, inputs_before=now - 7 * DAY)
    assert (purged.refused_holds, purged.input_images) == (1, 1)
    assert await db.ledger.get_refusal("refused-old") is None
    assert await db.ledger.get_refusal("refused-new") is not None  # still within 30 days
    for key, status in (("held", "held"), ("settled", "settled"), ("voided", "voided")):
        kept = await db.ledger.get(key)
        assert kept is not None and kept.status == status
    assert await db.ledger.entries() == entries  # the history is never touched
    assert await db.jobs.get_input("job-1") is None
    assert await db.jobs.get("job-1") is not None
    assert await db.ledger.check_books() == []
    again = await db.purge(refusals_before=now - 30 * DAY, inputs_before=now - 7 * DAY)
    assert (again.refused_holds, again.input_images) == (0, 0)
