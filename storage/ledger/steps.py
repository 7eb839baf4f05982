"""Reserve, settle and void inside a caller's transaction - each in two flavours.

The plain flavour is what nearly every call is: a new key that fits, or a held key settled or
voided. It runs the fewest statements (the hold, the history line, one conditional write per
table of counters) and raises `NotPlain` the moment anything is not plain; the caller then
discards its transaction and runs the careful flavour. On PostgreSQL the plain flavour is one
call of a function that runs the same statements (plpgsql.py): one round trip.

The careful flavour is always right: it answers repeats, locks every account of the
reservation in the fixed order (user, server, the 16 global stripes), explains a refusal
(rules.first_refusal) and records it, cuts fresh bot-wide shares, and moves a reservation
whose clock is behind to the period another process already opened. It then runs the very
same conditional writes, which must pass.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal, NamedTuple

from providers.money import format_usd
from storage.backend import Row, Tx
from storage.errors import (
    IdempotencyConflict,
    InvalidLedgerTransition,
    StorageError,
    UnknownReservation,
)
from storage.ledger import escrow
from storage.ledger import statements as sql
from storage.ledger.rules import (
    CAP_COLUMNS,
    COUNT_START,
    RECORD_START,
    RESERVE_ACCOUNTS,
    ScopeUse,
    counting,
    counting_existing,
    effective_limits,
    first_refusal,
    only_existing,
)
from storage.models import LIMIT_FIELDS, Limits, Refusal, Reservation, Scopes
from storage.periods import day_start, hour_start, month_start, start_second

# PostgreSQL: the plain steps as one statement each (migration 0008); SQLSTATE LG001 = not
# plain, nothing written.
RESERVE_FAST = "SELECT ledger_reserve($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
RELEASE_FAST = "SELECT * FROM ledger_release($1, $2, $3, $4, $5)"
NOT_PLAIN_SQLSTATE = "LG001"
# A hold committed between a settle's UPDATE and its SELECT (PostgreSQL, READ COMMITTED) is
# taken by trying the UPDATE again; the SELECT must never misreport it.
_APPEARED_RETRIES = 3


class NotPlain(Exception):
    """The plain flavour cannot finish this step; nothing of it may be kept (roll back)."""


def is_not_plain(exc: BaseException) -> bool:
    return getattr(exc, "sqlstate", None) == NOT_PLAIN_SQLSTATE


class Hold(NamedTuple):
    """One reservation as asked for: who, how much, when - and where that counts.

    A NamedTuple: made once per reservation on the event loop, where a frozen dataclass's
    field-by-field __init__ cost a few microseconds more."""

    key: str
    scopes: Scopes
    amount: int
    model: str
    note: str
    now: float
    day: int  # the UTC day and month it counts in
    month: int
    second: int  # the second it counts in for the hourly caps
    stripe: int  # the global account it counts on
    scope_count: int  # 2 without a server, else 3

    @classmethod
    def of(cls, key: str, scopes: Scopes, amount: int, model: str, note: str, now: float) -> Hold:
        return cls(
            key, scopes, amount, model, note, now, day_start(now), month_start(now),
            start_second(now), escrow.stripe_of(key), 2 if scopes.server_id is None else 3,
        )  # fmt: skip

    def held(self) -> Reservation:
        return Reservation(
            key=self.key, status="held", amount_micros=self.amount, settled_micros=0,
            user_id=self.scopes.user_id, server_id=self.scopes.server_id, model=self.model,
            created_at=self.now, updated_at=self.now,
        )  # fmt: skip


# the base caps of a reservation's scopes: the operator's defaults (or the person's roles')
Caps = tuple[Limits, Limits, Limits]


def fast_reserve_args(hold: Hold, caps: Caps) -> list[Any]:
    s = hold.scopes
    return [
        hold.key, hold.amount, s.user_id, s.server_id, hold.model, hold.note, hold.day,
        hold.month, hold.stripe, hold.now, hold.second, list(default_caps(caps)),
    ]  # fmt: skip


FlatCaps = tuple[int | None, ...]


@lru_cache(maxsize=64)
def default_caps(caps: Caps) -> FlatCaps:
    """The default caps as the statements take them: per cap, user, server, global."""
    return tuple(getattr(lim, f) for f in LIMIT_FIELDS for lim in caps)


# --------------------------------------------------------------------------- reserve


async def reserve_plain(
    tx: Tx, functions: bool, hold: Hold, caps: Caps
) -> Reservation | Refusal:
    """A new key that fits, or the answer already given to a repeated one; else NotPlain.

    functions: run it as the PostgreSQL function (plpgsql.py), one round trip.
    """
    if functions:
        try:
            await tx.execute(RESERVE_FAST, *fast_reserve_args(hold, caps))
        except Exception as exc:
            if is_not_plain(exc):
                raise NotPlain from exc
            raise
        return hold.held()
    if not await _insert_hold(tx, hold, hold.day, hold.month):
        return await _repeat(tx, hold)
    await _entry(tx, hold, "reserve", hold.note)
    flat = default_caps(caps)
    if await _count_accounts(tx, hold, flat, hold.day, hold.month, False) != hold.scope_count:
        raise NotPlain
    if not await _record_start(tx, hold, flat, every=False):
        raise NotPlain
    return hold.held()


async def reserve_careful(tx: Tx, hold: Hold, caps: Caps) -> Reservation | Refusal:
    """The reservation with every case handled; a refusal is recorded under its key."""
    s, now = hold.scopes, hold.now
    day, month = hold.day, hold.month
    if not await _insert_hold(tx, hold, day, month):
        return await _repeat(tx, hold)
    accounts = await tx.fetch(sql.LOCK_ACCOUNTS, s.user_id, s.server_id)
    # periods only move forward: behind another process's clock, count in its later period
    later_day = max(int(a["day_start"]) for a in accounts)
    later_month = max(int(a["month_start"]) for a in accounts)
    if later_day > day or later_month > month:
        day, month = max(day, later_day), max(month, later_month)
        await tx.execute(sql.MOVE_HOLD, hold.key, day, month)
    bot = scope_uses(Scopes(s.user_id), accounts, [], caps, day, month)[-1]
    every_start = 1 if bot.limits.jobs_per_hour is not None else 0  # all are locked: count them
    starts = await tx.fetch(
        sql.SCOPE_STARTS, s.user_id, s.server_id, hour_start(now), every_start
    )
    uses = scope_uses(s, accounts, starts, caps, day, month)
    refusal = first_refusal(uses, hold.amount, day, month)
    if refusal is not None:
        await tx.execute(sql.REFUSE_HOLD, hold.key, refusal.to_json(), now)
        why = refusal.message()
        await _entry(tx, hold, "refuse", f"{hold.note}: {why}" if hold.note else why)
        return refusal
    await _share_the_bot_caps(tx, uses[-1], hold, day, month)
    await _entry(tx, hold, "reserve", hold.note)
    flat = default_caps(caps)
    counted = await _count_accounts(tx, hold, flat, day, month, True)
    started = await _record_start(tx, hold, flat, every=True)
    if counted != len(uses) or not started:
        raise StorageError(
            f"reservation {hold.key!r}: the caps said it fits but the counters refused it "
            f"({counted} of {len(uses)} accounts, {started} start); nothing was reserved"
        )
    return hold.held()


async def _entry(tx: Tx, hold: Hold, kind: Literal["reserve", "refuse"], note: str) -> None:
    """The history line of a reservation (or of its refusal)."""
    s = hold.scopes
    await tx.execute(sql.ENTRY, hold.now, hold.key, kind, hold.amount, s.user_id, s.server_id,
                     hold.model, note)  # fmt: skip


async def _count_accounts(
    tx: Tx, hold: Hold, flat: FlatCaps, day: int, month: int, every: bool
) -> int:
    """Count the reservation on every account of its scopes; how many took it. every: all
    stripes are locked (careful), so a bot-wide hourly cap can be counted (SQLite)."""
    s = hold.scopes
    if tx.dialect == "postgres":
        return await tx.count(
            RESERVE_ACCOUNTS, s.user_id, s.server_id, hold.stripe, day, month, hold.amount,
            *flat[:9],
        )  # fmt: skip
    args = (s.user_id, s.server_id, hold.stripe, day, month, hold.amount, hour_start(hold.now))
    left_out = only_existing(flat, hold.amount, s.server_id is not None)
    counted = await tx.count(counting(flat, every, left_out), *args)
    for kind in left_out:
        stmt, taken = counting_existing(kind, flat, every)
        counted += await tx.count(stmt, *args[:taken])
    return counted


async def _record_start(tx: Tx, hold: Hold, flat: FlatCaps, every: bool) -> int:
    """Record the job's start for the hourly caps (SQLite checked them with the accounts)."""
    s = hold.scopes
    if tx.dialect == "sqlite":
        return await tx.count(COUNT_START, s.user_id, s.server_id, hold.stripe, hold.second)
    return await tx.count(
        RECORD_START, s.user_id, s.server_id, hold.stripe, hold.second, hour_start(hold.now),
        *flat[9:], 1 if every else 0,
    )  # fmt: skip


