"""The command line. `COMMANDS` names each command, the module that implements it, and the
line `--help` shows; only the module of the command being run is imported (its
`register(subparsers)` adds its full parser), so `models` never loads the simulator, the
database driver or a chat library. A handler takes the parsed args and returns an exit status.

Exit status: 0 success, 2 bad input or a refused request, 1 a fault. With `--json`,
stdout carries JSON only; every error is one sentence on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from bot.cli._output import CliError
from bot.errors import SetupError

# command -> (module, help). A new command is one line here and `register()` in its module.
COMMANDS: dict[str, tuple[str, str]] = {
    "models": ("bot.cli.catalog", "the model catalog: options, prices, and whether each is "
               "enabled"),
    "quote": ("bot.cli.catalog", "the exact price of a request, or why it is invalid"),
    "animate": ("bot.cli.jobs", "animate an image: validate, quote, reserve, submit, follow, "
                "settle, write the clip"),
    "jobs": ("bot.cli.jobs", "list jobs, newest first"),
    "job": ("bot.cli.jobs", "one job and its history; cancel it or resolve its hold"),
    "run": ("bot.cli.jobs", "the job runner alone: resume and follow jobs until stopped"),
    "usage": ("bot.cli.ledger", "spent, held and remaining under every cap, and when each resets"),
    "limits": ("bot.cli.ledger", "show or set caps per user, server or globally"),
    "ledger": ("bot.cli.ledger", "the spend history: CSV export and reports"),
    "migrate": ("bot.cli.ledger", "apply database migrations (also done at start)"),
    "purge": ("bot.cli.retention", "delete what the retention rules let go (refused holds, "
              "old inputs and clips)"),
    "doctor": ("bot.cli.doctor", "check settings, database, provider keys and platform tokens"),
    "web": ("bot.cli.serve", "the HTTP endpoint: provider webhooks, signed links, /healthz, "
            "/metrics"),
    "serve": ("bot.cli.serve", "everything configured in one process: chat front doors, HTTP "
              "endpoint, runner"),
    "discord": ("bot.cli.discord_bot", "the Discord bot: gateway client, plus the job runner "
                "unless RUN_WORKER=false"),
    "slack": ("bot.cli.slack", "the Slack front door (Socket Mode with SLACK_APP_TOKEN, else "
              "HTTP mode)"),
    "simulator": ("bot.cli.simulator", "run the WaveSpeed + Novita simulator on loopback"),
    "demo": ("bot.cli.demo", "an offline end-to-end run against the provider simulator"),
}  # fmt: skip

BROKEN_PIPE_EXIT = 128 + 13  # what a shell reports for a Unix tool ended by SIGPIPE


def build_parser(argv: Sequence[str] = (), prog: str = "animatebot") -> argparse.ArgumentParser:
    """The parser; the module of the command named in `argv` (if any) registers in full."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="animatebot: image-to-video for Discord and Slack, with a spend ledger.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    wanted = next((a for a in argv if not a.startswith("-")), None)
    if wanted in COMMANDS:
        importlib.import_module(COMMANDS[wanted][0]).register(sub)
    for name, (_, help_text) in COMMANDS.items():
        if name not in sub.choices:  # else registered in full by its module
            sub.add_parser(name, help=help_text, add_help=False)
    return parser


def _log_level() -> str:
    from bot.config import SettingsProblem, load_settings

    try:
        return load_settings().log_level
    except SettingsProblem:  # bad settings are reported by the command that needs them
        return "WARNING"


def main(argv: Sequence[str] | None = None, prog: str = "animatebot") -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    try:
        return _run(args_in, prog)
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, as Unix tools do. Point stdout at
        # /dev/null so the interpreter's last flush does not complain either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return BROKEN_PIPE_EXIT


def _run(argv: list[str], prog: str) -> int:
    from bot.cli._output import new_run
    from bot.errors import BotError

    new_run()
    args = build_parser(argv, prog).parse_args(argv)
    # Commands speak to people through their own output; logs are for problems, unless the
    # operator asks for more (LOG_LEVEL=INFO, e.g. for `run`). httpx logs full URLs at INFO,
    # so it stays at WARNING whatever the level.
    logging.basicConfig(
        level=_log_level(),
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
    except BotError as exc:
        print(f"error: {exc.user_message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        raise
    except Exception as exc:  # a fault: one sentence for the person, the trace in the log
        logging.getLogger("bot.cli").debug("fault", exc_info=True)
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
