"""`doctor` against loopback fakes: the provider simulator, and a tiny Discord + Slack API."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from bot.cli import main
from bot.keys import key_id
from providers.novita import NovitaClient
from providers.simulator import Simulator
from storage import open_database
from storage.migrate import load_migrations
from tests.bot.conftest import env_for, settings_for
from tests.fixtures_sim import SIM_API_KEY

DISCORD_TOKEN = "discord-bot-token"
SLACK_TOKEN = "xoxb-slack-bot-token"


@pytest.fixture
async def platforms() -> AsyncIterator[str]:
    """Discord's `GET /users/@me` and Slack's `auth.test`, answering as the real APIs do."""

    async def me(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bot {DISCORD_TOKEN}":
            return web.json_response({"message": "401: Unauthorized", "code": 0}, status=401)
        return web.json_response({"id": "1234", "username": "animatebot", "bot": True})

    async def auth_test(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {SLACK_TOKEN}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        return web.json_response({"ok": True, "team": "Creators", "user": "animatebot",
                                  "team_id": "T1", "user_id": "U1"})  # fmt: skip

    app = web.Application()
    app.router.add_get("/discord/api/v10/users/@me", me)
    app.router.add_post("/slack/api/auth.test", auth_test)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


@pytest.fixture
def doctor(
    simulator: Simulator, database_url: str, platforms: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> Callable[..., Any]:  # fmt: skip
    """Run `doctor --json` with the simulator's settings plus `overrides`; (exit, checks)."""
    monkeypatch.chdir(tmp_path)

    async def run(**overrides: Any) -> tuple[int, dict[str, list[dict[str, Any]]]]:
        values: dict[str, Any] = {
            "discord_token": SecretStr(DISCORD_TOKEN),
            "discord_api_base_url": f"{platforms}/discord/api/v10",
            "slack_bot_token": SecretStr(SLACK_TOKEN),
            "slack_app_token": SecretStr("xapp-socket-mode"),
            "slack_api_url": f"{platforms}/slack/api/",
            **overrides,
        }
        url = values.pop("database_url", database_url)
        for name, value in env_for(settings_for(simulator, url, **values)).items():
            monkeypatch.setenv(name, value)
        capsys.readouterr()
        code = await asyncio.to_thread(main, ["doctor", "--json"])
        out = capsys.readouterr().out
        checks: dict[str, list[dict[str, Any]]] = {}
        for line in out.splitlines():
            check = json.loads(line)
            checks.setdefault(check["check"], []).append(check)
        return code, checks

    return run


async def migrated(database_url: str) -> None:
    """The database as a started bot leaves it."""
    async with await open_database(database_url):
        pass


async def test_everything_configured_and_working(doctor: Any, database_url: str) -> None:
    await migrated(database_url)
    code, checks = await doctor()
    assert code == 0
    assert all(c["status"] in ("ok", "off") for group in checks.values() for c in group)
    assert checks["wavespeed"][0]["detail"] == "WAVESPEED_API_KEY accepted (balance $100.00)"
    assert checks["novita"][0]["detail"] == "NOVITA_API_KEY accepted (balance $100.00)"
    assert "logged in as animatebot (id 1234)" in checks["discord"][0]["detail"]
    assert "team Creators" in checks["slack"][0]["detail"]
    assert "Socket Mode" in checks["slack"][0]["detail"]
    assert checks["model wan-2.1"][0]["status"] == "ok"  # Novita key and a price override
    last = max(m.version for m in load_migrations())
    assert checks["database"][0]["detail"].endswith(f"reachable, migrations 1-{last} applied")
    assert checks["web"][0]["status"] == "off" and "PUBLIC_BASE_URL" in checks["web"][0]["fix"]


async def test_refused_keys_and_tokens_fail_with_the_setting_to_fix(
    doctor: Any, database_url: str
) -> None:
    await migrated(database_url)
    code, checks = await doctor(
        wavespeed_api_key=SecretStr("wrong"),
        discord_token=SecretStr("wrong"),
        slack_bot_token=SecretStr("xoxb-wrong"),
    )
    assert code == 1
    ws = checks["wavespeed"][0]
    assert ws["status"] == "fail"
    assert ws["detail"].startswith("WaveSpeed refused WAVESPEED_API_KEY (HTTP 401)")
    assert "WAVESPEED_API_KEY" in ws["fix"]
    assert checks["discord"][0]["detail"] == "Discord refused DISCORD_TOKEN (HTTP 401)"
    assert checks["slack"][0]["detail"] == "Slack refused SLACK_BOT_TOKEN (invalid_auth)"
    assert checks["model sora-2"][0]["status"] == "off"
    # The refusal is recorded for every process that runs with that key.
    async with await open_database(database_url) as db:
        refusal = await db.keys.refusal("wavespeed", key_id("wavespeed", SecretStr("wrong")))
        assert refusal is not None and refusal.status_code == 401


async def test_a_key_that_works_again_is_re_enabled(doctor: Any, database_url: str) -> None:
    await migrated(database_url)
    kid = key_id("wavespeed", SecretStr(SIM_API_KEY))
    async with await open_database(database_url) as db:  # refused once (an account not yet
        await db.keys.mark_refused("wavespeed", kid, status_code=401, detail="topped up")
    code, checks = await doctor()
    assert code == 0
    assert "re-enabled" in checks["wavespeed"][0]["detail"]
    async with await open_database(database_url) as db:
        assert await db.keys.refusal("wavespeed", kid) is None


async def test_an_unreachable_database_and_missing_keys(doctor: Any) -> None:
    code, checks = await doctor(
        database_url="postgresql://bot:pw@127.0.0.1:1/bot",
        wavespeed_api_key=None, novita_api_key=None, discord_token=None, slack_bot_token=None,
    )  # fmt: skip
    assert code == 1
    database = checks["database"][0]
    assert database["status"] == "fail" and "DATABASE_URL=postgresql://bot:***@" in (
        database["detail"]
    )
    assert checks["wavespeed"][0]["status"] == "off"
    assert checks["wavespeed"][0]["fix"] == "set WAVESPEED_API_KEY"
    assert checks["models"][0]["detail"] == "no model can run"
    assert checks["discord"][0]["status"] == "off"


def test_bad_settings_are_the_one_failure(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LEASE_S", "soon")
    assert main(["doctor"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("FAIL  settings") and "LEASE_S='soon' is not allowed" in lines[0]
    assert lines[1:] == ["1 problem(s) to fix"]


async def test_novita_balance_is_a_free_authenticated_read(simulator: Simulator) -> None:
    async with NovitaClient(SIM_API_KEY, base_url=simulator.base_url) as client:
        assert await client.balance_micros() == 100_000_000
    from providers.errors import AuthenticationError

    async with NovitaClient("wrong", base_url=simulator.base_url, max_retries=0) as client:
        with pytest.raises(AuthenticationError):
            await client.balance_micros()


async def test_the_web_endpoint_is_on_and_metrics_are_guarded(
    doctor: Any, database_url: str
) -> None:
    await migrated(database_url)
    code, checks = await doctor(public_base_url="https://bot.example.com")
    web = checks["web"][0]
    assert code == 0 and web["status"] == "warn" and web["fix"].startswith("set METRICS_TOKEN")
    assert "a key generated once and kept in the database" in web["detail"]
    code, checks = await doctor(
        public_base_url="https://bot.example.com",
        metrics_token=SecretStr("m" * 24),
        url_signing_secret=SecretStr("s" * 32),
    )
    assert checks["web"][0]["status"] == "ok" and "URL_SIGNING_SECRET" in checks["web"][0]["detail"]
