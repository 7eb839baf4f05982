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
from bot.errors import SetupError

COMMAND_MODULES = (
    "bot.cli.catalog",  # models, quote
    "bot.cli.ledger",  # usage, limits, migrate, ledger export
    "bot.cli.jobs",  # animate, jobs, job, run
    "bot.cli.simulator",  # simulator
    "bot.cli.demo",  # demo
    "bot.cli.serve",  # web, serve
    "bot.cli.slack",  # slack
    "bot.cli.discord_bot",  # discord
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


def _log_level() -> str:
    from bot.config import Settings

    try:
        return Settings().log_level.upper()
    except Exception:  # bad settings are reported by the command that needs them
        return "WARNING"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Commands speak to people through their own output; logs are for problems, unless the
    # operator asks for more (LOG_LEVEL=INFO, e.g. for `run`). httpx logs full URLs at INFO,
    # so it stays at WARNING whatever the level.
    level = _log_level()
    logging.basicConfig(
        level=level if level in logging.getLevelNamesMapping() else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # discord.py logs whole gateway payloads and request URLs at DEBUG, and both carry
    # interaction tokens: never below INFO, whatever LOG_LEVEL says.
    for chatty in ("discord.gateway", "discord.http", "discord.webhook", "discord.client"):
        logging.getLogger(chatty).setLevel(max(logging.INFO, logging.getLogger().level))
    try:
        return int(args.handler(args) or 0)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a fault: one sentence for the person, the trace in the log
        logging.getLogger("bot.cli").debug("fault", exc_info=True)
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
