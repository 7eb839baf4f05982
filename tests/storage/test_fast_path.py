"""PostgreSQL: a plain reserve, settle or void is ONE statement (migration 0008); whatever is
not plain takes the general path and gets the same answer as on SQLite.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from storage import Database, InvalidLedgerTransition, LimitDefaults, Limits, QuotaExceeded, Scopes
from storage import backend as backend_mod
from storage.ledger import rules, stripe_of
from storage.ledger.statements import RELEASE_ACCOUNTS
from storage.ledger.steps import default_caps

U = Scopes("cli:a", "discord:g")


@pytest.fixture
def limit_defaults() -> LimitDefaults:
    return LimitDefaults(
        user=Limits(daily_micros=10_000, concurrent_jobs=5, jobs_per_hour=50),
        server=Limits(monthly_micros=100_000, concurrent_jobs=8),
    )


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every SQL statement the PostgreSQL backend sends (BEGIN/COMMIT are not counted)."""
    seen: list[str] = []
    for name in ("fetch", "fetchrow", "fetchval", "execute", "count"):
        orig = getattr(backend_mod.PgTx, name)

        def wrap(orig: Any = orig) -> Any:
            async def counted(self: Any, sql: str, *args: Any) -> Any:
                seen.append(sql)
                return await orig(self, sql, *args)

            return counted

        monkeypatch.setattr(backend_mod.PgTx, name, wrap())
    yield seen


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_plain_steps_are_one_statement_each(db: Database, statements: list[str]) -> None:
    """PostgreSQL only (SQLite statements cost no round trip, so it has no fast path)."""
    # first use of the period (and of a global stripe): general path, creates the rows
    await db.ledger.reserve("warm", U, 100)
    await db.ledger.void("warm")
    k1, k2 = [k for k in (f"k{i}" for i in range(200)) if stripe_of(k) == stripe_of("warm")][:2]
    statements.clear()
    r = await db.ledger.reserve(k1, U, 1_000)
    assert r.status == "held" and len(statements) == 1
    s = await db.ledger.settle(k1, 400)  # partial: releases 600 in the same statement
    assert (s.status, s.settled_micros) == ("settled", 400) and len(statements) == 2
    await db.ledger.reserve(k2, U, 2_000)
    v = await db.ledger.void(k2)
    assert v.status == "voided" and len(statements) == 4
    assert "ledger_reserve(" in statements[0] and "ledger_release(" in statements[3]
    assert await db.ledger.check_books() == []


async def test_what_is_not_plain_gets_the_general_answer(db: Database) -> None:
    await db.ledger.reserve("a", U, 6_000)
    await db.ledger.reserve("b", U, 3_000)
    with pytest.raises(QuotaExceeded) as info:  # no room: the recorded refusal
        await db.ledger.reserve("c", U, 2_000)
    assert info.value.refusal.used == 9_000
    with pytest.raises(QuotaExceeded):
        await db.ledger.reserve("c", U, 2_000)  # a repeat keeps its answer
    again = await db.ledger.reserve("a", U, 6_000)  # a repeat of a held key
    assert again.status == "held"
    with pytest.raises(InvalidLedgerTransition):
        await db.ledger.settle("b", 3_001)  # more than held
    assert (await db.ledger.settle("b", 3_000)).settled_micros == 3_000
    assert (await db.ledger.settle("b")).settled_micros == 3_000  # a repeat
    assert (await db.ledger.void("a")).status == "voided"
    assert (await db.ledger.void("a")).status == "voided"
    kinds = [(e.key, e.kind) for e in await db.ledger.entries()]
    assert kinds == [
        ("a", "reserve"), ("b", "reserve"), ("c", "refuse"), ("b", "settle"), ("a", "void"),
    ]  # fmt: skip
    assert await db.ledger.check_books() == []


async def test_a_global_money_cap_keeps_one_statement_and_stays_exact(
    db: Database, statements: list[str]
) -> None:
    await db.ledger.set_limits("global", "*", daily_micros=64_000)
    # the first reservation under the cap creates all 16 stripes and cuts the cap into shares
    # (63,000 of room: 3,937 or 3,938 each, plus the 1,000 on its own stripe)
    await db.ledger.reserve("warm", Scopes("x"), 1_000)
    keys = [k for k in (f"k{i}" for i in range(400)) if stripe_of(k) == stripe_of("warm")]
    statements.clear()
    await db.ledger.reserve(keys[0], Scopes("x"), 2_000)  # within its stripe's share
    if db.backend == "postgres":
        assert len(statements) == 1
    # past the stripe's share but within the cap: the shares are cut anew, nothing refused
    await db.ledger.reserve(keys[1], Scopes("x2"), 9_000)
    for i in range(5):
        await db.ledger.reserve(keys[2 + i], Scopes(f"y{i}"), 10_000)
    with pytest.raises(QuotaExceeded) as info:  # the SUM over every stripe is full
        await db.ledger.reserve(keys[7], Scopes("z"), 2_001)
    refusal = info.value.refusal
    assert (refusal.scope_kind, refusal.used, refusal.remaining) == ("global", 62_000, 2_000)
    await db.ledger.reserve(keys[8], Scopes("z"), 2_000)  # exactly to the cap
    assert await db.ledger.check_books() == []


