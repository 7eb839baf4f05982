"""The ledger's other statements: holds, the history, giving money back, reading accounts.

Parameters are numbered for both backends (`$1`; SQLite reads them as `?1`). The statements a
plain reserve, settle or void runs are also the body of the PostgreSQL functions (plpgsql.py).
"""

from __future__ import annotations

from storage.backend.protocol import Dialect
from storage.ledger.escrow import GLOBAL_STRIPES
from storage.ledger.rules import LOCK_ORDER, SCOPES

# $1 key, $2 amount, $3 user, $4 server, $5 model, $6 note, $7 day, $8 month, $9 stripe, $10 now
INSERT_HOLD = (
    "INSERT INTO holds (key, status, amount_micros, settled_micros, user_id, server_id, model,"
    " note, day_start, month_start, stripe, created_at, updated_at)"
    " VALUES ($1, 'held', $2, 0, $3, $4, $5, $6, $7, $8, $9, $10, $10)"
    " ON CONFLICT (key) DO NOTHING"
)
# $1 at, $2 key, $3 kind, $4 amount, $5 user, $6 server, $7 model, $8 note
ENTRY = (
    "INSERT INTO entries (at, key, kind, amount_micros, user_id, server_id, model, note)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
)
# $1 key, $2 amount (NULL = the whole hold), $3 now
SETTLE_HOLD = (
    "UPDATE holds SET status = 'settled',"
    " settled_micros = COALESCE(CAST($2 AS BIGINT), amount_micros), updated_at = $3"
    " WHERE key = $1 AND status = 'held'"
    " AND COALESCE(CAST($2 AS BIGINT), amount_micros) <= amount_micros RETURNING *"
)
# $1 key, $2 now
VOID_HOLD = (
    "UPDATE holds SET status = 'voided', updated_at = $2"
    " WHERE key = $1 AND status = 'held' RETURNING *"
)
REFUSE_HOLD = "UPDATE holds SET status = 'refused', refusal = $2, updated_at = $3 WHERE key = $1"
HOLD = "SELECT * FROM holds WHERE key = $1"
MOVE_HOLD = "UPDATE holds SET day_start = $2, month_start = $3 WHERE key = $1"

def _less(column: str, amount: str, period: str | None = None) -> str:
    """`column` minus `amount` (only when the account is still in the hold's `period`)."""
    if period is None:
        return f"a.{column} - {amount}"
    start = "$4" if period == "day" else "$5"
    return f"a.{column} - CASE WHEN a.{period}_start = {start} THEN {amount} ELSE 0 END"


_GIVEN_BACK = {
    "running": _less("running", "1"),
    "held_micros": _less("held_micros", "CAST($7 AS BIGINT)"),
    "day_micros": _less("day_micros", "CAST($6 AS BIGINT)", "day"),
    "day_held": _less("day_held", "CAST($7 AS BIGINT)", "day"),
    "month_micros": _less("month_micros", "CAST($6 AS BIGINT)", "month"),
    "month_held": _less("month_held", "CAST($7 AS BIGINT)", "month"),
}
# Give back what a hold no longer uses, to the periods it was reserved in (nothing when its
# account has moved on to a later period: that period is over), scope by scope in the lock
# order - and only when no counter would go below zero. An account that is missing, or that
# would go below zero, is not touched, so fewer rows than scopes are written and the caller
# fails (the books are broken; never silently made up). The statement is an upsert that never
# inserts: only so that PostgreSQL locks the rows in the order of the scopes. Whether an
# account exists is asked as a scalar subquery, not EXISTS: PostgreSQL turned EXISTS into a
# hash join that read the whole accounts table on every settle while it was small.
# $1 user, $2 server, $3 stripe, $4 day, $5 month, $6 money leaving use, $7 money leaving held
def _release_accounts(lock_order: str) -> str:
    return (
        "INSERT INTO accounts AS a (scope_kind, scope_id, stripe)"  # noqa: S608
        f" SELECT v.kind, v.id, v.stripe FROM {SCOPES} WHERE v.id IS NOT NULL AND"
        " (SELECT 1 FROM accounts e WHERE e.scope_kind = v.kind AND e.scope_id = v.id"
        f" AND e.stripe = v.stripe) = 1{lock_order}"
        " ON CONFLICT (scope_kind, scope_id, stripe) DO UPDATE SET "
        + ", ".join(f"{column} = {value}" for column, value in _GIVEN_BACK.items())
        + " WHERE "
        + " AND ".join(f"{value} >= 0" for value in _GIVEN_BACK.values())
    )


RELEASE_ACCOUNTS = _release_accounts(LOCK_ORDER)
# per database: SQLite, one writer at a time, has no row locks to order (rules.LOCK_ORDER)
GIVING_BACK: dict[Dialect, str] = {
    "postgres": RELEASE_ACCOUNTS,
    "sqlite": _release_accounts(""),
}
# A void takes its start back (a start older than the hour may be purged already).
# $1 user, $2 server, $3 the start's second
VOID_STARTS = (
    "UPDATE starts SET started = started - 1 WHERE user_id = $1"
    " AND server_id = COALESCE(CAST($2 AS TEXT), '') AND at_second = $3 AND started > 0"
)

# Every account a reservation may touch, created when missing and locked (an update that
# changes nothing) in the fixed order: user, server, every global stripe in stripe order.
# $1 user, $2 server
LOCK_ACCOUNTS = (
    "INSERT INTO accounts AS a (scope_kind, scope_id, stripe)"  # noqa: S608
    " SELECT v.kind, v.id, v.stripe FROM (SELECT 1 AS rank, 'user' AS kind,"
    " CAST($1 AS TEXT) AS id, 0 AS stripe UNION ALL SELECT 2, 'server', CAST($2 AS TEXT), 0"
    + "".join(f" UNION ALL SELECT 3, 'global', '*', {i}" for i in range(GLOBAL_STRIPES))
    + ") AS v WHERE v.id IS NOT NULL ORDER BY v.rank, v.stripe"
    " ON CONFLICT (scope_kind, scope_id, stripe) DO UPDATE SET stripe = a.stripe RETURNING *"
)
# the same accounts, read without locks (usage); $1 user, $2 server
SCOPE_ACCOUNTS = (
    "SELECT * FROM accounts WHERE (scope_kind = 'user' AND scope_id = $1)"
    " OR (scope_kind = 'server' AND scope_id = $2) OR scope_kind = 'global'"
    " ORDER BY CASE scope_kind WHEN 'user' THEN 1 WHEN 'server' THEN 2 ELSE 3 END, stripe"
)
# Clips started in the last hour per scope and second, oldest first: the person's, the
# server's and (when $4 = 1; it reads every start of the hour) the bot's.
# $1 user, $2 server, $3 the hour's start
SCOPE_STARTS = (
    "SELECT 'user' AS scope_kind, at_second, SUM(started) AS n FROM starts"
    " WHERE user_id = $1 AND at_second > CAST($3 AS BIGINT) GROUP BY at_second"
    " UNION ALL SELECT 'server', at_second, SUM(started) FROM starts"
    " WHERE server_id = CAST($2 AS TEXT) AND server_id <> '' AND at_second > CAST($3 AS BIGINT)"
    " GROUP BY at_second"
    " UNION ALL SELECT 'global', at_second, SUM(started) FROM starts"
    " WHERE $4 = 1 AND at_second > CAST($3 AS BIGINT) GROUP BY at_second"
    " ORDER BY 2"
)
# starts older than the hour (and a minute) count for nothing; $1 the oldest second to keep
PURGE_STARTS = "DELETE FROM starts WHERE at_second < $1"
