"""Shared CLI plumbing: how commands print, read settings, and fail."""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.config import Settings


class CliError(Exception):
    """A failure to report as one sentence on stderr. Exit 2: bad input or refused; 1: fault."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def print_json(obj: Any) -> None:
    """One JSON object on one line of stdout."""
    sys.stdout.write(json.dumps(obj, default=str, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def add_json_flag(parser: Any) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON on stdout, nothing else")


def iso(ts: float | None) -> str | None:
    """The one time format of JSON output: ISO 8601 UTC to the second, e.g. 2026-11-22T12:00:00Z."""
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_warned = False


def new_run() -> None:
    """A new command starts: it names the .env keys that are not settings again."""
    global _warned
    _warned = False


def cli_settings() -> Settings:
    """Settings for a command: a bad value is one sentence (exit 2); keys in .env that are
    not settings are named on stderr (once per run)."""
    from bot.config import SettingsProblem, env_file_warnings, load_settings

    global _warned
    try:
        settings = load_settings()
    except SettingsProblem as exc:
        raise CliError(str(exc)) from None
    if not _warned:
        _warned = True
        for warning in env_file_warnings():
            print(f"warning: {warning}", file=sys.stderr)
    return settings
