"""The command line. Each module in `COMMAND_MODULES` adds its subcommands through
`register(subparsers)`; a handler takes the parsed args and returns an exit status.

Exit status: 0 success, 2 bad input or a refused request, 1 a fault. With `--json`,
stdout carries JSON only; every error is one sentence on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from bot.cli._output import CliError

COMMAND_MODULES = (
    "bot.cli.catalog",  # models, quote
    "bot.cli.ledger",  # usage, limits, migrate, ledger export
    "bot.cli.jobs",  # animate, jobs, job, run
    "bot.cli.simulator",  # simulator
    "bot.cli.demo",  # demo
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description="animatebot: image-to-video for Discord and Slack, with a spend ledger.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if getattr(args, "json", False) else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler(args) or 0)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a fault: one sentence for the person, the trace in the log
        logging.getLogger("bot.cli").debug("fault", exc_info=True)
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
