"""`usage`, `limits show|set`, `migrate`, `ledger export|report`: the money side of the bot.

IDs: an ID without ':' means `cli:ID`; with a colon it is taken as is (`discord:1234`).
Caps are written in dollars (`--daily 5`, `--daily 0.25`), job counts as integers; `none`
means no cap and `default` drops the override so the configured default applies again.
Every number is bounded, so a typo is one sentence (exit 2) on either database, never an
overflow deep in a driver.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

from bot.cli._output import CliError, add_json_flag, cli_settings, iso, print_json
from bot.config import MAX_JOBS
from providers.money import format_usd, usd_string, usd_to_micros
from storage import CapUsage, Database, Limits, Scopes

T = TypeVar("T")
CapValue = int | Literal["default"] | None
MAX_REPORT_DAYS = 3660  # ten years

_PLATFORM = re.compile(r"[a-z][a-z0-9_-]{0,19}")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}")


def scope_id(raw: str, flag: str = "the ID") -> str:
    """An ID as typed by a person: without ':' it is a CLI user (`cli:ID`); with one colon a
    platform ID (`discord:1234`). Anything else is refused, never stored."""
    text = raw.strip()
    platform, colon, rest = text.partition(":")
    if not colon:
        platform, rest = "cli", text
    if not (_PLATFORM.fullmatch(platform) and _ID.fullmatch(rest)):
        raise CliError(
            f"{flag} {raw!r} is not an ID: use a name like alice or a platform ID like "
            "discord:1234 (one colon; letters, digits and . _ @ + - only)"
        )
    return f"{platform}:{rest}"


def bounded_int(raw: str, flag: str, low: int, high: int) -> int:
    """A whole number from `low` to `high`, or one sentence saying so."""
    text = raw.strip()
    if not re.fullmatch(r"-?\d{1,20}", text) or not low <= int(text) <= high:
        raise CliError(f"{flag} {raw!r} is not allowed: use a whole number from {low} to {high}")
    return int(text)


def register(sub: Any) -> None:
    usage = sub.add_parser(
        "usage", help="spent, held and remaining under every cap, and when each resets"
    )
    usage.add_argument("--user", required=True, help="user ID (alice = cli:alice, discord:123)")
    usage.add_argument("--server", help="server ID (a Discord guild or Slack workspace)")
    add_json_flag(usage)
    usage.set_defaults(handler=cmd_usage)

    limits = sub.add_parser("limits", help="show or set caps per user, server or globally")
    lsub = limits.add_subparsers(dest="limits_command", required=True, metavar="show|set")
    show = lsub.add_parser("show", help="the caps in force (override or default)")
    _add_scope_flags(show, required=False)
    add_json_flag(show)
    show.set_defaults(handler=cmd_limits_show)
    set_ = lsub.add_parser(
        "set",
        help="override caps",
        description="Money in dollars, jobs as integers; 'none' = no cap, "
        "'default' = use the configured default again.",
    )
    _add_scope_flags(set_, required=True)
    set_.add_argument("--daily", metavar="USD|none|default")
    set_.add_argument("--monthly", metavar="USD|none|default")
    set_.add_argument("--concurrent", metavar="N|none|default")
    set_.add_argument("--per-hour", dest="per_hour", metavar="N|none|default")
    add_json_flag(set_)
    set_.set_defaults(handler=cmd_limits_set)

    migrate = sub.add_parser("migrate", help="apply database migrations (also done at start)")
    add_json_flag(migrate)
    migrate.set_defaults(handler=cmd_migrate)

    ledger = sub.add_parser("ledger", help="the spend history: CSV export and reports")
    gsub = ledger.add_subparsers(dest="ledger_command", required=True, metavar="export|report")
    export = gsub.add_parser("export", help="every ledger entry as CSV")
    export.add_argument("--since", metavar="YYYY-MM-DD", help="first day (UTC), inclusive")
    export.add_argument("--until", metavar="YYYY-MM-DD", help="last day (UTC), inclusive")
    export.add_argument("--out", metavar="FILE", help="write here instead of stdout")
    export.set_defaults(handler=cmd_export)
    report = gsub.add_parser("report", help="settled spend by model and by day")
    report.add_argument(
        "--days", default="30", help=f"the last N days, 1 to {MAX_REPORT_DAYS} (default 30)"
    )
    add_json_flag(report)
    report.set_defaults(handler=cmd_report)


def _add_scope_flags(parser: argparse.ArgumentParser, *, required: bool) -> None:
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--user", help="user ID")
    group.add_argument("--server", help="server ID")
    group.add_argument("--global", dest="global_", action="store_true", help="the whole bot")


# --------------------------------------------------------------------------- plumbing


def _with_db(fn: Callable[[Database], Awaitable[T]], *, migrate: bool = True) -> T:
    from bot.database import connect

    settings = cli_settings()

    async def run() -> T:
        async with await connect(settings, migrate=migrate) as db:
            return await fn(db)

    return asyncio.run(run())


def _scope_of(args: argparse.Namespace) -> tuple[str, str]:
    if getattr(args, "global_", False):
        return "global", "*"
    if args.user is not None:
        return "user", scope_id(args.user, "--user")
    if args.server is not None:
        return "server", scope_id(args.server, "--server")
    raise CliError("say whose caps: --user ID, --server ID or --global")


def _money_cap(raw: str | None, flag: str) -> CapValue | None:
    if raw is None:
        return None
    word = raw.strip().lower()
    if word in {"none", "default"}:
        return "default" if word == "default" else _NO_CAP
    try:
        micros = usd_to_micros(word)
    except ValueError:
        micros = -1
    if micros < 0:
        raise CliError(
            f"{flag} {raw!r} is not a dollar amount from 0 to 1000000000: use e.g. 5, 0.25, "
            "none or default"
        )
    return micros


def _count_cap(raw: str | None, flag: str) -> CapValue | None:
    if raw is None:
        return None
    word = raw.strip().lower()
    if word in {"none", "default"}:
        return "default" if word == "default" else _NO_CAP
    if not word.isdigit() or len(word) > 20 or int(word) > MAX_JOBS:
        raise CliError(
            f"{flag} {raw!r} is not a whole number of jobs from 0 to {MAX_JOBS}: use e.g. 2, "
            "none or default"
        )
    return int(word)


class _NoCap:
    """Marks 'none' (no cap) apart from 'flag not given' while parsing."""


_NO_CAP: Any = _NoCap()


def _usd_or_none(micros: int | None) -> str | None:
    return None if micros is None else usd_string(micros)


def _limits_json(kind: str, sid: str, lim: Limits) -> dict[str, Any]:
    return {
        "scope_kind": kind,
        "scope_id": sid,
        "daily_micros": lim.daily_micros,
        "daily_usd": _usd_or_none(lim.daily_micros),
        "monthly_micros": lim.monthly_micros,
        "monthly_usd": _usd_or_none(lim.monthly_micros),
        "concurrent_jobs": lim.concurrent_jobs,
        "jobs_per_hour": lim.jobs_per_hour,
    }


def usage_json(row: CapUsage) -> dict[str, Any]:
    """One cap: amounts in its unit (micros or jobs); money also as dollar strings."""
    out: dict[str, Any] = {
        "scope_kind": row.scope_kind,
        "scope_id": row.scope_id,
        "cap": row.cap,
        "unit": row.unit,
        "limit": row.limit,
        "spent": row.spent,
        "held": row.held,
        "remaining": row.remaining,
        "resets_at": iso(row.resets_at),
    }
    if row.unit == "micros":
        for name in ("limit", "spent", "held", "remaining"):
            out[f"{name}_usd"] = _usd_or_none(out[name])
    return out


def _fmt_limit(value: int | None, unit: str) -> str:
    if value is None:
        return "no cap"
    return format_usd(value) if unit == "micros" else str(value)


def _print_limits(kind: str, sid: str, lim: Limits, *, as_json: bool) -> None:
    if as_json:
        print_json(_limits_json(kind, sid, lim))
        return
    print(
        f"{kind} {sid}: daily {_fmt_limit(lim.daily_micros, 'micros')}, "
        f"monthly {_fmt_limit(lim.monthly_micros, 'micros')}, "
        f"concurrent {_fmt_limit(lim.concurrent_jobs, 'jobs')}, "
        f"per hour {_fmt_limit(lim.jobs_per_hour, 'jobs')}"
    )


# --------------------------------------------------------------------------- handlers


def cmd_usage(args: argparse.Namespace) -> int:
    server = None if args.server is None else scope_id(args.server, "--server")
    scopes = Scopes(scope_id(args.user, "--user"), server)
    rows = _with_db(lambda db: db.ledger.usage(scopes))
    if args.json:
        print_json(
            {
                "user_id": scopes.user_id,
                "server_id": scopes.server_id,
                "caps": [usage_json(r) for r in rows],
            }
        )
        return 0
    who = {"user": scopes.user_id, "server": scopes.server_id, "global": "the bot"}
    header = (
        f"{'scope':<24} {'cap':<14} {'limit':>10} {'spent':>10} {'held':>10} {'left':>10}  resets"
    )
    print(header)
    for r in rows:
        fmt: Callable[[int], str] = format_usd if r.unit == "micros" else str
        resets = (
            "when a clip finishes"
            if r.resets_at is None
            else datetime.fromtimestamp(r.resets_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
        )
        left = "-" if r.remaining is None else fmt(r.remaining)
        print(
            f"{r.scope_kind + ' ' + str(who[r.scope_kind]):<24} {r.cap:<14} "
            f"{_fmt_limit(r.limit, r.unit):>10} {fmt(r.spent):>10} {fmt(r.held):>10} "
            f"{left:>10}  {resets}"
        )
    return 0


def cmd_limits_show(args: argparse.Namespace) -> int:
    if args.global_ or args.user is not None or args.server is not None:
        kind, sid = _scope_of(args)
        lim = _with_db(lambda db: db.ledger.get_limits(kind, sid))
        shown = [(kind, sid, lim)]
    else:

        async def all_kinds(db: Database) -> list[tuple[str, str, Limits]]:
            return [
                ("user", "(default)", db.ledger.defaults.user),
                ("server", "(default)", db.ledger.defaults.server),
                ("global", "*", await db.ledger.get_limits("global", "*")),
            ]

        shown = _with_db(all_kinds)
    for kind, sid, lim in shown:
        _print_limits(kind, sid, lim, as_json=args.json)
    return 0


def cmd_limits_set(args: argparse.Namespace) -> int:
    kind, sid = _scope_of(args)
    parsed = {
        "daily_micros": _money_cap(args.daily, "--daily"),
        "monthly_micros": _money_cap(args.monthly, "--monthly"),
        "concurrent_jobs": _count_cap(args.concurrent, "--concurrent"),
        "jobs_per_hour": _count_cap(args.per_hour, "--per-hour"),
    }
    changes = {k: (None if v is _NO_CAP else v) for k, v in parsed.items() if v is not None}
    if not changes:
        raise CliError("nothing to set: give --daily, --monthly, --concurrent or --per-hour")
    lim = _with_db(lambda db: db.ledger.set_limits(kind, sid, **changes))
    _print_limits(kind, sid, lim, as_json=args.json)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    applied = _with_db(lambda db: db.migrate(), migrate=False)
    if args.json:
        print_json({"applied": applied})
    else:
        print(f"applied migrations {applied}" if applied else "the database is up to date")
    return 0


def _day(raw: str | None, flag: str) -> float | None:
    if raw is None:
        return None
    try:
        return datetime.strptime(raw, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
    except ValueError as exc:
        raise CliError(f"{flag} {raw!r} is not a date: use YYYY-MM-DD (UTC)") from exc


def cmd_export(args: argparse.Namespace) -> int:
    since = _day(args.since, "--since")
    until_day = _day(args.until, "--until")
    until = None if until_day is None else until_day + 86400  # inclusive last day

    async def run(db: Database) -> int:
        if args.out:
            with open(args.out, "w", newline="", encoding="utf-8") as out:  # noqa: ASYNC230
                return await db.ledger.export_csv(out, since=since, until=until)
        return await db.ledger.export_csv(sys.stdout, since=since, until=until)

    count = _with_db(run)
    if args.out:
        print(f"wrote {count} entries to {args.out}", file=sys.stderr)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    days = bounded_int(str(args.days), "--days", 1, MAX_REPORT_DAYS)
    now = time.time()
    today = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    since = (today - timedelta(days=days - 1)).timestamp()
    until = (today + timedelta(days=1)).timestamp()

    async def run(db: Database) -> tuple[dict[str, int], dict[str, int]]:
        return (
            await db.ledger.spend_by_model(since=since, until=until),
            await db.ledger.spend_by_day(since=since, until=until),
        )

    by_model, by_day = _with_db(run)
    total = sum(by_model.values())
    if args.json:
        print_json(
            {
                "days": days,
                "since": datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%d"),
                "total_micros": total,
                "total_usd": usd_string(total),
                "by_model": [
                    {"model": m, "spent_micros": v, "spent_usd": usd_string(v)}
                    for m, v in by_model.items()
                ],
                "by_day": [
                    {"day": d, "spent_micros": v, "spent_usd": usd_string(v)}
                    for d, v in by_day.items()
                ],
            }
        )
        return 0
    print(f"settled spend, last {days} day(s): {format_usd(total)}")
    print("by model:")
    for model, micros in sorted(by_model.items(), key=lambda kv: -kv[1]):
        print(f"  {model or '(none)':<30} {format_usd(micros):>12}")
    print("by day:")
    for day, micros in by_day.items():
        print(f"  {day:<30} {format_usd(micros):>12}")
    return 0
