"""`discord`: the Discord bot process (Procfile `discord`).

The gateway client, plus the job runner unless RUN_WORKER=false (then a `worker` process,
`python -m bot run`, delivers Discord jobs through the bot token, without a gateway).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from bot.cli._output import cli_settings


def register(sub: Any) -> None:
    p = sub.add_parser(
        "discord",
        help="the Discord bot: gateway client, plus the job runner unless RUN_WORKER=false",
        description="Connects to Discord with DISCORD_TOKEN, syncs the commands (to "
        "DISCORD_GUILD_IDS, else globally) and answers them until SIGINT/SIGTERM.",
    )
    p.set_defaults(handler=lambda a: asyncio.run(_discord(a)))


async def _discord(args: argparse.Namespace) -> int:
    from bot.cli.processes import announce, run_services
    from bot.discord_adapter import discord_service, require_token

    settings = cli_settings()
    require_token(settings)
    # only the Discord front door: another platform's settings are not this process's
    await run_services(settings, {"discord": discord_service(announce)})
    return 0
