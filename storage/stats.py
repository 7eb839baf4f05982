"""What /metrics reads from the database: the same answer from every process.

Jobs by state and model, money held now, money settled in the current UTC day and month, and
refusals today by cap. Periods follow the ledger's rule: a hold counts in the period it was
reserved in (`holds.created_at`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from storage.backend import Backend, Tx
from storage.models import Refusal
from storage.periods import day_start, month_start


@dataclass(frozen=True)
class Snapshot:
    jobs: dict[tuple[str, str], int] = field(default_factory=dict)  # (status, model) -> count
    held_micros: int = 0
    holds: int = 0
    settled_micros: dict[str, int] = field(default_factory=dict)  # "day" | "month" -> micros
    refusals_today: dict[tuple[str, str], int] = field(default_factory=dict)  # (scope, cap)


def period_starts(now: float) -> tuple[float, float]:
    """Start of the current UTC day and month, as Unix seconds."""
    return float(day_start(now)), float(month_start(now))


async def snapshot(backend: Backend, now: float) -> Snapshot:
    day, month = period_starts(now)

    async def run(tx: Tx) -> Snapshot:
        jobs = {
            (r["status"], r["model"]): int(r["n"])
            for r in await tx.fetch(
                "SELECT status, model, COUNT(*) AS n FROM jobs GROUP BY status, model"
            )
        }
        # what is held now, from the ledger's bot-wide accounts (no scan of the holds)
        held = await tx.fetchrow(
            "SELECT COALESCE(SUM(running), 0) AS n, COALESCE(SUM(held_micros), 0) AS micros"
            " FROM accounts WHERE scope_kind = 'global'"
        )
        settled = await tx.fetchrow(
            "SELECT COALESCE(SUM(CASE WHEN created_at >= $1 THEN settled_micros ELSE 0 END), 0)"
            " AS day, COALESCE(SUM(settled_micros), 0) AS month"
            " FROM holds WHERE status = 'settled' AND created_at >= $2",
            day,
            month,
        )
        refusals: Counter[tuple[str, str]] = Counter()
        for r in await tx.fetch(
            "SELECT refusal FROM holds WHERE status = 'refused' AND created_at >= $1", day
        ):
            if r["refusal"]:
                refusal = Refusal.from_json(r["refusal"])
                refusals[(refusal.scope_kind, refusal.cap)] += 1
        assert held is not None and settled is not None
        return Snapshot(
            jobs=jobs,
            held_micros=int(held["micros"]),
            holds=int(held["n"]),
            settled_micros={"day": int(settled["day"]), "month": int(settled["month"])},
            refusals_today=dict(refusals),
        )

    return await backend.read(run)


async def ping(backend: Backend) -> None:
    """One round trip: raises when the database cannot be reached."""
    await backend.read(lambda tx: tx.fetchval("SELECT 1"))
