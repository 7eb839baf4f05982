"""The shipped `slack-manifest.yml` declares what the front door listens for and the scopes
its calls need (a typo there is a command Slack never sends)."""

from __future__ import annotations

import re
from pathlib import Path

from bot.slack_adapter.listeners import SHORTCUT_ID

MANIFEST = (Path(__file__).resolve().parents[2] / "slack-manifest.yml").read_text()


def test_the_manifest_names_every_command_the_bot_answers() -> None:
    commands = re.findall(r"command: (/[a-z-]+)", MANIFEST)
    assert commands == ["/animate", "/animate-usage", "/animate-admin"]
    assert f"callback_id: {SHORTCUT_ID}" in MANIFEST
    assert "- app_home_opened" in MANIFEST and "home_tab_enabled: true" in MANIFEST
    assert MANIFEST.count("/slack/events") == 5  # three commands, events, interactivity


def test_the_manifest_asks_for_the_scopes_the_calls_need() -> None:
    scopes = set(re.findall(r"^\s+- ([a-z.:_]+) #", MANIFEST, re.M))
    needed = {
        "commands", "chat:write", "files:read", "files:write", "users:read", "im:write",
        "channels:history", "groups:history", "im:history", "mpim:history",
    }  # fmt: skip
    assert needed <= scopes
    assert "chat:write.public" not in scopes  # the bot reads its thread: it must be a member