async def _insert_hold(tx: Tx, hold: Hold, day: int, month: int) -> bool:
    """Insert the hold row; False when its key was seen before."""
    s = hold.scopes
    inserted = await tx.count(
        sql.INSERT_HOLD, hold.key, hold.amount, s.user_id, s.server_id, hold.model, hold.note,
        day, month, hold.stripe, hold.now,
    )  # fmt: skip
    return inserted > 0


async def _repeat(tx: Tx, hold: Hold) -> Reservation | Refusal:
    """A key seen before: the same request gets the same outcome; a different one is refused."""
    row = await tx.fetchrow(sql.HOLD, hold.key)
    assert row is not None
    s = hold.scopes
    same = (
        row["user_id"] == s.user_id
        and row["server_id"] == s.server_id
        and int(row["amount_micros"]) == hold.amount
    )
    if not same:
        raise IdempotencyConflict(
            f"key {row['key']!r} was already used for {format_usd(int(row['amount_micros']))} "
            f"(user {row['user_id']}, server {row['server_id']}); this request is "
            f"{format_usd(hold.amount)} (user {s.user_id}, server {s.server_id})"
        )
    if row["status"] == "refused":
        return Refusal.from_json(row["refusal"])
    return Reservation.from_row(row)


def scope_uses(
    scopes: Scopes, accounts: list[Row], starts: list[Row], caps: Caps, day: int, month: int
) -> list[ScopeUse]:
    """What each scope of the reservation has in use (the global stripes summed)."""
    base = {"user": caps[0], "server": caps[1], "global": caps[2]}
    out = []
    for kind, sid in scopes.chain():
        rows = [a for a in accounts if a["scope_kind"] == kind and a["scope_id"] == sid]
        own = {c: rows[0][c] for c in CAP_COLUMNS} if rows else {}
        out.append(
            ScopeUse(
                kind=kind, scope_id=sid, limits=effective_limits(own, base[kind]),
                day_micros=sum(int(a["day_micros"]) for a in rows if a["day_start"] == day),
                month_micros=sum(
                    int(a["month_micros"]) for a in rows if a["month_start"] == month
                ),
                running=sum(int(a["running"]) for a in rows),
                starts=tuple(
                    (int(r["at_second"]), int(r["n"])) for r in starts if r["scope_kind"] == kind
                ),
            )
        )  # fmt: skip
    return out


