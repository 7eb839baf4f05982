"""The bot-wide scope: 16 accounts ("stripes"), and how a bot-wide cap is shared among them.

Every reservation counts on one stripe (stripe = crc32(key) % 16), so reservations do not all
queue on one row. Without a bot-wide cap that is all. Under a bot-wide money or concurrency
cap, each stripe gets a share of the cap, the shares adding up to the cap; a reservation
checks only its stripe's share (one conditional write, like any other scope), so the sum of
the stripes can never pass the cap. When a share runs short (or a new day or month starts, or
the cap changes), the careful path locks all 16 stripes in order, checks the exact sum, and
cuts the room that is left into fresh shares. This is the demarcation protocol (Barbará and
Garcia-Molina, "The Demarcation Protocol", EDBT 1992): a global constraint kept by local
checks against limits that add up to it.

A bot-wide hourly cap has no shares: it is checked by the careful path, all stripes locked.
"""

from __future__ import annotations

import zlib

from storage.backend import Tx

# NEVER change: holds record their stripe, and the careful path locks exactly these rows.
GLOBAL_STRIPES = 16


def stripe_of(key: str) -> int:
    """The global stripe of a hold: stable across processes and versions (crc32, not hash())."""
    return zlib.crc32(key.encode("utf-8")) % GLOBAL_STRIPES


# Move every global stripe to the reservation's day and month (a later period starts afresh,
# without shares). $1 day, $2 month
ROLL_STRIPES = (
    "UPDATE accounts SET"
    " day_micros = CASE WHEN day_start = $1 THEN day_micros ELSE 0 END,"
    " day_held = CASE WHEN day_start = $1 THEN day_held ELSE 0 END,"
    " day_share = CASE WHEN day_start = $1 THEN day_share END, day_start = $1,"
    " month_micros = CASE WHEN month_start = $2 THEN month_micros ELSE 0 END,"
    " month_held = CASE WHEN month_start = $2 THEN month_held ELSE 0 END,"
    " month_share = CASE WHEN month_start = $2 THEN month_share END, month_start = $2"
    " WHERE scope_kind = 'global' AND scope_id = '*'"
)


def cut_sql(counter: str) -> str:
    """Write the shares of one counter ('day', 'month', 'running'): stripe s gets what it uses,
    plus `need` on the reservation's own stripe, plus its part of the room left (`base`, and
    one more for the first `extra` stripes). $1 base, $2 extra, $3 own stripe, $4 need, $5 cap.
    """
    used = "running" if counter == "running" else f"{counter}_micros"
    return (
        f"UPDATE accounts SET {counter}_share = {used} + CAST($1 AS BIGINT)"  # noqa: S608
        " + CASE WHEN stripe < $2 THEN 1 ELSE 0 END"
        " + CASE WHEN stripe = $3 THEN CAST($4 AS BIGINT) ELSE 0 END,"
        f" {counter}_share_of = CAST($5 AS BIGINT) WHERE scope_kind = 'global' AND scope_id = '*'"
    )


async def cut_shares(tx: Tx, counter: str, total: int, need: int, cap: int, own: int) -> None:
    """Cut `cap` into 16 shares that add up to it exactly: total + need + room = cap (all
    stripes locked, and moved to the reservation's period)."""
    room = cap - total - need
    if room < 0:
        raise ValueError(f"cannot share {cap}: {total} + {need} is over it")
    base, extra = divmod(room, GLOBAL_STRIPES)
    await tx.execute(cut_sql(counter), base, extra, own, need, cap)


# Any change to a bot-wide cap voids the shares; the next reservation cuts new ones.
FORGET_SHARES = (
    "UPDATE accounts SET day_share = NULL, month_share = NULL, running_share = NULL"
    " WHERE scope_kind = 'global' AND scope_id = '*'"
)
