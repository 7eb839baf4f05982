"""The money rules: when a reservation fits, in one place.

A reservation of `amount` fits when, for each scope that applies - the person, their server
(if any), the whole bot, checked in that order - every cap that is set has room:

- clips at once:   running + 1 <= concurrent cap   (holds still held)
- clips per hour:  started + 1 <= hourly cap       (held or settled starts of the last hour)
- money per day:   used + amount <= daily cap      (held + settled, in the UTC day of the
- money per month: used + amount <= monthly cap     reservation; likewise the UTC month)

The caps of a scope are its own (`limits set`), else the operator's defaults (settings); for
a person, their roles' caps (`Scopes.user_defaults`) replace the operator's default. The
database decides with two conditional statements, each one write that checks and counts
(`RESERVE_ACCOUNTS`, `RECORD_START`; SQLite checks the hourly caps in the first and records
the start without a condition - see `COUNT_START`): a row that has no room is left alone, and
the reservation is then refused - `first_refusal` says which cap refused and with what
numbers.

The "last hour" is counted in whole seconds: a clip started at 12:00:00.4 counts as started
at 12:00:01 and stops counting at 13:00:01, never earlier than the exact hour.

The bot-wide scope is 16 accounts ("stripes", see escrow.py); under a bot-wide money or
concurrency cap each stripe checks against its share of the cap, and the shares add up to it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from storage.models import LIMIT_FIELDS, Limits, Refusal, ScopeKind
from storage.periods import HOUR_S, next_day, next_month

# the account columns that hold a scope's own caps, in `Limits` field order
CAP_COLUMNS = ("daily_cap", "monthly_cap", "concurrent_cap", "hourly_cap")
NO_CAP = -1  # a cap column's value for "set to no cap" (NULL = use the default)
GLOBAL = "'*'"  # the bot-wide scope's id, as SQL

# The scopes of a reservation as rows, in the fixed lock order: user, server, global (the
# hottest row last, so its lock is held the shortest). $1 user, $2 server (NULL: none),
# $3 the hold's global stripe.
SCOPES = (
    "(SELECT 1 AS rank, 'user' AS kind, CAST($1 AS TEXT) AS id, 0 AS stripe"
    " UNION ALL SELECT 2, 'server', CAST($2 AS TEXT), 0"
    " UNION ALL SELECT 3, 'global', '*', CAST($3 AS INTEGER)) AS v"
)


# How a statement writes default cap $n: bound at run time (PostgreSQL, and its functions), or
# written into the statement as a number (SQLite: binding nine caps cost ~5 us a step).
Param = Callable[[int], str]
# PostgreSQL takes an upsert's row locks in the order of its rows: the scopes in rank order, so
# two reservations never deadlock. SQLite, one writer at a time, takes no row locks; the sort
# cost it ~2 us a statement, so its statements leave the order out.
LOCK_ORDER = " ORDER BY v.rank"


def _bound(n: int) -> str:
    return f"CAST(${n} AS BIGINT)"


def _written(values: tuple[int | None, ...], first: int) -> Param:
    """Default caps $first.. as numbers in the statement (int(): nothing else gets in)."""

    def param(n: int) -> str:
        value = values[n - first]
        return "NULL" if value is None else str(int(value))

    return param


_RANK = {"user": 0, "server": 1, "global": 2}
# SQLite's texts name a row's kind where they can (`known`): a CASE per kind of row, each
# branch with the caps of its kind written in, instead of a CASE on the kind at every cap.
Known = str | None


def _default(kind: str, first: int, p: Param, known: Known = None) -> str:
    """The default cap of a row's kind: parameters $first (user), +1 (server), +2 (global)."""
    if known is not None:
        return p(first + _RANK[known])
    return (
        f"CASE {kind} WHEN 'user' THEN {p(first)}"
        f" WHEN 'server' THEN {p(first + 1)} ELSE {p(first + 2)} END"
    )


def _cap(column: str, first: int, p: Param, known: Known = None) -> str:
    """An account's cap: its own setting, else the default for its kind (NULL = no cap)."""
    default = _default("a.scope_kind", first, p, known)
    if default == "NULL":
        return f"CASE WHEN a.{column} < 0 THEN NULL ELSE a.{column} END"
    return (
        f"CASE WHEN a.{column} IS NULL THEN {default}"
        f" WHEN a.{column} < 0 THEN NULL ELSE a.{column} END"
    )


