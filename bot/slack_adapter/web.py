"""The Slack Web API client the front door and the sink share, and the checks an operator
needs at start: one sentence naming the setting and the fix, never the secret itself."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from bot.errors import SetupError

# A 429 carries Retry-After and is retried (slack_sdk retries none by default). A connection
# that could not be opened is retried (nothing was sent). Not retried: a 5xx or a connection
# dropped after the request went out, because Slack may have posted it (a second message).
RATE_LIMIT_RETRIES = 5
CONNECT_RETRIES = 2
SLACK_API = "https://slack.com/api/"
SLACK_FILE_ORIGIN = ("https", "files.slack.com", 443)
TIMEOUT_S = 30


class SlackSetupError(SetupError):
    """The operator's Slack settings cannot work; the message says which one and the fix."""


@dataclass(frozen=True)
class BotIdentity:
    """Who the bot is in its workspace (from `auth.test`)."""

    team_id: str
    user_id: str
    bot_id: str


def retry_handlers() -> list[AsyncRetryHandler]:
    return [
        AsyncConnectionErrorRetryHandler(
            max_retry_count=CONNECT_RETRIES, error_types=[aiohttp.ClientConnectorError]
        ),
        AsyncRateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
    ]


def web_client(settings: Settings, session: aiohttp.ClientSession | None) -> AsyncWebClient:
    """The bot-token client on `SLACK_API_URL` (a trailing slash is added: slack_sdk joins
    method names onto it), with the 429 retry handler."""
    token = require_bot_token(settings)
    return AsyncWebClient(
        token=token,
        base_url=api_base(settings),
        session=session,
        timeout=TIMEOUT_S,
        retry_handlers=retry_handlers(),
    )


def api_base(settings: Settings) -> str:
    url = settings.slack_api_url.strip() or SLACK_API
    return url if url.endswith("/") else url + "/"


def require_bot_token(settings: Settings) -> str:
    if settings.slack_bot_token is None:
        raise SlackSetupError(
            "SLACK_BOT_TOKEN is not set: copy the Bot User OAuth Token (xoxb-...) from your "
            "Slack app's OAuth & Permissions page into SLACK_BOT_TOKEN."
        )
    token = settings.slack_bot_token.get_secret_value().strip()
    if not token.startswith("xoxb-"):
        raise SlackSetupError(
            "SLACK_BOT_TOKEN is not a bot token (it must start with xoxb-): copy the Bot User "
            "OAuth Token from your Slack app's OAuth & Permissions page."
        )
    return token


def require_signing_secret(settings: Settings) -> str:
    if settings.slack_signing_secret is None:
        raise SlackSetupError(
            "SLACK_SIGNING_SECRET is not set: HTTP mode checks every request from Slack with "
            "it. Copy the Signing Secret from your Slack app's Basic Information page, or set "
            "SLACK_APP_TOKEN to use Socket Mode instead."
        )
    return settings.slack_signing_secret.get_secret_value().strip()


def require_app_token(settings: Settings) -> str:
    assert settings.slack_app_token is not None
    token = settings.slack_app_token.get_secret_value().strip()
    if not token.startswith("xapp-"):
        raise SlackSetupError(
            "SLACK_APP_TOKEN is not an app-level token (it must start with xapp-): create one "
            "with the connections:write scope on your Slack app's Basic Information page, or "
            "leave SLACK_APP_TOKEN empty to use HTTP mode."
        )
    return token


def slack_error(exc: SlackApiError) -> str:
    """The error code of a refused Web API call ("" when Slack gave no answer)."""
    return str(exc.response.get("error", "")) if exc.response is not None else ""


async def identify(client: AsyncWebClient) -> BotIdentity:
    """`auth.test`: proves the token works and says who the bot is."""
    try:
        answer = await client.auth_test()
    except SlackApiError as exc:
        error = slack_error(exc)
        if error in ("invalid_auth", "not_authed", "account_inactive", "token_revoked",
                     "token_expired"):  # fmt: skip
            raise SlackSetupError(
                f"Slack refused SLACK_BOT_TOKEN ({error}): reinstall the app to your workspace "
                "and copy the new Bot User OAuth Token (xoxb-...) into SLACK_BOT_TOKEN."
            ) from None
        raise SlackSetupError(
            f"Slack's auth.test failed ({error or 'no answer'}): check SLACK_BOT_TOKEN and "
            "SLACK_API_URL."
        ) from None
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise SlackSetupError(
            f"Could not reach Slack at {client.base_url} ({type(exc).__name__}): check the "
            "network and SLACK_API_URL."
        ) from None
    return BotIdentity(
        team_id=str(answer.get("team_id", "")),
        user_id=str(answer.get("user_id", "")),
        bot_id=str(answer.get("bot_id", "")),
    )


async def check_app_token(settings: Settings) -> None:
    """Socket Mode: `apps.connections.open` proves the app-level token (the URL it returns
    is not used and lapses)."""
    token = require_app_token(settings)
    client = AsyncWebClient(base_url=api_base(settings), timeout=TIMEOUT_S)
    try:
        await client.apps_connections_open(app_token=token)
    except SlackApiError as exc:
        error = slack_error(exc)
        raise SlackSetupError(
            f"Slack refused SLACK_APP_TOKEN ({error}): create an app-level token with the "
            "connections:write scope on your Slack app's Basic Information page, turn Socket "
            "Mode on, and put the token (xapp-...) in SLACK_APP_TOKEN."
        ) from None
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise SlackSetupError(
            f"Could not reach Slack at {client.base_url} ({type(exc).__name__}): check the "
            "network and SLACK_API_URL."
        ) from None


def file_origins(settings: Settings) -> frozenset[tuple[str, str, int]]:
    """Where the bot token may be sent to download a file: Slack's file host; and, when
    `SLACK_API_URL` points elsewhere (a test fake, a proxy), that host too."""
    origins = {SLACK_FILE_ORIGIN}
    api = urlsplit(api_base(settings))
    if api.hostname and api.hostname != "slack.com":
        origins.add(origin_of(api_base(settings)))
    return frozenset(origins)


def origin_of(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, (parts.hostname or "").lower().rstrip("."), port
