"""The spend ledger: reserve -> settle | void, with idempotency keys and caps.

How a reservation stays within every cap, on SQLite and PostgreSQL alike:
- The hold row is inserted first (`ON CONFLICT (key) DO NOTHING`): a concurrent request with the
  same key waits for ours and then sees it, so a key is reserved at most once. The same
  statement returns the cap overrides that apply (no extra round trip).
- Money caps are counters in `budgets` (used = settled + held per scope, day and month). The
  day and the month counter of a scope are raised by ONE conditional `UPDATE ... WHERE used +
  amount <= cap RETURNING` - the check and the write are one statement, re-evaluated by
  PostgreSQL on the latest row version under READ COMMITTED, so money caps need no lock.
- Job-count caps (concurrent, per hour) are counted from the holds, bounded at cap + 1, inside
  that same UPDATE, while the scope's lock row is held (PostgreSQL; SQLite's BEGIN IMMEDIATE is
  exclusive anyway). Only scopes WITH a count cap take the lock; every such reservation takes
  it before counting, and the count runs in a later statement (a newer snapshot), so no
  phantom slips past it.
- The global counters are 16 stripes per period (stripe = crc32(key) % 16). Without a global
  money cap (the default) a hold raises only its own stripe, so reservations do not all queue
  on one row. With one, every stripe of the period is locked in stripe order and their SUM
  checked before the hold's stripe is raised. A cap applies to reservations that start after
  it is set: a reservation already past its cap check when an operator sets a cap is not
  undone (the same holds for every cap and override).
- Rows are locked in one fixed order: hold, then per scope (user, server, global - the hottest
  last) its lock row, day row, month row. Settle and void follow the same order, so no cycle.
- A refusal undoes its own counter increments in the same transaction and is recorded under the
  key (status 'refused'), so a retry gets the same answer.
- PostgreSQL: a plain reserve, settle or void is ONE statement in autocommit (plpgsql
  functions in migration 0002 that repeat the happy path above step for step, in the same
  lock order); anything not plain - a repeat, a refusal, a first use of a period - makes
  them write nothing, and the general path above runs in a transaction.
  Measured reason: on this 2-core box a round trip costs ~0.3 ms of CPU (client + server,
  syscalls in a VM); reserve + settle took ~15 round trips, now 2.
"""

from __future__ import annotations

import csv
import logging
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal, TextIO

from providers.money import MAX_MICROS, format_usd, usd_string
from storage.backend import Backend, Row, Tx, first_value
from storage.errors import (
    IdempotencyConflict,
    InvalidLedgerTransition,
    QuotaExceeded,
    StorageError,
    UnknownReservation,
)
from storage.models import (
    GLOBAL_ID,
    LIMIT_FIELDS,
    CapName,
    CapUsage,
    LedgerEntry,
    LimitDefaults,
    Limits,
    Refusal,
    Reservation,
    ScopeKind,
    Scopes,
)
from storage.periods import (
    HOUR_S,
    day_label,
    day_start,
    month_start,
    next_day,
    next_month,
)

log = logging.getLogger(__name__)

_CAP_OF_FIELD: dict[str, CapName] = {
    "daily_micros": "daily",
    "monthly_micros": "monthly",
    "concurrent_jobs": "concurrent_jobs",
    "jobs_per_hour": "jobs_per_hour",
}
_FIELD_OF_CAP = {cap: name for name, cap in _CAP_OF_FIELD.items()}
_SCOPE_KINDS = ("user", "server", "global")
# the WHERE fragment selecting one scope's holds; $1 is the scope id (unused for global)
_SCOPE_COL = {"user": "user_id = $1", "server": "server_id = $1", "global": "$1 = $1"}
# The global counters are split in this many rows per period. NEVER change it: holds record
# their stripe and a global money cap check locks exactly these rows (see 0001_init.sql).
GLOBAL_STRIPES = 16
# A hold committed between a settle's/void's UPDATE and its SELECT (PostgreSQL, READ
# COMMITTED) is taken by trying the UPDATE again; the SELECT must never misreport it.
_APPEARED_RETRIES = 3
_MAX_BIGINT = 2**63 - 1


def stripe_of(key: str) -> int:
    """The global stripe of a hold: stable across processes and versions (crc32, not hash())."""
    return zlib.crc32(key.encode("utf-8")) % GLOBAL_STRIPES


_SCOPE_PARAM = {"user": "$3", "server": "$4", "global": "'*'"}
_NO_CAP = -1  # an override row with value NULL ("explicitly no cap"), as returned below
# The hold row and, in the same round trip, every cap override that applies to it: one
# column per (scope, cap); NULL = no override, -1 = overridden to "no cap".
_INSERT_HOLD = (
    "INSERT INTO holds (key, status, amount_micros, settled_micros, user_id, server_id, model,"  # noqa: S608
    " note, day_start, month_start, stripe, created_at, updated_at)"
    " VALUES ($1, 'held', $2, 0, $3, $4, $5, $6, $7, $8, $9, $10, $10)"
    " ON CONFLICT (key) DO NOTHING RETURNING key, "
    + ", ".join(
        f"(SELECT COALESCE(value, {_NO_CAP}) FROM limit_overrides WHERE scope_kind = '{kind}'"  # noqa: S608
        f" AND scope_id = {_SCOPE_PARAM[kind]} AND cap = '{cap}') AS o_{kind}_{cap}"
        for kind in _SCOPE_KINDS
        for cap in _CAP_OF_FIELD.values()
    )
)