def _money_fits(period: str, cap: str, known: Known = None) -> str:
    """used + amount <= cap in the reservation's period ($4 day / $5 month, $6 amount).

    A global stripe checks against its share of the cap instead (escrow.py), and only when the
    share was cut from this very cap for this very period.
    """
    start = "$4" if period == "day" else "$5"
    used = f"CASE WHEN a.{period}_start = {start} THEN a.{period}_micros ELSE 0 END"
    share = (
        f"a.{period}_start = {start} AND a.{period}_share_of = ({cap})"
        f" AND a.{period}_micros + CAST($6 AS BIGINT) <= a.{period}_share"
    )
    own = f"{used} + CAST($6 AS BIGINT) <= ({cap})"
    if known is not None:
        return f"(({cap}) IS NULL OR {share if known == 'global' else own})"
    return f"(({cap}) IS NULL OR CASE WHEN a.scope_kind = 'global' THEN {share} ELSE {own} END)"


def _running_fits(cap: str, known: Known = None) -> str:
    share = f"a.running_share_of = ({cap}) AND a.running + 1 <= a.running_share"
    own = f"a.running + 1 <= ({cap})"
    if known is not None:
        return f"(({cap}) IS NULL OR {share if known == 'global' else own})"
    return f"(({cap}) IS NULL OR CASE WHEN a.scope_kind = 'global' THEN {share} ELSE {own} END)"


def _new_account_fits(p: Param) -> str:
    """A scope's first reservation: the defaults are its caps. A bot-wide cap needs shares
    first, which the careful path cuts (so a new global stripe under a cap is never plain)."""
    d, m, c = (_default("v.kind", n, p) for n in (7, 10, 13))
    return (
        f"CASE WHEN v.kind = 'global' THEN ({d}) IS NULL AND ({m}) IS NULL AND ({c}) IS NULL"
        f" ELSE (({d}) IS NULL OR CAST($6 AS BIGINT) <= ({d}))"
        f" AND (({m}) IS NULL OR CAST($6 AS BIGINT) <= ({m}))"
        f" AND (({c}) IS NULL OR 1 <= ({c})) END"
    )


def _rolled(period: str, column: str, start: str, otherwise: str = "0") -> str:
    """An account column as of the reservation's period: a later period starts afresh."""
    return f"CASE WHEN a.{period}_start = {start} THEN a.{column} ELSE {otherwise} END"


# Count one reservation on the accounts of its scopes, each only where every money and
# concurrency cap has room; it writes all of them (one per scope), or the reservation is
# refused. A period never moves backwards: an account already in a later day
# or month than the reservation (another process's clock ran ahead) is left alone.
# $1 user, $2 server, $3 stripe, $4 day, $5 month, $6 amount; default caps:
# $7-$9 daily, $10-$12 monthly, $13-$15 concurrent (user, server, global each).
_COUNTED = (
    f" day_micros = {_rolled('day', 'day_micros', '$4')} + CAST($6 AS BIGINT),"
    f" day_held = {_rolled('day', 'day_held', '$4')} + CAST($6 AS BIGINT),"
    f" day_share = {_rolled('day', 'day_share', '$4', 'NULL')},"
    " day_start = CAST($4 AS BIGINT),"
    f" month_micros = {_rolled('month', 'month_micros', '$5')} + CAST($6 AS BIGINT),"
    f" month_held = {_rolled('month', 'month_held', '$5')} + CAST($6 AS BIGINT),"
    f" month_share = {_rolled('month', 'month_share', '$5', 'NULL')},"
    " month_start = CAST($5 AS BIGINT),"
    " running = a.running + 1, held_micros = a.held_micros + CAST($6 AS BIGINT)"
)


def _account_fits(p: Param, hourly: str, known: Known = None) -> str:
    """An existing account has room (and is not in a later period than the reservation)."""
    return (
        "a.day_start <= CAST($4 AS BIGINT) AND a.month_start <= CAST($5 AS BIGINT)"
        f" AND {_money_fits('day', _cap('daily_cap', 7, p, known), known)}"
        f" AND {_money_fits('month', _cap('monthly_cap', 10, p, known), known)}"
        f" AND {_running_fits(_cap('concurrent_cap', 13, p, known), known)}{hourly}"
    )


