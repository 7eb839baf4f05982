"""A bot-wide hourly cap by default: the plain reserve could never record the start, so the
ledger goes straight to the careful step - the cap still holds, for reserve and for a job."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from storage import Database, LimitDefaults, Limits, QuotaExceeded, Scopes
from tests.fixtures_db import FakeClock
from tests.storage.test_nudge import make_job

DEFAULTS = LimitDefaults(global_=Limits(jobs_per_hour=3))


async def test_a_bot_wide_hourly_default_holds_for_reserve(
    open_db: Callable[..., Awaitable[Database]],
) -> None:
    db = await open_db(defaults=DEFAULTS)
    for i in range(3):
        assert (await db.ledger.reserve(f"k{i}", Scopes(f"cli:u{i}"), 1_000)).status == "held"
    with pytest.raises(QuotaExceeded) as info:
        await db.ledger.reserve("k3", Scopes("cli:u3"), 1_000)
    r = info.value.refusal
    assert (r.scope_kind, r.cap, r.limit, r.used) == ("global", "jobs_per_hour", 3, 3)
    assert (await db.ledger.reserve("k0", Scopes("cli:u0"), 1_000)).status == "held"  # repeat
    assert await db.ledger.check_books() == []


async def test_a_bot_wide_hourly_default_holds_for_a_job(
    open_db: Callable[..., Awaitable[Database]], clock: FakeClock
) -> None:
    db = await open_db(defaults=DEFAULTS)
    for _ in range(3):
        await make_job(db, clock)
    with pytest.raises(QuotaExceeded):
        await make_job(db, clock)
    assert await db.ledger.check_books() == []
