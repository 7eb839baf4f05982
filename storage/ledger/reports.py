"""What the ledger tells people and operators: usage per cap, spend, the history as CSV.

Reads only. Usage comes from the accounts (the numbers the caps are checked against);
spend and history come from the holds (by their time index) and the append-only entries.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from typing import Any, TextIO

from providers.money import usd_string
from storage.backend import Row, Tx
from storage.ledger import statements as sql
from storage.ledger.rules import first_refusal
from storage.ledger.steps import Caps, scope_uses
from storage.models import CapName, CapUsage, LedgerEntry, Refusal, ScopeKind, Scopes
from storage.periods import (
    HOUR_S,
    day_label,
    day_start,
    hour_start,
    month_start,
    next_day,
    next_month,
)

# Holds still held among the starts of the last hour, per user and server. $1 the hour's
# start, a whole second (starts count in whole seconds, rounded up).
_HELD_IN_HOUR = (
    "SELECT user_id, server_id, COUNT(*) AS n FROM holds WHERE created_at > $1"
    " AND status = 'held' GROUP BY user_id, server_id"
)


async def usage(tx: Tx, scopes: Scopes, caps: Caps, at: float) -> list[CapUsage]:
    """Every cap that applies to `scopes`: limit, used (spent + held), remaining, reset time."""
    day, month = day_start(at), month_start(at)
    accounts = await tx.fetch(sql.SCOPE_ACCOUNTS, scopes.user_id, scopes.server_id)
    starts = await tx.fetch(
        sql.SCOPE_STARTS, scopes.user_id, scopes.server_id, hour_start(at), 1
    )
    held_rows = await tx.fetch(_HELD_IN_HOUR, float(hour_start(at)))
    out: list[CapUsage] = []
    for use in scope_uses(scopes, accounts, starts, caps, day, month):
        rows = [a for a in accounts if (a["scope_kind"], a["scope_id"]) == (use.kind, use.scope_id)]
        lim = use.limits
        day_held = sum(int(a["day_held"]) for a in rows if a["day_start"] == day)
        month_held = sum(int(a["month_held"]) for a in rows if a["month_start"] == month)
        out.append(_usage(use.kind, use.scope_id, "daily", lim.daily_micros,
                          use.day_micros - day_held, day_held, "micros", float(next_day(day))))
        out.append(_usage(use.kind, use.scope_id, "monthly", lim.monthly_micros,
                          use.month_micros - month_held, month_held, "micros",
                          float(next_month(month))))  # fmt: skip
        out.append(_usage(use.kind, use.scope_id, "concurrent_jobs", lim.concurrent_jobs, 0,
                          use.running, "jobs", None))  # fmt: skip
        held = sum(int(r["n"]) for r in held_rows if _in_scope(r, use.kind, use.scope_id))
        oldest = use.starts[0][0] if use.starts else at
        out.append(_usage(use.kind, use.scope_id, "jobs_per_hour", lim.jobs_per_hour,
                          use.started - held, held, "jobs", float(oldest) + HOUR_S))  # fmt: skip
    return out


async def would_refuse(
    tx: Tx, scopes: Scopes, caps: Caps, amount: int, at: float
) -> Refusal | None:
    """The refusal a reservation of `amount` would get now - the same rule on the same
    numbers as the careful step (rules.first_refusal) - without holding anything: a preview
    for a form. None: it fits now (the reservation still decides)."""
    day, month = day_start(at), month_start(at)
    accounts = await tx.fetch(sql.SCOPE_ACCOUNTS, scopes.user_id, scopes.server_id)
    bot = scope_uses(Scopes(scopes.user_id), accounts, [], caps, day, month)[-1]
    every_start = 1 if bot.limits.jobs_per_hour is not None else 0  # bot-wide: read them all
    starts = await tx.fetch(
        sql.SCOPE_STARTS, scopes.user_id, scopes.server_id, hour_start(at), every_start
    )
    return first_refusal(scope_uses(scopes, accounts, starts, caps, day, month), amount, day, month)


def _in_scope(row: Row, kind: ScopeKind, sid: str) -> bool:
    if kind == "user":
        return bool(row["user_id"] == sid)
    if kind == "server":
        return bool(row["server_id"] == sid)
    return True


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


async def spend(
    tx: Tx, since: float, until: float, scopes: Scopes | None, group: str
) -> list[Row]:
    """Settled spend of the reservations made in [since, until), per `group` (model or
    day_start)."""
    where = "status = 'settled' AND created_at >= $1 AND created_at < $2"
    args: list[Any] = [float(since), float(until)]
    if scopes is not None:
        args.append(scopes.user_id)
        where += f" AND user_id = ${len(args)}"
        if scopes.server_id is not None:
            args.append(scopes.server_id)
            where += f" AND server_id = ${len(args)}"
    return await tx.fetch(
        f"SELECT {group} AS k, SUM(settled_micros) AS total FROM holds WHERE {where}"  # noqa: S608
        f" GROUP BY {group} ORDER BY {group}",
        *args,
    )


def by_day(rows: list[Row]) -> dict[str, int]:
    return {day_label(float(r["k"])): int(r["total"]) for r in rows}


async def entries(tx: Tx, since: float | None, until: float | None) -> list[LedgerEntry]:
    rows = await tx.fetch(
        "SELECT * FROM entries WHERE at >= $1 AND at < $2 ORDER BY id",
        float("-inf") if since is None else float(since),
        float("inf") if until is None else float(until),
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


def write_csv(out: TextIO, rows: list[LedgerEntry]) -> int:
    """The history as CSV (header + one row per entry); the entry count."""
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
