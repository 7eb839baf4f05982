"""The caps an operator sets per scope (`limits set`), kept in the scope's account row.

A cap column holds NULL (use the default from settings), -1 (no cap) or the cap. A bot-wide
cap is written on all 16 global stripes, and its shares are forgotten (escrow.py).
"""

from __future__ import annotations

from typing import Any, Literal

from providers.money import MAX_MICROS
from storage.backend import Tx
from storage.ledger.escrow import FORGET_SHARES, GLOBAL_STRIPES
from storage.ledger.rules import CAP_COLUMNS, NO_CAP, effective_limits
from storage.models import GLOBAL_ID, LIMIT_FIELDS, CapName, Limits

CAP_OF_FIELD: dict[str, CapName] = {
    "daily_micros": "daily",
    "monthly_micros": "monthly",
    "concurrent_jobs": "concurrent_jobs",
    "jobs_per_hour": "jobs_per_hour",
}
FIELD_OF_CAP = {cap: name for name, cap in CAP_OF_FIELD.items()}
COLUMN_OF_FIELD = dict(zip(LIMIT_FIELDS, CAP_COLUMNS, strict=True))
SCOPE_KINDS = ("user", "server", "global")

_OWN_CAPS = (
    f"SELECT {', '.join(CAP_COLUMNS)} FROM accounts"  # noqa: S608
    " WHERE scope_kind = $1 AND scope_id = $2 AND stripe = 0"
)
# create or lock (an update that changes nothing) one account; in stripe order for the bot
_LOCK = (
    "INSERT INTO accounts AS a (scope_kind, scope_id, stripe) VALUES ($1, $2, $3)"
    " ON CONFLICT (scope_kind, scope_id, stripe) DO UPDATE SET stripe = a.stripe"
)


def check_amount(amount: Any, what: str = "amount_micros") -> int:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError(f"{what} must be an integer number of micro-dollars, got {amount!r}")
    if amount < 0:
        raise ValueError(f"{what} must be >= 0, got {amount}")
    return amount


def check_scope(scope_kind: str, scope_id: str) -> None:
    if scope_kind not in SCOPE_KINDS:
        raise ValueError(f"scope_kind must be 'user', 'server' or 'global', got {scope_kind!r}")
    if scope_kind == "global" and scope_id != GLOBAL_ID:
        raise ValueError(f"the global scope id is '*', got {scope_id!r}")
    if not scope_id:
        raise ValueError(f"a {scope_kind} id must not be empty")


def plan_changes(
    changes: dict[str, int | Literal["default"] | None],
) -> list[tuple[str, int | None]]:
    """(account column, value to store) per change; refuses unknown caps and bad values.

    Keys are `Limits` field names (daily_micros, ...) or cap names (daily, ...).
    """
    planned: list[tuple[str, int | None]] = []
    for name, value in changes.items():
        field_name = FIELD_OF_CAP.get(name, name)  # type: ignore[call-overload]
        if field_name not in LIMIT_FIELDS:
            raise ValueError(
                f"unknown cap {name!r}; caps are: daily_micros, monthly_micros, "
                "concurrent_jobs, jobs_per_hour"
            )
        if value == "default":
            stored = None
        elif value is None:
            stored = NO_CAP
        else:
            stored = check_amount(value, field_name)
            if stored > MAX_MICROS:  # the same refusal on both backends, not an overflow
                raise ValueError(f"{field_name} must be at most {MAX_MICROS}, got {stored}")
        planned.append((COLUMN_OF_FIELD[field_name], stored))
    return planned


async def own_limits(tx: Tx, scope_kind: str, scope_id: str, base: Limits) -> Limits:
    row = await tx.fetchrow(_OWN_CAPS, scope_kind, scope_id)
    own = {c: row[c] for c in CAP_COLUMNS} if row is not None else {}
    return effective_limits(own, base)


async def write_limits(
    tx: Tx, scope_kind: str, scope_id: str, planned: list[tuple[str, int | None]]
) -> None:
    # lock the scope's accounts first, in the order every reservation locks them
    for stripe in range(GLOBAL_STRIPES if scope_kind == "global" else 1):
        await tx.execute(_LOCK, scope_kind, scope_id, stripe)
    for column, value in planned:
        await tx.execute(
            f"UPDATE accounts SET {column} = $3 WHERE scope_kind = $1 AND scope_id = $2",  # noqa: S608
            scope_kind, scope_id, value,
        )  # fmt: skip
    if scope_kind == "global" and planned:
        await tx.execute(FORGET_SHARES)