_ACCOUNT_ROW = (
    "INSERT INTO accounts AS a (scope_kind, scope_id, stripe, day_start, day_micros,"  # noqa: S608
    " day_held, month_start, month_micros, month_held, running, held_micros)"
    " SELECT v.kind, v.id, v.stripe, CAST($4 AS BIGINT), CAST($6 AS BIGINT),"
    " CAST($6 AS BIGINT), CAST($5 AS BIGINT), CAST($6 AS BIGINT), CAST($6 AS BIGINT), 1,"
    f" CAST($6 AS BIGINT) FROM {SCOPES}"
)


def _reserve_accounts(p: Param, lock_order: str) -> str:
    return (
        f"{_ACCOUNT_ROW} WHERE v.id IS NOT NULL AND ({_new_account_fits(p)}"  # noqa: S608
        " OR EXISTS (SELECT 1 FROM accounts e WHERE e.scope_kind = v.kind"
        f" AND e.scope_id = v.id AND e.stripe = v.stripe)){lock_order}"
        f" ON CONFLICT (scope_kind, scope_id, stripe) DO UPDATE SET{_COUNTED}"
        f" WHERE {_account_fits(p, '')}"
    )


RESERVE_ACCOUNTS = _reserve_accounts(_bound, LOCK_ORDER)


def _hourly_cap(kind: str, scope_id: str, stripe: str, default: str) -> str:
    """A scope's hourly cap: its account's own, else the `default` (NULL = none)."""
    own = (
        f"(SELECT o.hourly_cap FROM accounts o WHERE o.scope_kind = '{kind}'"  # noqa: S608
        f" AND o.scope_id = {scope_id} AND o.stripe = {stripe})"
    )
    return f"NULLIF(COALESCE({own}, {default}, -1), -1)"


def _started(where: str, hour: str = "$5") -> str:
    """How many clips started in the hour (a start counts when its second is after `hour`)."""
    return (
        "(SELECT CAST(COALESCE(SUM(s.started), 0) AS BIGINT) FROM starts s"  # noqa: S608
        f" WHERE {where} AND s.at_second > CAST({hour} AS BIGINT))"
    )


# Record the start of one reservation - one row per person, server and second - only if the
# hourly caps of the person, the server and the bot have room. Runs after RESERVE_ACCOUNTS,
# whose row locks order every reservation of a scope, so (PostgreSQL, READ COMMITTED) this
# statement's snapshot holds every earlier start of them. The bot-wide hourly cap counts
# every start; that needs all 16 stripes locked ($9 = 1, only the careful path), so without
# the locks a bot-wide hourly cap is never plain.
# $1 user, $2 server, $3 stripe, $4 the start's second, $5 the hour's start (a start counts
# when its second is after it: floor(now - 3600)); default hourly caps $6-$8.
_USER = "CAST($1 AS TEXT)"
_SERVER = "CAST($2 AS TEXT)"
_BY_USER = f"s.user_id = {_USER}"
_BY_SERVER = f"s.server_id = {_SERVER} AND s.server_id <> ''"
_OF_USER = _started(_BY_USER)
_OF_SERVER = _started(_BY_SERVER)
_OF_ALL = _started("TRUE")


def _record_start(p: Param, every: str) -> str:
    return (
        "WITH c AS (SELECT"  # noqa: S608
        f" {_hourly_cap('user', _USER, '0', p(6))} AS cu,"
        f" {_hourly_cap('server', _SERVER, '0', p(7))} AS cs,"
        f" {_hourly_cap('global', GLOBAL, 'CAST($3 AS INTEGER)', p(8))} AS cg)"
        " INSERT INTO starts AS t (user_id, server_id, at_second, started)"
        f" SELECT {_USER}, COALESCE({_SERVER}, ''), CAST($4 AS BIGINT), 1 FROM c"
        f" WHERE (c.cu IS NULL OR {_OF_USER} < c.cu)"
        f" AND (c.cs IS NULL OR $2 IS NULL OR {_OF_SERVER} < c.cs)"
        f" AND (c.cg IS NULL OR ({every} = 1 AND {_OF_ALL} < c.cg))"
        " ON CONFLICT (user_id, at_second, server_id) DO UPDATE SET started = t.started + 1"
    )


RECORD_START = _record_start(_bound, "$9")


