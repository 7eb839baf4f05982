"""`doctor`: settings, database, provider keys, platform tokens; what is on and what is not,
with the fix for each. Exit 1 when something is wrong."""

from __future__ import annotations

import argparse
from typing import Any

from bot.cli._output import add_json_flag, print_json

MARK = {"ok": "ok  ", "warn": "WARN", "off": "off ", "fail": "FAIL"}


def register(sub: Any) -> None:
    p = sub.add_parser(
        "doctor",
        help="check settings, database, provider keys and platform tokens",
        description="Checks the settings, the database (reachable, migrated), each provider "
        "key (one free authenticated call), the platform tokens that are set, and which "
        "models and features are on, with the fix for each. Exit 1 when something is wrong.",
    )
    add_json_flag(p)
    p.set_defaults(handler=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    from bot.doctor import run

    checks = run()
    for check in checks:
        if args.json:
            print_json(
                {"check": check.name, "status": check.status, "detail": check.detail,
                 "fix": check.fix}
            )  # fmt: skip
        else:
            fix = f"  -> {check.fix}" if check.fix else ""
            print(f"{MARK[check.status]}  {check.name:<22} {check.detail}{fix}")
    failed = sum(c.status == "fail" for c in checks)
    if not args.json:
        print("all good" if not failed else f"{failed} problem(s) to fix")
    return 1 if failed else 0
