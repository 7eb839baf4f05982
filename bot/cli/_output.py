"""Shared CLI plumbing: how commands print and how they fail."""

from __future__ import annotations

import json
import sys
from typing import Any


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
