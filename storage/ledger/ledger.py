"""The spend ledger: reserve -> settle | void, with idempotency keys and caps.

Where to read on: rules.py (when a reservation fits), steps.py (each step, plain and
careful), escrow.py (the bot-wide stripes and their shares), limits.py, reports.py, books.py.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TextIO, TypeVar

from storage.backend import Backend, Row, Tx
from storage.errors import QuotaExceeded
from storage.ledger import books, limits, reports, steps
from storage.ledger import statements as sql
from storage.ledger.steps import Caps, Hold, NotPlain
from storage.models import (
    CapUsage,
    LedgerEntry,
    LimitDefaults,
    Limits,
    Refusal,
    Reservation,
    Scopes,
)

T = TypeVar("T")


def _plain_is_doomed(caps: Caps) -> bool:
    """A bot-wide hourly cap by default: the plain reserve's start is refused (RECORD_START
    counts a bot-wide hourly cap only in the careful step, with every stripe locked) unless an
    operator set the bot-wide cap to none - go careful at once rather than try in vain."""
    return caps[2].jobs_per_hour is not None


class Ledger:
    """Reservations against per-user, per-server and global caps. See rules.py."""

    def __init__(
        self, backend: Backend, defaults: LimitDefaults, clock: Callable[[], float] = time.time
    ) -> None:
        self._db = backend
        self._defaults = defaults
        self._clock = clock
        self._next_purge = 0.0
        # PostgreSQL runs the plain steps as functions (one round trip each); tests turn this
        # off to compare them with the same statements run one by one
        self.functions = backend.name == "postgres"

    @property
    def defaults(self) -> LimitDefaults:
        return self._defaults

    def caps_for(self, scopes: Scopes) -> Caps:
        """The base caps of each scope: a person's roles' caps replace the operator's default."""
        d = self._defaults
        user = d.user if scopes.user_defaults is None else scopes.user_defaults
        return (user, d.server, d.global_)

    # ------------------------------------------------------------------ the three steps

    async def reserve(
        self, key: str, scopes: Scopes, amount_micros: int, *, model: str = "", note: str = ""
    ) -> Reservation:
        """Hold `amount_micros` if every applicable cap has room; else raise QuotaExceeded."""
        hold = self._hold(key, scopes, amount_micros, model, note, self._clock())
        caps = self.caps_for(scopes)
        await self.purge_now_and_then(hold.now)
        result = None
        if not _plain_is_doomed(caps):
            result = await self._plain(
                lambda tx: steps.reserve_plain(tx, False, hold, caps),
                steps.RESERVE_FAST, lambda: steps.fast_reserve_args(hold, caps),
            )  # fmt: skip
        if result is None:
            result = await self._db.write(
                lambda tx: steps.reserve_careful(tx, hold, caps)
            )
        if isinstance(result, Refusal):
            raise QuotaExceeded(result)
        return hold.held() if isinstance(result, list) else result

    async def settle(
        self, key: str, amount_micros: int | None = None, *, note: str = ""
    ) -> Reservation:
        """Turn the hold into spend (at most the held amount; the rest is released)."""
        if amount_micros is not None:
            limits.check_amount(amount_micros)
        return await self._release("settle", key, amount_micros, note)

    async def void(self, key: str, *, note: str = "") -> Reservation:
        """Release the whole hold. Idempotent; refused after a settle."""
        return await self._release("void", key, None, note)

    async def _release(
        self, kind: Literal["settle", "void"], key: str, amount: int | None, note: str
    ) -> Reservation:
        """Settle or void: the plain flavour, else the careful one in a write of its own."""
        now = self._clock()
        result = await self._plain(
            lambda tx: steps.release_plain(tx, False, key, kind, amount, note, now),
            steps.RELEASE_FAST, lambda: [key, kind, amount, now, note],
        )  # fmt: skip
        if result is None:

            async def careful(tx: Tx) -> Reservation:
                if kind == "settle":
                    return await steps.settle_careful(tx, key, amount, note, now)
                return await steps.void_careful(tx, key, note, now)

            return await self._db.write(careful)
        return Reservation.from_row(result[0]) if isinstance(result, list) else result

    async def _plain(
        self,
        body: Callable[[Tx], Awaitable[T]],
        fast_sql: str,
        fast_args: Callable[[], list[Any]],
    ) -> T | list[Row] | None:
        """The plain flavour in a write of its own; None when it was not plain (nothing was
        written). PostgreSQL runs it as one function call in autocommit: no BEGIN or COMMIT
        round trips (a round trip costs ~0.3 ms of CPU on a 2-core box)."""
        try:
            if self.functions:
                return await self._db.write_one(fast_sql, *fast_args())
            return await self._db.write(body)
        except NotPlain:
            return None
        except Exception as exc:
            if steps.is_not_plain(exc):
                return None
            raise

    # ------------------------------------------------------------------ in a transaction

    async def reserve_in(
        self, tx: Tx, key: str, scopes: Scopes, amount: int, model: str, note: str, now: float,
        *, plain_only: bool = False,
    ) -> Reservation | Refusal:  # fmt: skip
        """The reservation inside the caller's transaction; a Refusal is recorded, not raised.

        plain_only: raise NotPlain instead of handling what is not plain (the caller then rolls
        back and calls again without it) - fewer statements for the common case. Under a
        bot-wide hourly cap by default the careful step runs at once (see _plain_is_doomed).
        """
        hold = self._hold(key, scopes, amount, model, note, now)
        caps = self.caps_for(scopes)
        if plain_only and not _plain_is_doomed(caps):
            return await steps.reserve_plain(tx, self.functions, hold, caps)
        return await steps.reserve_careful(tx, hold, caps)

    async def settle_in(
        self, tx: Tx, key: str, amount: int | None, note: str, now: float,
        *, plain_only: bool = False,
    ) -> Reservation:  # fmt: skip
        if amount is not None:
            limits.check_amount(amount)
        if plain_only:
            return await steps.release_plain(tx, self.functions, key, "settle", amount, note, now)
        return await steps.settle_careful(tx, key, amount, note, now)

    async def void_in(
        self, tx: Tx, key: str, note: str, now: float, *, plain_only: bool = False
    ) -> Reservation:
        if plain_only:
            return await steps.release_plain(tx, self.functions, key, "void", None, note, now)
        return await steps.void_careful(tx, key, note, now)

    def _hold(
        self, key: str, scopes: Scopes, amount: int, model: str, note: str, now: float
    ) -> Hold:
        if not key:
            raise ValueError("a reservation key must not be empty")
        limits.check_amount(amount)
        if not scopes.user_id:
            raise ValueError("scopes.user_id must not be empty")
        return Hold.of(key, scopes, amount, model, note, now)

    async def purge_now_and_then(self, now: float) -> None:
        """Starts older than the hour count for nothing: drop them about once a minute."""
        if now < self._next_purge:
            return
        self._next_purge = now + books.PURGE_EVERY_S
        await self._db.write_one(sql.PURGE_STARTS, books.purge_before(now))

    # ------------------------------------------------------------------ reading back

    async def get(self, key: str) -> Reservation | None:
        """The reservation under `key`; None when unknown or when the key was refused."""
        row = await self._db.read(lambda tx: tx.fetchrow(sql.HOLD, key))
        if row is None or row["status"] == "refused":
            return None
        return Reservation.from_row(row)

    async def get_refusal(self, key: str) -> Refusal | None:
        """The refusal recorded under `key`, if that key was refused."""
        row = await self._db.read(lambda tx: tx.fetchrow(sql.HOLD, key))
        if row is None or row["status"] != "refused":
            return None
        return Refusal.from_json(row["refusal"])

    # ------------------------------------------------------------------ limits

    async def get_limits(self, scope_kind: str, scope_id: str) -> Limits:
        """The effective caps of one scope: its own, else the defaults."""
        limits.check_scope(scope_kind, scope_id)
        base = self._defaults.for_kind(scope_kind)
        return await self._db.read(lambda tx: limits.own_limits(tx, scope_kind, scope_id, base))

    async def set_limits(
        self, scope_kind: str, scope_id: str, **changes: int | Literal["default"] | None
    ) -> Limits:
        """Set caps of one scope. None = no cap; "default" = back to the default.

        Keys are the `Limits` field names (daily_micros, monthly_micros, concurrent_jobs,
        jobs_per_hour) or the cap names (daily, monthly, ...).
        """
        limits.check_scope(scope_kind, scope_id)
        planned = limits.plan_changes(changes)
        base = self._defaults.for_kind(scope_kind)

        async def run(tx: Tx) -> Limits:
            await limits.write_limits(tx, scope_kind, scope_id, planned)
            return await limits.own_limits(tx, scope_kind, scope_id, base)

        return await self._db.write(run)

    # ------------------------------------------------------------------ reports

    async def usage(self, scopes: Scopes, *, now: float | None = None) -> list[CapUsage]:
        """Every cap that applies to `scopes`: limit, used (spent + held), remaining, reset time."""
        at = self._clock() if now is None else now
        caps = self.caps_for(scopes)
        return await self._db.read(lambda tx: reports.usage(tx, scopes, caps, at))

    async def would_refuse(
        self, scopes: Scopes, amount_micros: int, *, now: float | None = None
    ) -> Refusal | None:
        """What `reserve` would refuse right now, and why (the same rule); nothing is held."""
        at = self._clock() if now is None else now
        caps = self.caps_for(scopes)
        return await self._db.read(
            lambda tx: reports.would_refuse(tx, scopes, caps, amount_micros, at)
        )

    async def spend_by_model(
        self, *, since: float, until: float, scopes: Scopes | None = None
    ) -> dict[str, int]:
        """Settled spend per model for reservations made in [since, until)."""
        rows = await self._db.read(lambda tx: reports.spend(tx, since, until, scopes, "model"))
        return {str(r["k"]): int(r["total"]) for r in rows}

    async def spend_by_day(
        self, *, since: float, until: float, scopes: Scopes | None = None
    ) -> dict[str, int]:
        """Settled spend per UTC day ('YYYY-MM-DD') of the reservation, in [since, until)."""
        rows = await self._db.read(
            lambda tx: reports.spend(tx, since, until, scopes, "day_start")
        )
        return reports.by_day(rows)

    async def entries(
        self, *, since: float | None = None, until: float | None = None
    ) -> list[LedgerEntry]:
        """The append-only history in order, optionally within [since, until)."""
        return await self._db.read(lambda tx: reports.entries(tx, since, until))

    async def export_csv(
        self, out: TextIO, *, since: float | None = None, until: float | None = None
    ) -> int:
        """Write the history as CSV (header + one row per entry); return the entry count."""
        return reports.write_csv(out, await self.entries(since=since, until=until))

    async def check_books(self) -> list[str]:
        """Differences between the accounts and the holds (empty = the books balance)."""
        now = self._clock()
        return await self._db.read(lambda tx: books.check_books(tx, now))