# SQLite's texts. SQLite copies the rows of an INSERT ... SELECT into a temporary table
# before writing them whenever the SELECT reads the table it writes: RESERVE_ACCOUNTS's
# existence probe reads accounts and RECORD_START's counts read starts, and each copy cost
# ~2 us (a table made and dropped per statement). So SQLite - one writer at a time, where
# the order of the statements does not matter - checks the hourly caps in the accounts
# statement (it reads starts there, not the table it writes), records the start without
# a condition, and leaves out the probe: a scope whose first reservation would not fit the
# defaults is counted by an UPDATE of its account instead, which never creates one.
# $7 the hour's start; default hourly caps $16-$18 (written in as numbers).
_HOUR = "$7"


def _hourly_fits(kind: str, cap: str, every: str) -> str:
    """started + 1 <= hourly cap for a row of `kind`; the bot-wide cap only when every = 1
    (all stripes locked: the careful path), as in RECORD_START. The count sits in a CASE
    branch: SQLite evaluates a subquery that depends on no row once, up front, even where
    an OR would have skipped it - the bot's count read every start of the hour."""
    if cap == "NULL":
        return "1"
    if kind == "global" and every != "1":
        return f"({cap}) IS NULL"
    where = {"user": _BY_USER, "server": _BY_SERVER, "global": "TRUE"}[kind]
    return f"CASE WHEN ({cap}) IS NULL THEN 1 ELSE {_started(where, _HOUR)} < ({cap}) END"


def _sqlite_new_account_fits(p: Param, every: str, kind: str, left_out: tuple[str, ...]) -> str:
    """A scope's first reservation, SQLite: `only_existing` decided the money and concurrency
    caps (the defaults) in Python; a scope it left out is never inserted. The hourly here."""
    if kind in left_out:
        return "0"
    return _hourly_fits(kind, p(16 + _RANK[kind]), every)


def _sqlite_account_fits(p: Param, every: str, kind: str) -> str:
    hourly = f" AND {_hourly_fits(kind, _cap('hourly_cap', 16, p, kind), every)}"
    return _account_fits(p, hourly, kind)


def _by_kind(row: str, branch: Callable[[str], str]) -> str:
    return (
        f"CASE {row} WHEN 'user' THEN {branch('user')} WHEN 'server' THEN {branch('server')}"
        f" ELSE {branch('global')} END"
    )


def _sqlite_reserve_accounts(p: Param, every: str, left_out: tuple[str, ...]) -> str:
    """RESERVE_ACCOUNTS without the probe and with the hourly caps, for SQLite."""
    new = _by_kind("v.kind", lambda k: _sqlite_new_account_fits(p, every, k, left_out))
    return (
        f"{_ACCOUNT_ROW} WHERE v.id IS NOT NULL AND {new}"
        f" ON CONFLICT (scope_kind, scope_id, stripe) DO UPDATE SET{_COUNTED}"
        f" WHERE {_by_kind('a.scope_kind', lambda k: _sqlite_account_fits(p, every, k))}"
    )


_KEY_OF = {
    "user": "a.scope_kind = 'user' AND a.scope_id = CAST($1 AS TEXT) AND a.stripe = 0",
    "server": "a.scope_kind = 'server' AND a.scope_id = CAST($2 AS TEXT) AND a.stripe = 0",
    "global": "a.scope_kind = 'global' AND a.scope_id = '*' AND a.stripe = CAST($3 AS INTEGER)",
}
# The start of one reservation, its hourly caps already checked (SQLite);
# $1 user, $2 server, $4 the start's second
COUNT_START = (
    "INSERT INTO starts AS t (user_id, server_id, at_second, started)"
    " VALUES (CAST($1 AS TEXT), COALESCE(CAST($2 AS TEXT), ''), CAST($4 AS BIGINT), 1)"
    " ON CONFLICT (user_id, at_second, server_id) DO UPDATE SET started = t.started + 1"
)


@lru_cache(maxsize=128)
def counting(caps: tuple[int | None, ...], every: bool, left_out: tuple[str, ...]) -> str:
    """SQLite's RESERVE_ACCOUNTS: the default caps written in, the hour's start as $7, and
    the scopes `only_existing` left out never inserted (`counting_existing` counts them)."""
    return _sqlite_reserve_accounts(_written(caps, 7), "1" if every else "0", left_out)


@lru_cache(maxsize=128)
def counting_existing(kind: str, caps: tuple[int | None, ...], every: bool) -> tuple[str, int]:
    """SQLite: count the reservation on the existing account of one scope, if it has room;
    the statement and how many of `counting`'s parameters it takes (without an hourly cap
    to check it needs no $7)."""
    fits = _sqlite_account_fits(_written(caps, 7), "1" if every else "0", kind)
    text = f"UPDATE accounts AS a SET{_COUNTED} WHERE {_KEY_OF[kind]} AND {fits}"
    return text, max(int(n) for n in re.findall(r"\$(\d+)", text))