def _periods_where(day: int, month: int) -> str:
    """One scope's day row and month row (of one stripe); $1 kind, $2 id, $3 stripe.

    The IN lists let the primary key find both rows; the OR keeps each kind on its own start.
    """
    return (
        " WHERE scope_kind = $1 AND scope_id = $2 AND stripe = $3"
        f" AND period_kind IN ('day', 'month') AND period_start IN (${day}, ${month})"
        f" AND ((period_kind = 'day' AND period_start = ${day}"
        "{day_cap}"
        f") OR (period_kind = 'month' AND period_start = ${month}"
        "{month_cap}))"
    )


# day and month counters of one scope raised in ONE statement, each only if its cap has room
# (NULL cap = no cap); the returned period kinds say which rows were raised
_BUMP_BOTH = (
    "UPDATE budgets SET used_micros = used_micros + $4"  # noqa: S608
    + _periods_where(5, 7).format(
        day_cap=" AND (CAST($6 AS BIGINT) IS NULL OR used_micros + $4 <= CAST($6 AS BIGINT))",
        month_cap=" AND (CAST($8 AS BIGINT) IS NULL OR used_micros + $4 <= CAST($8 AS BIGINT))",
    )
    + " RETURNING period_kind"
)
_RELEASE_BOTH = (
    "UPDATE budgets SET used_micros = used_micros - $4"  # noqa: S608
    + _periods_where(5, 6).format(day_cap="", month_cap="")
    + " RETURNING period_kind"
)
_BUMP = (
    "UPDATE budgets SET used_micros = used_micros + $6"
    " WHERE scope_kind = $1 AND scope_id = $2 AND period_kind = $3 AND period_start = $4"
    " AND stripe = $5 AND (CAST($7 AS BIGINT) IS NULL OR used_micros + $6 <= CAST($7 AS BIGINT))"
    " RETURNING used_micros"
)
_ADD_BUDGETS = (
    "INSERT INTO budgets (scope_kind, scope_id, period_kind, period_start, stripe, used_micros)"
    " VALUES ($1, $2, 'day', $4, $3, 0), ($1, $2, 'month', $5, $3, 0) ON CONFLICT DO NOTHING"
)
_RELEASE = (
    "UPDATE budgets SET used_micros = used_micros - $6"
    " WHERE scope_kind = $1 AND scope_id = $2 AND period_kind = $3 AND period_start = $4"
    " AND stripe = $5 RETURNING used_micros"
)
_USED = (
    "SELECT COALESCE(SUM(used_micros), 0) FROM budgets WHERE scope_kind = $1 AND scope_id = $2"
    " AND period_kind = $3 AND period_start = $4"
)
_GLOBAL_STRIPES_SQL = (
    "SELECT used_micros FROM budgets WHERE scope_kind = 'global' AND scope_id = '*'"
    " AND period_kind = $1 AND period_start = $2 ORDER BY stripe"
)
_ADD_GLOBAL_STRIPES = (
    "INSERT INTO budgets (scope_kind, scope_id, period_kind, period_start, stripe, used_micros)"  # noqa: S608
    " VALUES "
    + ", ".join(f"('global', '*', $1, $2, {i}, 0)" for i in range(GLOBAL_STRIPES))
    + " ON CONFLICT DO NOTHING"
)
_LOCK_SCOPE = (
    "UPDATE scope_locks SET version = version + 1 WHERE scope_kind = $1 AND scope_id = $2"
    " RETURNING version"
)
_ADD_SCOPE_LOCK = (
    "INSERT INTO scope_locks (scope_kind, scope_id, version) VALUES ($1, $2, 0)"
    " ON CONFLICT DO NOTHING"
)
_ENTRY = (
    "INSERT INTO entries (at, key, kind, amount_micros, user_id, server_id, model, note)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
)
# PostgreSQL only: the plain reservation in one statement (see 0002_ledger_fast_path.sql);
# SQLSTATE _NOT_PLAIN = nothing written, take the general path
_RESERVE_FAST_PG = "SELECT ledger_reserve_fast($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
_NOT_PLAIN = "LG001"
# PostgreSQL only: a plain settle or void in one statement (see 0002_ledger_fast_path.sql)
_RELEASE_FAST_PG = "SELECT * FROM ledger_release_fast($1, $2, $3, $4, $5)"
_OVERRIDES = (
    "SELECT scope_kind, scope_id, cap, value FROM limit_overrides"
    " WHERE (scope_kind = 'user' AND scope_id = $1) OR (scope_kind = 'server' AND scope_id = $2)"
    " OR (scope_kind = 'global' AND scope_id = '*')"
)


def _exact_count_sql(kind: str) -> str:
    col = _SCOPE_COL[kind]
    return (
        f"SELECT (SELECT COUNT(*) FROM holds WHERE {col} AND status = 'held') AS held,"  # noqa: S608
        f" (SELECT COUNT(*) FROM holds WHERE {col} AND created_at > $2"
        "  AND status IN ('held', 'settled')) AS recent"
    )


_EXACT_COUNT_SQL = {kind: _exact_count_sql(kind) for kind in _SCOPE_KINDS}


_HOLDS_OF = {"user": "user_id = $2", "server": "server_id = $2", "global": "$2 = $2"}


