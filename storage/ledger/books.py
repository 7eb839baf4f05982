"""Do the books balance? The accounts recounted from the holds, for tests and for operators
after an incident; and the purge of starts that no longer count.
"""

from __future__ import annotations

from collections import defaultdict

from storage.backend import Row, Tx
from storage.ledger.escrow import GLOBAL_STRIPES
from storage.models import Scopes
from storage.periods import HOUR_S, start_second

_Account = tuple[str, str, int]  # scope_kind, scope_id, stripe


def _accounts_of(hold: Row) -> list[_Account]:
    return [
        (kind, sid, int(hold["stripe"]) if kind == "global" else 0)
        for kind, sid in Scopes(hold["user_id"], hold["server_id"]).chain()
    ]


async def check_books(tx: Tx, now: float) -> list[str]:
    """Differences between the accounts and the holds (empty = the books balance)."""
    accounts = {
        (r["scope_kind"], r["scope_id"], int(r["stripe"])): r
        for r in await tx.fetch("SELECT * FROM accounts")
    }
    holds = await tx.fetch("SELECT * FROM holds WHERE status IN ('held', 'settled')")
    want: dict[tuple[_Account, str], int] = defaultdict(int)
    starts: dict[tuple[str, str, int], int] = defaultdict(int)  # user, server, second
    problems: list[str] = []
    for h in holds:
        held = h["status"] == "held"
        used = int(h["amount_micros"] if held else h["settled_micros"])
        for acc in _accounts_of(h):
            row = accounts.get(acc)
            if row is None:
                problems.append(f"{acc}: no account for hold {h['key']!r}")
                continue
            for period in ("day", "month"):
                start = int(row[f"{period}_start"])
                if int(h[f"{period}_start"]) > start:
                    problems.append(f"{acc}: hold {h['key']!r} is in a later {period}")
                if int(h[f"{period}_start"]) == start:
                    want[(acc, f"{period}_micros")] += used
                    want[(acc, f"{period}_held")] += used if held else 0
            want[(acc, "running")] += 1 if held else 0
            want[(acc, "held_micros")] += used if held else 0
        second = start_second(float(h["created_at"]))
        if second > now - HOUR_S:
            starts[(h["user_id"], h["server_id"] or "", second)] += 1
    for acc, row in sorted(accounts.items()):
        columns = ("day_micros", "day_held", "month_micros", "month_held", "running", "held_micros")
        for column in columns:
            if int(row[column]) != want.get((acc, column), 0):
                problems.append(
                    f"{acc}: {column} {int(row[column])} != holds {want.get((acc, column), 0)}"
                )
    problems += _check_shares([r for k, r in sorted(accounts.items()) if k[0] == "global"])
    counted = {
        (r["user_id"], r["server_id"], int(r["at_second"])): int(r["started"])
        for r in await tx.fetch("SELECT * FROM starts WHERE at_second > $1", now - HOUR_S)
    }
    for key in sorted(set(counted) | set(starts)):
        if counted.get(key, 0) != starts.get(key, 0):
            problems.append(
                f"{key}: started {counted.get(key, 0)} != holds {starts.get(key, 0)}"
            )
    return problems


def _check_shares(stripes: list[Row]) -> list[str]:
    """Each stripe within its share, and the shares of one cut adding up to their cap."""
    problems = []
    for counter, used in (("day", "day_micros"), ("month", "month_micros"), ("running", "running")):
        shared = [s for s in stripes if s[f"{counter}_share"] is not None]
        for s in shared:
            if int(s[used]) > int(s[f"{counter}_share"]):
                problems.append(f"global stripe {s['stripe']}: {used} over its {counter} share")
        caps = {s[f"{counter}_share_of"] for s in shared}
        if len(shared) == GLOBAL_STRIPES and len(caps) == 1:
            total = sum(int(s[f"{counter}_share"]) for s in shared)
            if total != int(caps.pop()):
                problems.append(f"global {counter} shares add up to {total}, not their cap")
    return problems


PURGE_EVERY_S = 60.0


def purge_before(now: float) -> int:
    """The oldest start second still worth keeping: the hour, and a minute to spare."""
    return start_second(now) - int(HOUR_S) - 60