async def _share_the_bot_caps(tx: Tx, glob: ScopeUse, hold: Hold, day: int, month: int) -> None:
    """Under a bot-wide money or concurrency cap, cut fresh shares (all stripes are locked)."""
    lim = glob.limits
    capped = [
        ("day", lim.daily_micros, glob.day_micros, hold.amount),
        ("month", lim.monthly_micros, glob.month_micros, hold.amount),
        ("running", lim.concurrent_jobs, glob.running, 1),
    ]
    if all(cap is None for _, cap, _, _ in capped):
        return
    await tx.execute(escrow.ROLL_STRIPES, day, month)
    for counter, cap, total, need in capped:
        if cap is not None:
            await escrow.cut_shares(tx, counter, total, need, cap, hold.stripe)


# --------------------------------------------------------------------------- settle, void


async def release_plain(
    tx: Tx, functions: bool, key: str, kind: Literal["settle", "void"], amount: int | None,
    note: str, now: float,
) -> Reservation:  # fmt: skip
    """A held key settled (at most the held amount) or voided; else NotPlain."""
    if functions:
        try:
            rows = await tx.fetch(RELEASE_FAST, key, kind, amount, now, note)
        except Exception as exc:
            if is_not_plain(exc):
                raise NotPlain from exc
            raise
        return Reservation.from_row(rows[0])
    if kind == "settle":
        row = await tx.fetchrow(sql.SETTLE_HOLD, key, amount, now)
    else:
        row = await tx.fetchrow(sql.VOID_HOLD, key, now)
    if row is None:
        raise NotPlain
    await _release(tx, row, kind, note, now)
    return Reservation.from_row(row)