@lru_cache(maxsize=256)
def only_existing(caps: tuple[int | None, ...], amount: int, server: bool) -> tuple[str, ...]:
    """SQLite: the scopes whose first reservation of `amount` would not fit the defaults (as
    _new_account_fits has it): counted only on an existing account, never created."""
    out = []
    for k, kind in enumerate(("user", "server", "global")):
        if kind == "server" and not server:
            continue
        daily, monthly, running = caps[k], caps[3 + k], caps[6 + k]
        if kind == "global":
            fits = daily is None and monthly is None and running is None
        else:
            fits = (
                (daily is None or amount <= daily)
                and (monthly is None or amount <= monthly)
                and (running is None or running >= 1)
            )
        if not fits:
            out.append(kind)
    return tuple(out)


# --------------------------------------------------------------------------- explaining


def effective_limits(own: dict[str, int | None], base: Limits) -> Limits:
    """A scope's caps from its account's cap columns (NULL = `base`, -1 = no cap)."""
    values: dict[str, int | None] = {}
    for field_name, column in zip(LIMIT_FIELDS, CAP_COLUMNS, strict=True):
        value = own.get(column)
        if value is None:
            values[field_name] = getattr(base, field_name)
        else:
            values[field_name] = None if value == NO_CAP else int(value)
    return Limits(**values)


@dataclass(frozen=True)
class ScopeUse:
    """What a scope has in use when a reservation is decided (global: all stripes summed)."""

    kind: ScopeKind
    scope_id: str
    limits: Limits
    day_micros: int  # in the reservation's UTC day
    month_micros: int  # in its UTC month
    running: int
    starts: tuple[tuple[int, int], ...]  # (second, clips) of the last hour, oldest first

    @property
    def started(self) -> int:
        return sum(n for _, n in self.starts)


def first_refusal(uses: list[ScopeUse], amount: int, day: int, month: int) -> Refusal | None:
    """The first cap without room, scope by scope (user, server, bot) and, within a scope,
    clips at once, clips per hour, money per day, money per month; None = it fits."""
    for use in uses:
        lim = use.limits
        if lim.concurrent_jobs is not None and use.running + 1 > lim.concurrent_jobs:
            return _count_refusal(use, "concurrent_jobs", lim.concurrent_jobs, use.running, None)
        if lim.jobs_per_hour is not None and use.started + 1 > lim.jobs_per_hour:
            reset = hourly_reset(use.starts, lim.jobs_per_hour)
            return _count_refusal(use, "jobs_per_hour", lim.jobs_per_hour, use.started, reset)
        if lim.daily_micros is not None and use.day_micros + amount > lim.daily_micros:
            return money_refusal(use, "daily", lim.daily_micros, use.day_micros, amount, day)
        if lim.monthly_micros is not None and use.month_micros + amount > lim.monthly_micros:
            used = use.month_micros
            return money_refusal(use, "monthly", lim.monthly_micros, used, amount, month)
    return None


def hourly_reset(starts: tuple[tuple[int, int], ...], cap: int) -> float | None:
    """When a slot frees: when the (started - cap + 1)-th oldest start leaves the hour."""
    must_leave = sum(n for _, n in starts) - cap + 1
    seen = 0
    for second, n in starts:
        seen += n
        if seen >= must_leave:
            return float(second) + HOUR_S
    return None


def _count_refusal(
    use: ScopeUse, cap: Any, limit: int, used: int, resets_at: float | None
) -> Refusal:
    return Refusal(
        scope_kind=use.kind, scope_id=use.scope_id, cap=cap, limit=limit, used=used,
        requested=1, remaining=max(0, limit - used), unit="jobs", resets_at=resets_at,
    )  # fmt: skip


def money_refusal(
    use: ScopeUse, cap: Any, limit: int, used: int, amount: int, start: int
) -> Refusal:
    return Refusal(
        scope_kind=use.kind, scope_id=use.scope_id, cap=cap, limit=limit, used=used,
        requested=amount, remaining=max(0, limit - used), unit="micros",
        resets_at=float(next_day(start) if cap == "daily" else next_month(start)),
    )  # fmt: skip

