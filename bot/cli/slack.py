"""`slack`: the Slack front door as a long-running process (Procfile `slack`)."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.cli._output import cli_settings


def register(sub: Any) -> None:
    p = sub.add_parser(
        "slack",
        help="the Slack front door (Socket Mode with SLACK_APP_TOKEN, else HTTP mode)",
        description=(
            "Runs the Slack app: Socket Mode when SLACK_APP_TOKEN is set; otherwise HTTP mode, "
            "serving POST /slack/events on WEB_HOST:WEB_PORT (PORT when set) with request "
            "signatures checked against SLACK_SIGNING_SECRET. The job runner runs in the same "
            "process unless RUN_WORKER=false. See README, 'Slack'."
        ),
    )
    p.set_defaults(handler=_slack)


def _slack(args: Any) -> int:
    """A setting that cannot work raises SetupError before anything starts: one sentence."""
    from bot.cli.processes import run_services
    from bot.slack_adapter.process import check_settings, http_service, socket_mode, socket_service
    from bot.slack_adapter.web import check_app_token, identify, web_client

    settings = cli_settings()
    check_settings(settings)
    asyncio.run(identify(web_client(settings, None)))  # a token Slack refuses
    if socket_mode(settings):
        asyncio.run(check_app_token(settings))
    service = socket_service if socket_mode(settings) else http_service()
    asyncio.run(run_services(settings, {"slack": service}))
    return 0