async def settle_careful(
    tx: Tx, key: str, amount: int | None, note: str, now: float
) -> Reservation:
    for _ in range(_APPEARED_RETRIES):
        row = await tx.fetchrow(sql.SETTLE_HOLD, key, amount, now)
        if row is not None:
            break
        existing = await tx.fetchrow(sql.HOLD, key)
        fits = existing is not None and (amount is None or amount <= existing["amount_micros"])
        if existing is not None and existing["status"] == "held" and fits:
            continue  # reserved concurrently: committed after our UPDATE's snapshot
        if existing is None or existing["status"] == "refused":
            raise UnknownReservation(f"no reservation is held under key {key!r}")
        status = existing["status"]
        if status == "settled":
            if amount is None or amount == int(existing["settled_micros"]):
                return Reservation.from_row(existing)
            raise IdempotencyConflict(
                f"reservation {key!r} is already settled at "
                f"{format_usd(int(existing['settled_micros']))}, not {format_usd(amount)}"
            )
        if status == "voided":
            raise InvalidLedgerTransition(f"reservation {key!r} was voided; it cannot settle")
        raise InvalidLedgerTransition(
            f"cannot settle {format_usd(amount or 0)} on reservation {key!r}: only "
            f"{format_usd(int(existing['amount_micros']))} is held"
        )
    else:
        raise StorageError(f"reservation {key!r} kept changing; settle it again")
    await _release(tx, row, "settle", note, now)
    return Reservation.from_row(row)


async def void_careful(tx: Tx, key: str, note: str, now: float) -> Reservation:
    for _ in range(_APPEARED_RETRIES):
        row = await tx.fetchrow(sql.VOID_HOLD, key, now)
        if row is not None:
            break
        existing = await tx.fetchrow(sql.HOLD, key)
        if existing is not None and existing["status"] == "held":
            continue  # reserved concurrently: committed after our UPDATE's snapshot
        if existing is None or existing["status"] == "refused":
            raise UnknownReservation(f"no reservation is held under key {key!r}")
        if existing["status"] == "voided":
            return Reservation.from_row(existing)
        raise InvalidLedgerTransition(f"reservation {key!r} is settled; it cannot be voided")
    else:
        raise StorageError(f"reservation {key!r} kept changing; void it again")
    await _release(tx, row, "void", note, now)
    return Reservation.from_row(row)


async def _release(
    tx: Tx, row: Row, kind: Literal["settle", "void"], note: str, now: float
) -> None:
    """The history line, then what the hold no longer uses given back, scope by scope."""
    amount, settled = int(row["amount_micros"]), int(row["settled_micros"])
    logged = settled if kind == "settle" else amount
    user, server, stripe = row["user_id"], row["server_id"], int(row["stripe"])
    await tx.execute(sql.ENTRY, now, row["key"], kind, logged, user, server, row["model"], note)
    released = amount - settled if kind == "settle" else amount
    given = await tx.count(
        sql.GIVING_BACK[tx.dialect], user, server, stripe, int(row["day_start"]),
        int(row["month_start"]), released, amount,
    )  # fmt: skip
    if given != (2 if server is None else 3):
        raise StorageError(
            f"the accounts of reservation {row['key']!r} are missing or hold less than it;"
            " nothing was given back - run check_books"
        )
    if kind == "void":
        await tx.execute(sql.VOID_STARTS, user, server, start_second(float(row["created_at"])))