@lru_cache(maxsize=16)
def _bump_sql(kind: str, held: bool, recent: bool) -> str:
    """`_BUMP_BOTH`, plus the scope's job-count caps when it has any.

    The counts stop at cap + 1 (LIMIT), so the work stays bounded by the cap, not by the
    scope's history. They run in the same statement as the money check: PostgreSQL takes the
    statement's snapshot after the scope lock was granted (the previous statement), so every
    reservation that held that lock before us is counted. Extra parameters, in order:
    (held) concurrent cap + 1, (recent) window start, hourly cap + 1.
    """
    col = _HOLDS_OF[kind]
    n = 8
    conds = []
    if held:
        n += 1
        conds.append(
            f"(SELECT COUNT(*) FROM (SELECT 1 FROM holds WHERE {col} AND status = 'held'"  # noqa: S608
            f" LIMIT ${n}) h) < ${n}"
        )
    if recent:
        n += 2
        conds.append(
            f"(SELECT COUNT(*) FROM (SELECT 1 FROM holds WHERE {col} AND created_at > ${n - 1}"  # noqa: S608
            f" AND status IN ('held', 'settled') LIMIT ${n}) r) < ${n}"
        )
    if not conds:
        return _BUMP_BOTH
    return _BUMP_BOTH.replace(" RETURNING", "".join(f" AND {c}" for c in conds) + " RETURNING")


def _check_reserve_args(key: str, scopes: Scopes, amount: int) -> None:
    if not key:
        raise ValueError("a reservation key must not be empty")
    _check_amount(amount)
    if not scopes.user_id:
        raise ValueError("scopes.user_id must not be empty")


def _check_amount(amount: Any, what: str = "amount_micros") -> int:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError(f"{what} must be an integer number of micro-dollars, got {amount!r}")
    if amount < 0:
        raise ValueError(f"{what} must be >= 0, got {amount}")
    return amount


def check_scope(scope_kind: str, scope_id: str) -> None:
    if scope_kind not in _SCOPE_KINDS:
        raise ValueError(f"scope_kind must be 'user', 'server' or 'global', got {scope_kind!r}")
    if scope_kind == "global" and scope_id != GLOBAL_ID:
        raise ValueError(f"the global scope id is '*', got {scope_id!r}")
    if not scope_id:
        raise ValueError(f"a {scope_kind} id must not be empty")


