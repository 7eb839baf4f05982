"""`usage`, `limits show|set`, `migrate`, `ledger export|report`: the money side of the bot.

IDs: an ID without ':' means `cli:ID`; with a colon it is taken as is (`discord:1234`).
Caps are written in dollars (`--daily 5`, `--daily 0.25`), job counts as integers; `none`
means no cap and `default` drops the override so the configured default applies again.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, TypeVar

from pydantic import ValidationError
from pydantic_settings import SettingsError

from bot.cli._output import CliError, add_json_flag, print_json
from bot.config import Settings
from providers.money import format_usd, usd_to_micros
from storage import Database, LimitDefaults, Limits, Scopes, open_database

T = TypeVar("T")
CapValue = int | Literal["default"] | None


def scope_id(raw: str) -> str:
    """An ID as typed by a person: without ':' it is a CLI user (`cli:ID`), else as is."""
    raw = raw.strip()
    if not raw or raw.endswith(":") or raw.startswith(":"):
        raise CliError(f"bad ID {raw!r}: use a name like alice or a platform ID like discord:1234")
    return raw if ":" in raw else f"cli:{raw}"


def limit_defaults(settings: Settings) -> LimitDefaults:
    """The caps from settings (dollars -> micro-dollars), used where no override exists."""

    def money(value: Decimal | None) -> int | None:
        return None if value is None else usd_to_micros(value)

    return LimitDefaults(
        user=Limits(
            daily_micros=money(settings.user_daily_cap_usd),
            monthly_micros=money(settings.user_monthly_cap_usd),
            concurrent_jobs=settings.user_concurrent_jobs,
            jobs_per_hour=settings.user_jobs_per_hour,
        ),
        server=Limits(
            daily_micros=money(settings.server_daily_cap_usd),
            monthly_micros=money(settings.server_monthly_cap_usd),
            concurrent_jobs=settings.server_concurrent_jobs,
            jobs_per_hour=settings.server_jobs_per_hour,
        ),
        global_=Limits(
            daily_micros=money(settings.global_daily_cap_usd),
            monthly_micros=money(settings.global_monthly_cap_usd),
            concurrent_jobs=settings.global_concurrent_jobs,
            jobs_per_hour=settings.global_jobs_per_hour,
        ),
    )


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
    report.add_argument("--days", type=int, default=30, help="the last N days (default 30)")
    add_json_flag(report)
    report.set_defaults(handler=cmd_report)


def _add_scope_flags(parser: argparse.ArgumentParser, *, required: bool) -> None:
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--user", help="user ID")
    group.add_argument("--server", help="server ID")
    group.add_argument("--global", dest="global_", action="store_true", help="the whole bot")


# --------------------------------------------------------------------------- plumbing


def _settings() -> Settings:
    try:
        return Settings()
    except (ValidationError, SettingsError) as exc:
        raise CliError(f"bad settings: {exc}") from exc


def _with_db(fn: Callable[[Database], Awaitable[T]], *, migrate: bool = True) -> T:
    settings = _settings()

    async def run() -> T:
        try:
            db = await open_database(
                settings.database_url, defaults=limit_defaults(settings), migrate=migrate
            )
        except ValueError as exc:
            raise CliError(f"DATABASE_URL: {exc}") from exc
        async with db:
            return await fn(db)

    return asyncio.run(run())


def _scope_of(args: argparse.Namespace) -> tuple[str, str]:
    if getattr(args, "global_", False):
        return "global", "*"
    if args.user:
        return "user", scope_id(args.user)
    if args.server:
        return "server", scope_id(args.server)
    raise CliError("say whose caps: --user ID, --server ID or --global")


def _money_cap(raw: str | None, flag: str) -> CapValue | None:
    if raw is None:
        return None
    word = raw.strip().lower()
    if word in {"none", "default"}:
        return "default" if word == "default" else _NO_CAP
    try:
        value = Decimal(word.lstrip("$"))
        if value < 0 or not value.is_finite():
            raise InvalidOperation
        return usd_to_micros(value)
    except (InvalidOperation, ValueError) as exc:
        raise CliError(
            f"{flag} {raw!r} is not a dollar amount: use e.g. 5, 0.25, none or default"
        ) from exc


def _count_cap(raw: str | None, flag: str) -> CapValue | None:
    if raw is None:
        return None
    word = raw.strip().lower()
    if word in {"none", "default"}:
        return "default" if word == "default" else _NO_CAP
    if not word.isdigit():
        raise CliError(f"{flag} {raw!r} is not a whole number of jobs: use e.g. 2, none or default")
    return int(word)


class _NoCap:
    """Marks 'none' (no cap) apart from 'flag not given' while parsing."""


_NO_CAP: Any = _NoCap()


def _limits_json(kind: str, sid: str, lim: Limits) -> dict[str, Any]:
    return {"scope_kind": kind, "scope_id": sid, **asdict(lim)}


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
    scopes = Scopes(scope_id(args.user), scope_id(args.server) if args.server else None)
    rows = _with_db(lambda db: db.ledger.usage(scopes))
    if args.json:
        print_json(
            {
                "user_id": scopes.user_id,
                "server_id": scopes.server_id,
                "caps": [asdict(r) for r in rows],
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
    if args.global_ or args.user or args.server:
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
    if args.days < 1:
        raise CliError(f"--days {args.days} must be 1 or more")
    now = time.time()
    today = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    since = (today - timedelta(days=args.days - 1)).timestamp()
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
                "days": args.days,
                "since": datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%d"),
                "total_micros": total,
                "by_model": by_model,
                "by_day": by_day,
            }
        )
        return 0
    print(f"settled spend, last {args.days} day(s): {format_usd(total)}")
    print("by model:")
    for model, micros in sorted(by_model.items(), key=lambda kv: -kv[1]):
        print(f"  {model or '(none)':<30} {format_usd(micros):>12}")
    print("by day:")
    for day, micros in by_day.items():
        print(f"  {day:<30} {format_usd(micros):>12}")
    return 0
