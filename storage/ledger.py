"""The spend ledger: reserve -> settle | void, with idempotency keys and caps.

How a reservation stays within every cap, on SQLite and PostgreSQL alike:
- The hold row is inserted first (`ON CONFLICT (key) DO NOTHING`): a concurrent request with the
  same key waits for ours and then sees it, so a key is reserved at most once.
- Money caps are counters in `budgets` (used = settled + held per scope, day and month), raised
  by a conditional `UPDATE ... WHERE used + amount <= cap RETURNING` - the check and the write
  are one statement, re-evaluated by PostgreSQL on the latest row version under READ COMMITTED.
- Job-count caps (concurrent, per hour) are counted from the holds while the scope's lock row is
  held (PostgreSQL; SQLite's BEGIN IMMEDIATE is exclusive anyway); every reservation of a scope
  takes that lock before counting, so no phantom can slip past the count.
- Rows are locked in one fixed order: hold, then per scope (user, server, global - the hottest
  last) its lock row, day row, month row. Settle and void follow the same order, so no cycle.
- A refusal undoes its own counter increments in the same transaction and is recorded under the
  key (status 'refused'), so a retry gets the same answer.
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from storage.backend import Backend, Row, Tx
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
    format_usd,
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

_INSERT_HOLD = (
    "INSERT INTO holds (key, status, amount_micros, settled_micros, user_id, server_id, model,"
    " note, day_start, month_start, created_at, updated_at)"
    " VALUES ($1, 'held', $2, 0, $3, $4, $5, $6, $7, $8, $9, $9)"
    " ON CONFLICT (key) DO NOTHING RETURNING key"
)
_BUMP = (
    "UPDATE budgets SET used_micros = used_micros + $5"
    " WHERE scope_kind = $1 AND scope_id = $2 AND period_kind = $3 AND period_start = $4"
    " AND (CAST($6 AS BIGINT) IS NULL OR used_micros + $5 <= CAST($6 AS BIGINT))"
    " RETURNING used_micros"
)
_ADD_BUDGET = (
    "INSERT INTO budgets (scope_kind, scope_id, period_kind, period_start, used_micros)"
    " VALUES ($1, $2, $3, $4, 0) ON CONFLICT DO NOTHING"
)
_RELEASE = (
    "UPDATE budgets SET used_micros = used_micros - $5"
    " WHERE scope_kind = $1 AND scope_id = $2 AND period_kind = $3 AND period_start = $4"
    " RETURNING used_micros"
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
_OVERRIDES = (
    "SELECT scope_kind, scope_id, cap, value FROM limit_overrides"
    " WHERE (scope_kind = 'user' AND scope_id = $1) OR (scope_kind = 'server' AND scope_id = $2)"
    " OR (scope_kind = 'global' AND scope_id = '*')"
)


def _count_sql(kind: str) -> str:
    col = _SCOPE_COL[kind]
    return (
        f"SELECT (SELECT COUNT(*) FROM holds WHERE {col} AND status = 'held') AS held,"  # noqa: S608
        f" (SELECT COUNT(*) FROM holds WHERE {col} AND created_at > $2"
        "  AND status IN ('held', 'settled')) AS recent"
    )


_COUNT_SQL = {kind: _count_sql(kind) for kind in _SCOPE_KINDS}


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

        async def run(tx: Tx) -> Reservation | Refusal:
            return await self.reserve_in(tx, key, scopes, amount_micros, model, note, now)

        result = await self._db.write(run)
        if isinstance(result, Refusal):
            raise QuotaExceeded(result)
        return result

    async def settle(
        self, key: str, amount_micros: int | None = None, *, note: str = ""
    ) -> Reservation:
        """Turn the hold into spend (at most the held amount; the rest is released)."""
        now = self._clock()
        return await self._db.write(lambda tx: self.settle_in(tx, key, amount_micros, note, now))

    async def void(self, key: str, *, note: str = "") -> Reservation:
        """Release the whole hold. Idempotent; refused after a settle."""
        now = self._clock()
        return await self._db.write(lambda tx: self.void_in(tx, key, note, now))

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
        if not key:
            raise ValueError("a reservation key must not be empty")
        _check_amount(amount)
        if not scopes.user_id:
            raise ValueError("scopes.user_id must not be empty")
        day, month = day_start(now), month_start(now)
        inserted = await tx.fetchrow(
            _INSERT_HOLD, key, amount, scopes.user_id, scopes.server_id, model, note,
            day, month, now,
        )  # fmt: skip
        if inserted is None:
            existing = await tx.fetchrow("SELECT * FROM holds WHERE key = $1", key)
            assert existing is not None
            return _repeat(existing, scopes, amount)

        limits = await self._limits_in(tx, scopes)
        bumped: list[tuple[str, str, str, int]] = []
        refusal: Refusal | None = None
        for kind, sid in scopes.chain():
            lim = limits[kind]
            if self._db.row_locks:
                await _lock_scope(tx, kind, sid)
            if lim.concurrent_jobs is not None or lim.jobs_per_hour is not None:
                refusal = await _check_counts(tx, kind, sid, lim, key, now)
                if refusal is not None:
                    break
            for period, start, cap in (
                ("day", day, lim.daily_micros),
                ("month", month, lim.monthly_micros),
            ):
                if await _bump(tx, kind, sid, period, start, amount, cap):
                    bumped.append((kind, sid, period, start))
                    continue
                assert cap is not None
                used = await tx.fetchval(
                    "SELECT used_micros FROM budgets WHERE scope_kind = $1 AND scope_id = $2"
                    " AND period_kind = $3 AND period_start = $4",
                    kind, sid, period, start,
                )  # fmt: skip
                used = int(used)
                refusal = Refusal(
                    scope_kind=kind,
                    scope_id=sid,
                    cap="daily" if period == "day" else "monthly",
                    limit=cap,
                    used=used,
                    requested=amount,
                    remaining=max(0, cap - used),
                    unit="micros",
                    resets_at=float(next_day(day) if period == "day" else next_month(month)),
                )
                break
            if refusal is not None:
                break

        if refusal is not None:
            for kind, sid, period, start in bumped:
                await _release_row(tx, kind, sid, period, start, amount)
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
        row = await tx.fetchrow(
            "UPDATE holds SET status = 'settled',"
            " settled_micros = COALESCE(CAST($2 AS BIGINT), amount_micros), updated_at = $3"
            " WHERE key = $1 AND status = 'held'"
            " AND COALESCE(CAST($2 AS BIGINT), amount_micros) <= amount_micros"
            " RETURNING *",
            key, amount, now,
        )  # fmt: skip
        if row is None:
            existing = await tx.fetchrow("SELECT * FROM holds WHERE key = $1", key)
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
        row = await tx.fetchrow(
            "UPDATE holds SET status = 'voided', updated_at = $2"
            " WHERE key = $1 AND status = 'held' RETURNING *",
            key, now,
        )  # fmt: skip
        if row is None:
            existing = await tx.fetchrow("SELECT * FROM holds WHERE key = $1", key)
            if existing is None or existing["status"] == "refused":
                raise UnknownReservation(f"no reservation is held under key {key!r}")
            if existing["status"] == "voided":
                return Reservation.from_row(existing)
            raise InvalidLedgerTransition(f"reservation {key!r} is settled; it cannot be voided")
        amount = int(row["amount_micros"])
        if amount:
            await _release_hold(tx, row, amount)
        await tx.execute(
            _ENTRY, now, key, "void", amount, row["user_id"], row["server_id"], row["model"], note
        )
        return Reservation.from_row(row)

    async def _limits_in(self, tx: Tx, scopes: Scopes) -> dict[str, Limits]:
        rows = await tx.fetch(_OVERRIDES, scopes.user_id, scopes.server_id or "")
        return self._merge(rows, scopes)

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
                for cap, start, end, limit in (
                    ("daily", day, next_day(day), lim.daily_micros),
                    ("monthly", month, next_month(month), lim.monthly_micros),
                ):
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
                    e.key, e.kind, e.amount_micros, format_usd(e.amount_micros)[1:],
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
                (r["scope_kind"], r["scope_id"], r["period_kind"], int(r["period_start"])): int(
                    r["used_micros"]
                )
                for r in await tx.fetch("SELECT * FROM budgets")
            }
            expected: dict[tuple[str, str, str, int], int] = {}
            for r in await tx.fetch(
                "SELECT user_id, server_id, day_start, month_start,"
                " CASE WHEN status = 'held' THEN amount_micros ELSE settled_micros END AS used"
                " FROM holds WHERE status IN ('held', 'settled')"
            ):
                scopes = Scopes(r["user_id"], r["server_id"])
                for kind, sid in scopes.chain():
                    for period, start in (("day", r["day_start"]), ("month", r["month_start"])):
                        k = (kind, sid, period, int(start))
                        expected[k] = expected.get(k, 0) + int(r["used"])
            problems = []
            for k in sorted(set(counters) | set(expected)):
                if counters.get(k, 0) != expected.get(k, 0):
                    problems.append(
                        f"{k}: counter {counters.get(k, 0)} != holds {expected.get(k, 0)}"
                    )
            return problems

        return await self._db.read(run)


# ---------------------------------------------------------------------- helpers


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


async def _bump(
    tx: Tx, kind: str, sid: str, period: str, start: int, amount: int, cap: int | None
) -> bool:
    """Raise one counter if the cap allows; False means the cap has no room."""
    if await tx.fetchrow(_BUMP, kind, sid, period, start, amount, cap) is not None:
        return True
    # Missing row (first use of this period) or no room. Create it and try once more: a row
    # created concurrently by another transaction is only visible to a new statement.
    await tx.execute(_ADD_BUDGET, kind, sid, period, start)
    return await tx.fetchrow(_BUMP, kind, sid, period, start, amount, cap) is not None


async def _release_row(tx: Tx, kind: str, sid: str, period: str, start: int, amount: int) -> None:
    if await tx.fetchrow(_RELEASE, kind, sid, period, start, amount) is None:
        raise StorageError(f"budget row {kind}:{sid} {period} {start} is missing")


async def _release_hold(tx: Tx, row: Row, amount: int) -> None:
    """Give back `amount` to the periods the hold was reserved in (even after midnight)."""
    for kind, sid in Scopes(row["user_id"], row["server_id"]).chain():
        await _release_row(tx, kind, sid, "day", int(row["day_start"]), amount)
        await _release_row(tx, kind, sid, "month", int(row["month_start"]), amount)


async def _check_counts(
    tx: Tx, kind: ScopeKind, sid: str, lim: Limits, key: str, now: float
) -> Refusal | None:
    """Concurrent and hourly caps, counted from holds (ours is already among them)."""
    row = await tx.fetchrow(_COUNT_SQL[kind], sid, now - HOUR_S)
    assert row is not None
    held, recent = int(row["held"]) - 1, int(row["recent"]) - 1  # minus our own hold
    if lim.concurrent_jobs is not None and held + 1 > lim.concurrent_jobs:
        return Refusal(
            scope_kind=kind, scope_id=sid, cap="concurrent_jobs", limit=lim.concurrent_jobs,
            used=held, requested=1, remaining=max(0, lim.concurrent_jobs - held), unit="jobs",
            resets_at=None,
        )  # fmt: skip
    if lim.jobs_per_hour is not None and recent + 1 > lim.jobs_per_hour:
        # a slot frees when the (recent - cap + 1)-th oldest reservation leaves the window
        oldest = await tx.fetchval(
            f"SELECT created_at FROM holds WHERE {_SCOPE_COL[kind]} AND created_at > $2"  # noqa: S608
            " AND status IN ('held', 'settled') AND key <> $3"
            " ORDER BY created_at LIMIT 1 OFFSET $4",
            sid, now - HOUR_S, key, recent - lim.jobs_per_hour,
        )  # fmt: skip
        return Refusal(
            scope_kind=kind, scope_id=sid, cap="jobs_per_hour", limit=lim.jobs_per_hour,
            used=recent, requested=1, remaining=max(0, lim.jobs_per_hour - recent), unit="jobs",
            resets_at=(float(oldest) + HOUR_S) if oldest is not None else None,
        )  # fmt: skip
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