class Ledger:
    """Reservations against per-user, per-server and global caps. See the module docstring."""

    def __init__(
        self, backend: Backend, defaults: LimitDefaults, clock: Callable[[], float] = time.time
    ) -> None:
        self._db = backend
        self._defaults = defaults
        self._clock = clock

    @property
    def defaults(self) -> LimitDefaults:
        return self._defaults

    # ------------------------------------------------------------------ public API

    async def reserve(
        self, key: str, scopes: Scopes, amount_micros: int, *, model: str = "", note: str = ""
    ) -> Reservation:
        """Hold `amount_micros` if every applicable cap has room; else raise QuotaExceeded."""
        now = self._clock()
        if self._db.name == "postgres" and await self._reserve_fast(
            key, scopes, amount_micros, model, note, now
        ):
            return Reservation(
                key=key, status="held", amount_micros=amount_micros, settled_micros=0,
                user_id=scopes.user_id, server_id=scopes.server_id, model=model,
                created_at=now, updated_at=now,
            )  # fmt: skip

        async def run(tx: Tx) -> Reservation | Refusal:
            return await self.reserve_in(tx, key, scopes, amount_micros, model, note, now)

        result = await self._db.write(run)
        if isinstance(result, Refusal):
            raise QuotaExceeded(result)
        return result

    async def _reserve_fast(
        self, key: str, scopes: Scopes, amount: int, model: str, note: str, now: float
    ) -> bool:
        """PostgreSQL: the plain reservation as ONE statement in autocommit (the function
        `ledger_reserve_fast`, migration 0002). False = not plain (a repeat, a cap without
        room, a first use of a period or stripe): nothing was written, take the general path.
        """
        _check_reserve_args(key, scopes, amount)
        d = self._defaults
        user = d.user if scopes.user_defaults is None else scopes.user_defaults
        defaults = [getattr(lim, f) for lim in (user, d.server, d.global_) for f in LIMIT_FIELDS]
        try:
            await self._db.write_one(
                _RESERVE_FAST_PG, key, amount, scopes.user_id, scopes.server_id, model, note,
                day_start(now), month_start(now), stripe_of(key), now, now - HOUR_S, defaults,
            )  # fmt: skip
        except Exception as exc:
            if getattr(exc, "sqlstate", None) == _NOT_PLAIN:
                return False
            raise
        return True

    async def settle(
        self, key: str, amount_micros: int | None = None, *, note: str = ""
    ) -> Reservation:
        """Turn the hold into spend (at most the held amount; the rest is released)."""
        now = self._clock()
        if amount_micros is not None:
            _check_amount(amount_micros)
        fast = await self._release_fast(key, "settle", amount_micros, note, now)
        if fast is not None:
            return fast
        return await self._db.write(lambda tx: self.settle_in(tx, key, amount_micros, note, now))

    async def void(self, key: str, *, note: str = "") -> Reservation:
        """Release the whole hold. Idempotent; refused after a settle."""
        now = self._clock()
        fast = await self._release_fast(key, "void", None, note, now)
        if fast is not None:
            return fast
        return await self._db.write(lambda tx: self.void_in(tx, key, note, now))

    async def _release_fast(
        self, key: str, kind: Literal["settle", "void"], amount: int | None, note: str, now: float
    ) -> Reservation | None:
        """PostgreSQL: a plain settle or void of a held key as ONE statement in autocommit
        (`ledger_release_fast`, migration 0002). None = not plain (a repeat, too large an
        amount, an unknown key): nothing was written, take the general path.
        """
        if self._db.name != "postgres":
            return None
        try:
            rows = await self._db.write_one(_RELEASE_FAST_PG, key, kind, amount, now, note)
        except Exception as exc:
            if getattr(exc, "sqlstate", None) == _NOT_PLAIN:
                return None
            raise
        return Reservation.from_row(rows[0])

    async def get(self, key: str) -> Reservation | None:
        """The reservation under `key`; None when unknown or when the key was refused."""

        async def run(tx: Tx) -> Row | None:
            return await tx.fetchrow("SELECT * FROM holds WHERE key = $1", key)

        row = await self._db.read(run)
        if row is None or row["status"] == "refused":
            return None
        return Reservation.from_row(row)

    async def get_refusal(self, key: str) -> Refusal | None:
        """The refusal recorded under `key`, if that key was refused."""

        async def run(tx: Tx) -> Any:
            return await tx.fetchval(
                "SELECT refusal FROM holds WHERE key = $1 AND status = 'refused'", key
            )

        text = await self._db.read(run)
        return None if text is None else Refusal.from_json(text)

    # ------------------------------------------------------------------ in a transaction

    async def reserve_in(
        self,
        tx: Tx,
        key: str,
        scopes: Scopes,
        amount: int,
        model: str,
        note: str,
        now: float,
    ) -> Reservation | Refusal:
        """The reservation inside the caller's transaction; a Refusal is recorded, not raised."""
        _check_reserve_args(key, scopes, amount)
        day, month = day_start(now), month_start(now)
        stripe = stripe_of(key)
        inserted = await tx.fetchrow(
            _INSERT_HOLD, key, amount, scopes.user_id, scopes.server_id, model, note,
            day, month, stripe, now,
        )  # fmt: skip
        if inserted is None:
            existing = await tx.fetchrow("SELECT * FROM holds WHERE key = $1", key)
            assert existing is not None
            return _repeat(existing, scopes, amount)

        limits = self._merge(_overrides_of(inserted, scopes), scopes)
        bumped: list[_Counter] = []
        refusal: Refusal | None = None
        for kind, sid in scopes.chain():
            lim = limits[kind]
            if self._db.row_locks and (
                lim.concurrent_jobs is not None or lim.jobs_per_hour is not None
            ):
                await _lock_scope(tx, kind, sid)
            if kind == "global":
                refusal = await _bump_global(
                    tx, key, stripe, day, month, amount, lim, now, bumped, self._db.for_update
                )
            else:
                refusal = await _bump_scope(
                    tx, kind, sid, key, 0, day, month, amount, lim, now, bumped
                )
            if refusal is not None:
                break

        if refusal is not None:
            for counter in bumped:
                await _release_row(tx, *counter, amount)
            await tx.execute(
                "UPDATE holds SET status = 'refused', refusal = $2, updated_at = $3"
                " WHERE key = $1",
                key, refusal.to_json(), now,
            )  # fmt: skip
            why = refusal.message()
            await tx.execute(
                _ENTRY, now, key, "refuse", amount, scopes.user_id, scopes.server_id, model,
                f"{note}: {why}" if note else why,
            )  # fmt: skip
            return refusal

        await tx.execute(
            _ENTRY, now, key, "reserve", amount, scopes.user_id, scopes.server_id, model, note
        )
        return Reservation(
            key=key,
            status="held",
            amount_micros=amount,
            settled_micros=0,
            user_id=scopes.user_id,
            server_id=scopes.server_id,
            model=model,
            created_at=now,
            updated_at=now,
        )

    async def settle_in(
        self, tx: Tx, key: str, amount: int | None, note: str, now: float
    ) -> Reservation:
        if amount is not None:
            _check_amount(amount)
        for _ in range(_APPEARED_RETRIES):
            row = await tx.fetchrow(
                "UPDATE holds SET status = 'settled',"
                " settled_micros = COALESCE(CAST($2 AS BIGINT), amount_micros), updated_at = $3"
                " WHERE key = $1 AND status = 'held'"
                " AND COALESCE(CAST($2 AS BIGINT), amount_micros) <= amount_micros"
                " RETURNING *",
                key, amount, now,
            )  # fmt: skip
            if row is not None:
                break
            existing = await tx.fetchrow("SELECT * FROM holds WHERE key = $1", key)
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
        settled = int(row["settled_micros"])
        released = int(row["amount_micros"]) - settled
        if released:
            await _release_hold(tx, row, released)
        await tx.execute(
            _ENTRY, now, key, "settle", settled, row["user_id"], row["server_id"], row["model"],
            note,
        )  # fmt: skip
        return Reservation.from_row(row)

    async def void_in(self, tx: Tx, key: str, note: str, now: float) -> Reservation:
        for _ in range(_APPEARED_RETRIES):
            row = await tx.fetchrow(
                "UPDATE holds SET status = 'voided', updated_at = $2"
                " WHERE key = $1 AND status = 'held' RETURNING *",
                key, now,
            )  # fmt: skip
            if row is not None:
                break
            existing = await tx.fetchrow("SELECT * FROM holds WHERE key = $1", key)
            if existing is not None and existing["status"] == "held":
                continue  # reserved concurrently: committed after our UPDATE's snapshot
            if existing is None or existing["status"] == "refused":
                raise UnknownReservation(f"no reservation is held under key {key!r}")
            if existing["status"] == "voided":
                return Reservation.from_row(existing)
            raise InvalidLedgerTransition(f"reservation {key!r} is settled; it cannot be voided")
        else:
            raise StorageError(f"reservation {key!r} kept changing; void it again")
        amount = int(row["amount_micros"])
        if amount:
            await _release_hold(tx, row, amount)
        await tx.execute(
            _ENTRY, now, key, "void", amount, row["user_id"], row["server_id"], row["model"], note
        )
        return Reservation.from_row(row)

    def _merge(self, rows: list[Row], scopes: Scopes) -> dict[str, Limits]:
        changes: dict[str, dict[str, int | None]] = {k: {} for k in _SCOPE_KINDS}
        for r in rows:
            if r["scope_kind"] == "server" and scopes.server_id is None:
                continue
            value = r["value"]
            changes[r["scope_kind"]][_FIELD_OF_CAP[r["cap"]]] = (
                None if value is None else int(value)
            )
        out: dict[str, Limits] = {}
        for kind in _SCOPE_KINDS:
            base = self._defaults.for_kind(kind)
            if kind == "user" and scopes.user_defaults is not None:
                base = scopes.user_defaults
            out[kind] = Limits(**{f: changes[kind].get(f, getattr(base, f)) for f in LIMIT_FIELDS})
        return out

    # ------------------------------------------------------------------ limits

    async def get_limits(self, scope_kind: str, scope_id: str) -> Limits:
        """The effective caps of one scope: its overrides, else the defaults."""
        check_scope(scope_kind, scope_id)
        return await self._db.read(lambda tx: self._scope_limits(tx, scope_kind, scope_id))

    async def _scope_limits(self, tx: Tx, scope_kind: str, scope_id: str) -> Limits:
        rows = await tx.fetch(
            "SELECT cap, value FROM limit_overrides WHERE scope_kind = $1 AND scope_id = $2",
            scope_kind, scope_id,
        )  # fmt: skip
        over = {
            _FIELD_OF_CAP[r["cap"]]: (None if r["value"] is None else int(r["value"])) for r in rows
        }
        base = self._defaults.for_kind(scope_kind)
        return Limits(**{f: over.get(f, getattr(base, f)) for f in LIMIT_FIELDS})

    async def set_limits(
        self, scope_kind: str, scope_id: str, **changes: int | Literal["default"] | None
    ) -> Limits:
        """Override caps of one scope. None = no cap; "default" = drop the override.

        Keys are the `Limits` field names (daily_micros, monthly_micros, concurrent_jobs,
        jobs_per_hour) or the cap names (daily, monthly, ...).
        """
        check_scope(scope_kind, scope_id)
        planned: list[tuple[str, int | Literal["default"] | None]] = []
        for name, value in changes.items():
            field_name = _FIELD_OF_CAP.get(name, name)  # type: ignore[call-overload]
            if field_name not in LIMIT_FIELDS:
                raise ValueError(
                    f"unknown cap {name!r}; caps are: daily_micros, monthly_micros, "
                    "concurrent_jobs, jobs_per_hour"
                )
            if value is not None and value != "default":
                _check_amount(value, field_name)
                if value > MAX_MICROS:  # the same refusal on both backends, not an overflow
                    raise ValueError(f"{field_name} must be at most {MAX_MICROS}, got {value}")
            planned.append((_CAP_OF_FIELD[field_name], value))
        now = self._clock()

        async def run(tx: Tx) -> Limits:
            for cap, value in planned:
                if value == "default":
                    await tx.execute(
                        "DELETE FROM limit_overrides"
                        " WHERE scope_kind = $1 AND scope_id = $2 AND cap = $3",
                        scope_kind, scope_id, cap,
                    )  # fmt: skip
                else:
                    await tx.execute(
                        "INSERT INTO limit_overrides (scope_kind, scope_id, cap, value, updated_at)"
                        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (scope_kind, scope_id, cap)"
                        " DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                        scope_kind, scope_id, cap, value, now,
                    )  # fmt: skip
            return await self._scope_limits(tx, scope_kind, scope_id)

        return await self._db.write(run)

    # ------------------------------------------------------------------ reports

    async def usage(self, scopes: Scopes, *, now: float | None = None) -> list[CapUsage]:
        """Every cap that applies to `scopes`: limit, used (spent + held), remaining, reset time."""
        at = self._clock() if now is None else now
        day, month = day_start(at), month_start(at)

        async def run(tx: Tx) -> list[CapUsage]:
            limits = self._merge(
                await tx.fetch(_OVERRIDES, scopes.user_id, scopes.server_id or ""), scopes
            )
            out: list[CapUsage] = []
            for kind, sid in scopes.chain():
                lim = limits[kind]
                col = _SCOPE_COL[kind]
                periods: tuple[tuple[CapName, int, int, int | None], ...] = (
                    ("daily", day, next_day(day), lim.daily_micros),
                    ("monthly", month, next_month(month), lim.monthly_micros),
                )
                for cap, start, end, limit in periods:
                    row = await tx.fetchrow(
                        "SELECT COALESCE(SUM(CASE WHEN status = 'settled' THEN settled_micros"  # noqa: S608
                        " ELSE 0 END), 0) AS spent, COALESCE(SUM(CASE WHEN status = 'held'"
                        " THEN amount_micros ELSE 0 END), 0) AS held FROM holds"
                        f" WHERE {col} AND created_at >= $2 AND created_at < $3",
                        sid, float(start), float(end),
                    )  # fmt: skip
                    assert row is not None
                    spent, held = int(row["spent"]), int(row["held"])
                    out.append(_usage(kind, sid, cap, limit, spent, held, "micros", float(end)))
                counts = await tx.fetchrow(
                    "SELECT"  # noqa: S608
                    f" (SELECT COUNT(*) FROM holds WHERE {col} AND status = 'held') AS held,"
                    f" (SELECT COUNT(*) FROM holds WHERE {col} AND created_at > $2"
                    "   AND status = 'held') AS recent_held,"
                    f" (SELECT COUNT(*) FROM holds WHERE {col} AND created_at > $2"
                    "   AND status = 'settled') AS recent_settled,"
                    f" (SELECT MIN(created_at) FROM holds WHERE {col} AND created_at > $2"
                    "   AND status IN ('held', 'settled')) AS oldest",
                    sid, at - HOUR_S,
                )  # fmt: skip
                assert counts is not None
                out.append(
                    _usage(
                        kind, sid, "concurrent_jobs", lim.concurrent_jobs, 0,
                        int(counts["held"]), "jobs", None,
                    )
                )  # fmt: skip
                oldest = counts["oldest"]
                out.append(
                    _usage(
                        kind, sid, "jobs_per_hour", lim.jobs_per_hour,
                        int(counts["recent_settled"]), int(counts["recent_held"]), "jobs",
                        (float(oldest) if oldest is not None else at) + HOUR_S,
                    )
                )  # fmt: skip
            return out

        return await self._db.read(run)

    async def spend_by_model(
        self, *, since: float, until: float, scopes: Scopes | None = None
    ) -> dict[str, int]:
        """Settled spend per model for reservations made in [since, until)."""
        rows = await self._spend(since, until, scopes, "model")
        return {str(r["k"]): int(r["total"]) for r in rows}

    async def spend_by_day(
        self, *, since: float, until: float, scopes: Scopes | None = None
    ) -> dict[str, int]:
        """Settled spend per UTC day ('YYYY-MM-DD') of the reservation, in [since, until)."""
        rows = await self._spend(since, until, scopes, "day_start")
        return {day_label(float(r["k"])): int(r["total"]) for r in rows}

    async def _spend(
        self, since: float, until: float, scopes: Scopes | None, group: str
    ) -> list[Row]:
        where = "status = 'settled' AND created_at >= $1 AND created_at < $2"
        args: list[Any] = [float(since), float(until)]
        if scopes is not None:
            args.append(scopes.user_id)
            where += f" AND user_id = ${len(args)}"
            if scopes.server_id is not None:
                args.append(scopes.server_id)
                where += f" AND server_id = ${len(args)}"
        sql = (
            f"SELECT {group} AS k, SUM(settled_micros) AS total FROM holds WHERE {where}"  # noqa: S608
            f" GROUP BY {group} ORDER BY {group}"
        )
        return await self._db.read(lambda tx: tx.fetch(sql, *args))

    async def entries(
        self, *, since: float | None = None, until: float | None = None
    ) -> list[LedgerEntry]:
        """The append-only history in order, optionally within [since, until)."""
        rows = await self._db.read(
            lambda tx: tx.fetch(
                "SELECT * FROM entries WHERE at >= $1 AND at < $2 ORDER BY id",
                float("-inf") if since is None else float(since),
                float("inf") if until is None else float(until),
            )
        )
        return [
            LedgerEntry(
                id=int(r["id"]),
                at=float(r["at"]),
                key=r["key"],
                kind=r["kind"],
                amount_micros=int(r["amount_micros"]),
                user_id=r["user_id"],
                server_id=r["server_id"],
                model=r["model"],
                note=r["note"],
            )
            for r in rows
        ]

    async def export_csv(
        self, out: TextIO, *, since: float | None = None, until: float | None = None
    ) -> int:
        """Write the history as CSV (header + one row per entry); return the entry count."""
        rows = await self.entries(since=since, until=until)
        writer = csv.writer(out)
        writer.writerow(
            ["id", "at", "at_utc", "key", "kind", "amount_micros", "amount_usd", "user_id",
             "server_id", "model", "note"]
        )  # fmt: skip
        for e in rows:
            writer.writerow(
                [
                    e.id, f"{e.at:.6f}",
                    datetime.fromtimestamp(e.at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    e.key, e.kind, e.amount_micros, usd_string(e.amount_micros),
                    e.user_id, e.server_id or "", e.model, e.note,
                ]
            )  # fmt: skip
        return len(rows)

    async def check_books(self) -> list[str]:
        """Differences between the budget counters and the holds (empty = the books balance).

        Used by tests and by operators after an incident.
        """

        async def run(tx: Tx) -> list[str]:
            counters = {
                (
                    r["scope_kind"], r["scope_id"], r["period_kind"], int(r["period_start"]),
                    int(r["stripe"]),
                ): int(r["used_micros"])
                for r in await tx.fetch("SELECT * FROM budgets")
            }  # fmt: skip
            expected: dict[tuple[str, str, str, int, int], int] = {}
            for r in await tx.fetch(
                "SELECT user_id, server_id, day_start, month_start, stripe,"
                " CASE WHEN status = 'held' THEN amount_micros ELSE settled_micros END AS used"
                " FROM holds WHERE status IN ('held', 'settled')"
            ):
                scopes = Scopes(r["user_id"], r["server_id"])
                for kind, sid in scopes.chain():
                    stripe = int(r["stripe"]) if kind == "global" else 0
                    for period, start in (("day", r["day_start"]), ("month", r["month_start"])):
                        k = (kind, sid, period, int(start), stripe)
                        expected[k] = expected.get(k, 0) + int(r["used"])
            problems = []
            for key in sorted(set(counters) | set(expected)):
                if counters.get(key, 0) != expected.get(key, 0):
                    problems.append(
                        f"{key}: counter {counters.get(key, 0)} != holds {expected.get(key, 0)}"
                    )
            return problems

        return await self._db.read(run)


# ---------------------------------------------------------------------- helpers


def _overrides_of(row: Row, scopes: Scopes) -> list[Row]:
    """The override columns of `_INSERT_HOLD` as rows shaped like `limit_overrides`."""
    out: list[Row] = []
    for kind in _SCOPE_KINDS:
        if kind == "server" and scopes.server_id is None:
            continue
        for cap in _CAP_OF_FIELD.values():
            value = row[f"o_{kind}_{cap}"]
            if value is not None:
                out.append(
                    {"scope_kind": kind, "cap": cap, "value": None if value == _NO_CAP else value}
                )
    return out


def _repeat(row: Row, scopes: Scopes, amount: int) -> Reservation | Refusal:
    """A key seen before: the same request gets the same outcome; a different one is refused."""
    same = (
        row["user_id"] == scopes.user_id
        and row["server_id"] == scopes.server_id
        and int(row["amount_micros"]) == amount
    )
    if not same:
        raise IdempotencyConflict(
            f"key {row['key']!r} was already used for {format_usd(int(row['amount_micros']))} "
            f"(user {row['user_id']}, server {row['server_id']}); this request is "
            f"{format_usd(amount)} (user {scopes.user_id}, server {scopes.server_id})"
        )
    if row["status"] == "refused":
        return Refusal.from_json(row["refusal"])
    return Reservation.from_row(row)


async def _lock_scope(tx: Tx, kind: str, sid: str) -> None:
    if await tx.fetchrow(_LOCK_SCOPE, kind, sid) is None:
        await tx.execute(_ADD_SCOPE_LOCK, kind, sid)
        if await tx.fetchrow(_LOCK_SCOPE, kind, sid) is None:
            raise StorageError(f"could not lock scope {kind}:{sid}")


# (scope_kind, scope_id, period_kind, period_start, stripe) of one budget row
_Counter = tuple[str, str, str, int, int]


async def _bump_scope(
    tx: Tx, kind: ScopeKind, sid: str, key: str, stripe: int, day: int, month: int,
    amount: int, lim: Limits, now: float, bumped: list[_Counter],
) -> Refusal | None:  # fmt: skip
    """Raise the day and month counters of one scope if its money and job-count caps have
    room (one statement in the common case).

    Appends every raised row to `bumped` (the caller undoes them on a refusal).
    """
    conc, hourly = lim.concurrent_jobs, lim.jobs_per_hour
    day_cap, month_cap = lim.daily_micros, lim.monthly_micros
    args: list[Any] = [kind, sid, stripe, amount, day, day_cap, month, month_cap]
    if conc is not None:
        args.append(min(conc, _MAX_BIGINT - 1) + 1)
    if hourly is not None:
        args.extend([now - HOUR_S, min(hourly, _MAX_BIGINT - 1) + 1])
    rows = await tx.fetch(_bump_sql(kind, conc is not None, hourly is not None), *args)
    done = {first_value(r) for r in rows}
    for period, start in (("day", day), ("month", month)):
        if period in done:
            bumped.append((kind, sid, period, start, stripe))
    if len(done) == 2:
        return None
    if not done and (conc is not None or hourly is not None):
        # nothing raised: maybe a job-count cap; count exactly for the refusal
        refusal = await _check_counts(tx, kind, sid, lim, key, now)
        if refusal is not None:
            return refusal
    # A missing row (first use of this period) or no room. Create the rows and try the rest
    # once more: a row created concurrently by another transaction is only visible to a new
    # statement (PostgreSQL, READ COMMITTED). The counts passed above (we hold the scope lock;
    # settles only lower them), so only money is checked here.
    await tx.execute(_ADD_BUDGETS, kind, sid, stripe, day, month)
    for period, start, cap in (("day", day, day_cap), ("month", month, month_cap)):
        if period in done:
            continue
        if await tx.fetchrow(_BUMP, kind, sid, period, start, stripe, amount, cap) is not None:
            bumped.append((kind, sid, period, start, stripe))
            continue
        assert cap is not None
        used = int(await tx.fetchval(_USED, kind, sid, period, start))
        return _money_refusal(kind, sid, period, start, cap, used, amount)
    return None


async def _bump_global(
    tx: Tx, key: str, stripe: int, day: int, month: int, amount: int, lim: Limits,
    now: float, bumped: list[_Counter], for_update: str,
) -> Refusal | None:  # fmt: skip
    """The global counters are striped. Without a global money cap a hold only raises its own
    stripe (no hot row); with one, every stripe of the period is locked in stripe order and
    the SUM is checked first, so concurrent reservations cannot overspend the cap together.
    """
    caps = (("day", day, lim.daily_micros), ("month", month, lim.monthly_micros))
    for period, start, cap in caps:
        if cap is None:
            continue
        used = await _lock_global_stripes(tx, period, start, for_update)
        if used + amount > cap:
            return _money_refusal("global", GLOBAL_ID, period, start, cap, used, amount)
    counts_only = Limits(concurrent_jobs=lim.concurrent_jobs, jobs_per_hour=lim.jobs_per_hour)
    return await _bump_scope(
        tx, "global", GLOBAL_ID, key, stripe, day, month, amount, counts_only, now, bumped
    )


async def _lock_global_stripes(tx: Tx, period: str, start: int, for_update: str) -> int:
    """Lock every global stripe of one period (creating them on first use); their SUM."""
    sql = _GLOBAL_STRIPES_SQL + for_update
    rows = await tx.fetch(sql, period, start)
    if len(rows) < GLOBAL_STRIPES:
        await tx.execute(_ADD_GLOBAL_STRIPES, period, start)
        rows = await tx.fetch(sql, period, start)
        if len(rows) != GLOBAL_STRIPES:
            raise StorageError(f"global {period} stripes of {start} are incomplete: {len(rows)}")
    return sum(int(first_value(r)) for r in rows)


def _money_refusal(
    kind: ScopeKind, sid: str, period: str, start: int, cap: int, used: int, amount: int
) -> Refusal:
    return Refusal(
        scope_kind=kind,
        scope_id=sid,
        cap="daily" if period == "day" else "monthly",
        limit=cap,
        used=used,
        requested=amount,
        remaining=max(0, cap - used),
        unit="micros",
        resets_at=float(next_day(start) if period == "day" else next_month(start)),
    )


async def _release_row(
    tx: Tx, kind: str, sid: str, period: str, start: int, stripe: int, amount: int
) -> None:
    if await tx.fetchrow(_RELEASE, kind, sid, period, start, stripe, amount) is None:
        raise StorageError(f"budget row {kind}:{sid} {period} {start} stripe {stripe} is missing")


async def _release_hold(tx: Tx, row: Row, amount: int) -> None:
    """Give back `amount` to the periods the hold was reserved in (even after midnight)."""
    day, month = int(row["day_start"]), int(row["month_start"])
    for kind, sid in Scopes(row["user_id"], row["server_id"]).chain():
        stripe = int(row["stripe"]) if kind == "global" else 0
        rows = await tx.fetch(_RELEASE_BOTH, kind, sid, stripe, amount, day, month)
        if len(rows) != 2:
            raise StorageError(f"budget rows of {kind}:{sid} for {day}/{month} are missing")


async def _check_counts(
    tx: Tx, kind: ScopeKind, sid: str, lim: Limits, key: str, now: float
) -> Refusal | None:
    """Concurrent and hourly caps counted exactly from holds (ours is already among them);
    only run when the bounded counts of `_bump_sql` said no.
    """
    conc, hourly = lim.concurrent_jobs, lim.jobs_per_hour
    exact = await tx.fetchrow(_EXACT_COUNT_SQL[kind], sid, now - HOUR_S)
    assert exact is not None
    held, recent = int(exact["held"]) - 1, int(exact["recent"]) - 1  # minus our own hold
    if conc is not None and held + 1 > conc:
        return Refusal(
            scope_kind=kind, scope_id=sid, cap="concurrent_jobs", limit=conc,
            used=held, requested=1, remaining=max(0, conc - held), unit="jobs",
            resets_at=None,
        )  # fmt: skip
    if hourly is not None and recent + 1 > hourly:
        # a slot frees when the (recent - cap + 1)-th oldest reservation leaves the window
        oldest = await tx.fetchval(
            f"SELECT created_at FROM holds WHERE {_SCOPE_COL[kind]} AND created_at > $2"  # noqa: S608
            " AND status IN ('held', 'settled') AND key <> $3"
            " ORDER BY created_at LIMIT 1 OFFSET $4",
            sid, now - HOUR_S, key, recent - hourly,
        )  # fmt: skip
        return Refusal(
            scope_kind=kind, scope_id=sid, cap="jobs_per_hour", limit=hourly,
            used=recent, requested=1, remaining=max(0, hourly - recent), unit="jobs",
            resets_at=(float(oldest) + HOUR_S) if oldest is not None else None,
        )  # fmt: skip
    # Settles and voids take no scope lock, so the exact count (a newer statement) may have
    # dropped below the cap since the bounded one: then there is room after all.
    return None


def _usage(
    kind: ScopeKind, sid: str, cap: CapName, limit: int | None, spent: int, held: int,
    unit: Any, resets_at: float | None,
) -> CapUsage:  # fmt: skip
    used = spent + held
    return CapUsage(
        scope_kind=kind, scope_id=sid, cap=cap, limit=limit, used=used, spent=spent, held=held,
        remaining=None if limit is None else max(0, limit - used), unit=unit,
        resets_at=resets_at,
    )  # fmt: skip