async def test_each_person_is_held_to_their_own_caps_in_one_process(db: Database) -> None:
    """SQLite writes the default caps into its statements (one text per set of caps): a
    person with their roles' caps and one with the operator's, one after the other and
    interleaved, each meet their own - and the refusal names it."""
    roles = Scopes("cli:r", "discord:g", user_defaults=Limits(daily_micros=500, jobs_per_hour=3))
    plain = Scopes("cli:p", "discord:g")
    await db.ledger.reserve("r1", roles, 400)
    await db.ledger.reserve("p1", plain, 4_000)
    with pytest.raises(QuotaExceeded) as refused:
        await db.ledger.reserve("r2", roles, 200)
    assert (refused.value.refusal.cap, refused.value.refusal.limit) == ("daily", 500)
    await db.ledger.reserve("p2", plain, 4_000)  # the operator's $0.01 a day: 8,000 of 10,000
    with pytest.raises(QuotaExceeded) as refused:
        await db.ledger.reserve("p3", plain, 4_000)
    assert (refused.value.refusal.cap, refused.value.refusal.limit) == ("daily", 10_000)
    await db.ledger.settle("r1", 100)  # 400 back: room for 200 again
    await db.ledger.reserve("r3", roles, 200)
    await db.ledger.reserve("r4", roles, 10)  # the third start of the hour: its cap
    with pytest.raises(QuotaExceeded) as refused:
        await db.ledger.reserve("r5", roles, 10)
    assert (refused.value.refusal.cap, refused.value.refusal.limit) == ("jobs_per_hour", 3)
    assert await db.ledger.check_books() == []


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_settle_probes_its_accounts_by_key(db: Database) -> None:
    """PostgreSQL planned the give-back's "does the account exist" as a hash join over a
    sequential scan of every account while the table was small, and the plan cache kept it:
    every settle read every account. Asked as a scalar subquery it is an index probe."""
    for i in range(200):
        await db.ledger.reserve(f"k{i}", Scopes(f"cli:u{i}", f"discord:g{i}"), 100)
    await db.raw.write(lambda tx: tx.execute("ANALYZE accounts"))
    explain = f"EXPLAIN (FORMAT JSON) {RELEASE_ACCOUNTS}"
    args = ("cli:u1", "discord:g1", stripe_of("k1"), 0, 0, 0, 0)
    plan = await db.raw.read(lambda tx: tx.fetchval(explain, *args))
    assert "Seq Scan" not in str(plan) and "Index Only Scan" in str(plan)


async def test_own_caps_above_the_defaults_are_counted_on_the_account(db: Database) -> None:
    """A reservation its scope's defaults would not allow counts only on an account that
    exists (SQLite: an UPDATE of it, as the upsert leaves such a scope out), with the
    account's own caps; a newcomer is held to the defaults."""
    await db.ledger.set_limits("user", "cli:big", daily_micros=50_000, jobs_per_hour=2)
    big = Scopes("cli:big", "discord:g")
    await db.ledger.reserve("b1", big, 20_000)  # twice the default 10,000 a day
    with pytest.raises(QuotaExceeded) as refused:
        await db.ledger.reserve("n1", Scopes("cli:new", "discord:g"), 20_000)
    assert (refused.value.refusal.cap, refused.value.refusal.limit) == ("daily", 10_000)
    await db.ledger.reserve("b2", big, 20_000)
    with pytest.raises(QuotaExceeded) as refused:  # their own hourly cap, not the default 50
        await db.ledger.reserve("b3", big, 1_000)
    assert (refused.value.refusal.cap, refused.value.refusal.limit) == ("jobs_per_hour", 2)
    await db.ledger.void("b2")  # takes its start and its 20,000 back
    await db.ledger.reserve("b4", big, 30_000)  # 50,000 of 50,000
    with pytest.raises(QuotaExceeded) as refused:
        await db.ledger.reserve("b5", big, 1)
    assert refused.value.refusal.cap == "jobs_per_hour"
    usage = {u.cap: u.used for u in await db.ledger.usage(big) if u.scope_kind == "user"}
    assert usage["daily"] == 50_000 and usage["jobs_per_hour"] == 2
    assert await db.ledger.check_books() == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_sqlite_reserves_without_temporary_tables(db: Database) -> None:
    """SQLite copies an INSERT's rows into a temporary table first when its SELECT reads the
    table it writes (~2 us a statement): the reserve's statements do not (rules.counting).
    And a plain one never reads every start of the hour (only a bot-wide hourly cap needs
    that, on the careful path): SQLite ran such a count up front, even where an OR skipped
    it, and every reservation read the whole hour. EXPLAIN shows both, with and without a
    bot-wide money cap."""

    async def explain(text: str, what: str) -> list[Any]:
        sql = text.replace("$", "?")
        params = [None] * max(int(n) for n in re.findall(r"\?(\d+)", sql))
        return await db.raw.read(lambda tx: tx.fetch(f"{what} {sql}", *params))

    for global_ in (Limits(), Limits(daily_micros=10**9)):
        d = LimitDefaults(user=Limits(daily_micros=5, jobs_per_hour=20), global_=global_)
        flat = default_caps((d.user, d.server, d.global_))
        left_out = rules.only_existing(flat, 1, True)  # the bot's stripe under its cap
        plain = [rules.counting(flat, False, left_out)]
        plain += [rules.counting_existing(k, flat, False)[0] for k in ("user", "server", "global")]
        for text in [*plain, rules.counting(flat, True, left_out), rules.COUNT_START]:
            ops = await explain(text, "EXPLAIN")
            assert ops and not [o for o in ops if o["opcode"] == "OpenEphemeral"], text[:80]
        plans = [
            [row["detail"] for row in await explain(text, "EXPLAIN QUERY PLAN")] for text in plain
        ]
        assert all("SCAN s" not in plan for plan in plans), plans
        assert any(p.startswith("SEARCH s USING INDEX") for p in plans[0]), plans[0]
