"""`web` and `serve`: the bot's HTTP endpoint, alone or with everything else.

- `web` (Procfile `web`): the endpoint, plus the job runner unless RUN_WORKER=false.
- `serve`: every configured chat front door, the endpoint (with the routes those front doors
  mount, e.g. Slack's /slack/events) and the job runner, in one process: the shape for one
  community on SQLite.

Both print one readiness line per part on stdout and stop cleanly on SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from bot.cli._output import cli_settings


def register(sub: Any) -> None:
    p = sub.add_parser(
        "web",
        help="the HTTP endpoint: provider webhooks, signed links, /healthz, /metrics",
        description="Serve the bot's HTTP endpoint on WEB_HOST:WEB_PORT (PORT wins when set), "
        "with the job runner unless RUN_WORKER=false. Provider callbacks are used when "
        "PUBLIC_BASE_URL is set.",
    )
    p.set_defaults(handler=lambda a: asyncio.run(_web(a)))
    p = sub.add_parser(
        "serve",
        help="everything configured in one process: chat front doors, HTTP endpoint, runner",
        description="Run every chat front door whose tokens are set, the HTTP endpoint and "
        "the job runner in one process (one community on SQLite).",
    )
    p.set_defaults(handler=lambda a: asyncio.run(_serve(a)))


async def _web(args: argparse.Namespace) -> int:
    from bot.cli.processes import run_services
    from bot.web import web_service

    await run_services(cli_settings(), {"web": web_service()})
    return 0


async def _serve(args: argparse.Namespace) -> int:
    from bot.cli.processes import chat_routes, chat_services, run_services
    from bot.web import web_service

    settings = cli_settings()
    services = {**chat_services(settings), "web": web_service(chat_routes(settings))}
    await run_services(settings, services)
    return 0
