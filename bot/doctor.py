"""`doctor`: is this bot configured to work, and if not, what to do about each thing.

Every check is a `Check`: ok, warn (works, but probably not as meant), off (a feature that is
not configured: says how to turn it on) or fail (something is wrong: says the fix). Each
provider key gets one cheap authenticated call (a balance read, which costs nothing); each
platform token that is set gets one (`GET /users/@me` for Discord, `auth.test` for Slack).
A key the provider accepts again is re-enabled for every process (`bot/keys.py`); one it
refuses is recorded, so the bot stops submitting with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urljoin

import httpx
from pydantic import SecretStr

from bot.config import Settings, SettingsProblem, env_file_warnings, load_settings
from bot.database import connect, shown_url
from bot.errors import SetupError
from bot.keys import KEY_SETTINGS, PROVIDER_NAMES, ProviderKeys, provider_keys
from bot.media import NO_MEDIA_HOST
from providers.catalog import CATALOG
from providers.errors import AuthenticationError, ProviderError
from providers.money import format_usd
from providers.novita import NovitaClient
from providers.pricing import PriceOverrideError, PriceTable, availability
from providers.wavespeed import WaveSpeedClient
from storage import Database
from storage.backend import sqlite_path
from storage.migrate import applied_versions, load_migrations

Status = Literal["ok", "warn", "off", "fail"]
TIMEOUT = httpx.Timeout(10.0, connect=5.0)


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str | None = None


async def run_checks(environ_file: str | Path = ".env") -> list[Check]:
    """Every check, in the order an operator fixes things."""
    checks: list[Check] = []
    try:
        settings = load_settings()
    except SettingsProblem as exc:
        return [Check("settings", "fail", str(exc), "fix that variable in the environment or .env")]
    checks.append(Check("settings", "ok", "read from the environment and .env"))
    checks += [
        Check("settings", "warn", warning, "remove it or correct its name")
        for warning in env_file_warnings(environ_file)
    ]
    db, check = await _database(settings)
    checks.append(check)
    try:
        keys = ProviderKeys(db.keys, provider_keys(settings)) if db is not None else None
        key_checks = {
            provider: await _provider(provider, settings, keys)
            for provider in ("wavespeed", "novita")
        }
        checks += key_checks.values()
        checks += _models(settings, key_checks)
        checks += await _platforms(settings)
        checks.append(_web(settings))
    finally:
        if db is not None:
            await db.close()
    return checks


async def _database(settings: Settings) -> tuple[Database | None, Check]:
    url = settings.database_url
    shown = shown_url(url)
    if url.startswith("sqlite:") and not await asyncio.to_thread(Path(sqlite_path(url)).exists):
        return None, Check(
            "database", "ok", f"{shown}: the file does not exist yet; it is created and "
            "migrated when the bot first starts",
        )  # fmt: skip
    try:
        db = await connect(settings, migrate=False)
    except SetupError as exc:
        return None, Check("database", "fail", str(exc), "fix DATABASE_URL")
    try:
        applied = set(await applied_versions(db.raw))
    except Exception:  # no schema_migrations table yet: a new, empty database
        applied = set()
    known = {m.version for m in load_migrations()}
    if applied - known:
        newer = ", ".join(map(str, sorted(applied - known)))
        return db, Check(
            "database", "fail", f"{shown}: migrations {newer} are newer than this version of "
            "the bot", "upgrade the bot: an older version must not run on a newer schema",
        )  # fmt: skip
    pending = sorted(known - applied)
    if pending:
        return db, Check(
            "database", "warn",
            f"{shown}: reachable; {len(pending)} migration(s) not applied yet "
            f"({', '.join(map(str, pending))})",
            "run `python -m bot migrate` (the bot also applies them when it starts)",
        )  # fmt: skip
    return db, Check("database", "ok", f"{shown}: reachable, migrations 1-{max(known)} applied")


async def _provider(provider: str, settings: Settings, keys: ProviderKeys | None) -> Check:
    name, setting = PROVIDER_NAMES[provider], KEY_SETTINGS[provider]
    key: SecretStr | None = provider_keys(settings).get(provider)
    if key is None:
        return Check(provider, "off", f"{setting} is not set: {name} models are disabled",
                     f"set {setting}")  # fmt: skip
    base = settings.wavespeed_base_url if provider == "wavespeed" else settings.novita_base_url
    client_type = WaveSpeedClient if provider == "wavespeed" else NovitaClient
    async with client_type(key, base_url=base, timeout=TIMEOUT, max_retries=1) as client:
        try:
            balance = await client.balance_micros()
        except AuthenticationError as exc:
            if keys is not None:
                await keys.refused(provider, status_code=exc.status_code, detail=str(exc))
            return Check(
                provider, "fail",
                f"{name} refused {setting} (HTTP {exc.status_code}); the bot submits nothing "
                f"to {name} until it works",
                f"set a working {setting} (a new WaveSpeed key works after the account's first "
                "top-up), then run doctor again" if provider == "wavespeed"
                else f"set a working {setting}, then run doctor again",
            )  # fmt: skip
        except ProviderError as exc:
            base_setting = f"{provider.upper()}_BASE_URL"
            return Check(provider, "fail", f"could not check the key at {base}: {exc}",
                         f"check the network, or {base_setting}")  # fmt: skip
    cleared = keys is not None and await keys.accepted(provider)
    again = "; re-enabled: an earlier refusal of this key was cleared" if cleared else ""
    return Check(provider, "ok", f"{setting} accepted (balance {format_usd(balance)}){again}")


def _models(settings: Settings, key_checks: dict[str, Check]) -> list[Check]:
    try:
        prices = PriceTable.with_overrides(settings.price_overrides)
    except PriceOverrideError as exc:  # already refused with the settings; kept for safety
        return [Check("models", "fail", str(exc), "fix PRICE_OVERRIDES")]
    usable = {p for p, c in key_checks.items() if c.status == "ok"}
    out: list[Check] = []
    for spec in CATALOG.values():
        enabled, why = availability(
            spec, prices, has_wavespeed_key="wavespeed" in usable,
            has_novita_key="novita" in usable,
        )  # fmt: skip
        if enabled and spec.provider == "novita" and "wavespeed" not in usable and (
            settings.public_base_url is None
        ):
            enabled, why = False, NO_MEDIA_HOST
        if enabled:
            out.append(Check(f"model {spec.id}", "ok", "enabled"))
            continue
        own = key_checks.get(spec.provider)
        if own is not None and own.status == "fail":
            why = f"{PROVIDER_NAMES[spec.provider]}'s key check failed (see above)"
        out.append(Check(f"model {spec.id}", "off", f"disabled: {why}"))
    if not any(c.status == "ok" for c in out):
        out.append(Check("models", "fail", "no model can run", "make one of the fixes above"))
    return out


async def _platforms(settings: Settings) -> list[Check]:
    checks: list[Check] = []
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        if settings.discord_token is None:
            checks.append(Check("discord", "off", "DISCORD_TOKEN is not set: no Discord front "
                                "door", "set DISCORD_TOKEN (the bot token)"))  # fmt: skip
        else:
            checks.append(await _call("discord", "DISCORD_TOKEN", lambda: _discord(http, settings)))
        if settings.slack_bot_token is None:
            checks.append(Check("slack", "off", "SLACK_BOT_TOKEN is not set: no Slack front door",
                                "set SLACK_BOT_TOKEN (xoxb-...)"))  # fmt: skip
        else:
            checks.append(await _call("slack", "SLACK_BOT_TOKEN", lambda: _slack(http, settings)))
    return checks


async def _call(name: str, setting: str, check: Callable[[], Awaitable[Check]]) -> Check:
    try:
        return await check()
    except (httpx.HTTPError, ValueError) as exc:
        return Check(name, "fail", f"could not check {setting}: {type(exc).__name__}: {exc}",
                     "check the network, or the API base URL setting")  # fmt: skip


async def _discord(http: httpx.AsyncClient, settings: Settings) -> Check:
    assert settings.discord_token is not None
    url = settings.discord_api_base_url.rstrip("/") + "/users/@me"
    token = settings.discord_token.get_secret_value()
    reply = await http.get(url, headers={"Authorization": f"Bot {token}"})
    if reply.status_code in (401, 403):
        return Check("discord", "fail", f"Discord refused DISCORD_TOKEN (HTTP {reply.status_code})",
                     "set the bot token from the Discord developer portal (Bot -> Reset Token)")
    reply.raise_for_status()
    me = reply.json()
    return Check("discord", "ok", f"DISCORD_TOKEN accepted: logged in as {me.get('username')} "
                 f"(id {me.get('id')})")  # fmt: skip


async def _slack(http: httpx.AsyncClient, settings: Settings) -> Check:
    assert settings.slack_bot_token is not None
    url = urljoin(settings.slack_api_url.rstrip("/") + "/", "auth.test")
    token = settings.slack_bot_token.get_secret_value()
    reply = await http.post(url, headers={"Authorization": f"Bearer {token}"})
    reply.raise_for_status()
    body = reply.json()
    if not body.get("ok"):
        return Check("slack", "fail", f"Slack refused SLACK_BOT_TOKEN ({body.get('error')})",
                     "set the Bot User OAuth Token (xoxb-...) of the installed app")
    if settings.slack_app_token is not None:
        mode = "events by Socket Mode (SLACK_APP_TOKEN)"
    elif settings.slack_signing_secret is not None:
        mode = "events over HTTP, signed with SLACK_SIGNING_SECRET"
    else:
        return Check("slack", "warn", f"SLACK_BOT_TOKEN accepted (team {body.get('team')}), but "
                     "no way to receive events is set",
                     "set SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP)")
    return Check("slack", "ok", f"SLACK_BOT_TOKEN accepted: team {body.get('team')}, bot user "
                 f"{body.get('user')}; {mode}")  # fmt: skip


def _web(settings: Settings) -> Check:
    if settings.public_base_url is None:
        return Check("web", "off", "PUBLIC_BASE_URL is not set: no provider callbacks (the "
                     "runner polls) and Novita images go through WaveSpeed's upload",
                     "set PUBLIC_BASE_URL to where the bot's web endpoint is reachable")
    key = ("URL_SIGNING_SECRET" if settings.url_signing_secret is not None
           else "a key generated once and kept in the database")  # fmt: skip
    if settings.metrics_token is None:
        return Check("web", "warn", f"callbacks and signed links at {settings.public_base_url} "
                     f"(signed with {key}); /metrics answers anyone who can reach it",
                     "set METRICS_TOKEN, or block /metrics at your proxy")
    return Check("web", "ok", f"callbacks and signed links at {settings.public_base_url} "
                 f"(signed with {key}); /metrics needs METRICS_TOKEN")


def run(environ_file: str | Path = ".env") -> list[Check]:
    return asyncio.run(run_checks(environ_file))
