"""`discord`: the Discord bot process (Procfile `discord`).

The gateway client, plus the job runner unless RUN_WORKER=false (then a `worker` process,
`python -m bot run`, delivers Discord jobs through the bot token, without a gateway).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from pydantic import ValidationError
from pydantic_settings import SettingsError

from bot.cli._output import CliError
from bot.config import Settings


def register(sub: Any) -> None:
    p = sub.add_parser(
        "discord",
        help="the Discord bot: gateway client, plus the job runner unless RUN_WORKER=false",
        description="Connects to Discord with DISCORD_TOKEN, syncs the commands (to "
        "DISCORD_GUILD_IDS, else globally) and answers them until SIGINT/SIGTERM.",
    )
    p.set_defaults(handler=lambda a: asyncio.run(_discord(a)))


def load_settings() -> Settings:
    """Settings, or one sentence naming the setting that is wrong."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first.get("loc") else "a setting"
        message = str(first["msg"]).removeprefix("Value error, ")
        if name not in message:
            message = f"{name}: {message}"
        raise CliError(message) from None
    except SettingsError as exc:
        raise CliError(f"bad configuration in the environment or .env: {exc}") from None


async def _discord(args: argparse.Namespace) -> int:
    from bot.cli.processes import chat_services, run_services
    from bot.discord_adapter import DiscordSetupError

    settings = load_settings()
    if settings.discord_token is None:
        raise CliError(
            "DISCORD_TOKEN is not set: create a bot in the Discord Developer Portal and put its "
            "token in DISCORD_TOKEN (README, Discord)."
        )
    services = {k: v for k, v in chat_services(settings).items() if k == "discord"}
    try:
        await run_services(settings, services)
    except DiscordSetupError as exc:
        raise CliError(str(exc)) from None
    return 0
