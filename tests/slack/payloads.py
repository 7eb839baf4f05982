"""What Slack sends: signed request bodies for slash commands, interactions and events.

The shapes follow Slack's interaction payload reference (view_submission, block_actions,
message_action) and slash command form posts; `state_values` fills a modal's state the way
Slack does: from what the person chose, else each element's initial value.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

from tests.slack.fake_slack import SIGNING_SECRET, TEAM

FORM = "application/x-www-form-urlencoded"
_ids = itertools.count(1)


def signed(
    body: str, *, secret: str = SIGNING_SECRET, timestamp: int | None = None
) -> dict[str, str]:
    """The two headers Slack adds: `X-Slack-Request-Timestamp` and `X-Slack-Signature`."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature or ""}


def trigger() -> str:
    return f"{next(_ids)}.111.trigger{next(_ids)}"


def slash(
    command: str, text: str = "", *, user: str = "U1", channel: str = "C1",
    response_url: str = "", trigger_id: str | None = None,
) -> str:  # fmt: skip
    return urlencode({
        "token": "legacy", "team_id": TEAM, "team_domain": "fake", "channel_id": channel,
        "channel_name": "general", "user_id": user, "user_name": "someone", "command": command,
        "text": text, "api_app_id": "A1", "response_url": response_url,
        "trigger_id": trigger_id or trigger(),
    })  # fmt: skip


def interaction(payload: Mapping[str, Any]) -> str:
    return urlencode({"payload": json.dumps(payload)})


def _who(user: str) -> dict[str, Any]:
    return {"team": {"id": TEAM, "domain": "fake"},
            "user": {"id": user, "username": user.lower(), "team_id": TEAM}}  # fmt: skip


def state_values(view: Mapping[str, Any], **choices: Any) -> dict[str, Any]:
    """`view.state.values` after a person filled the form: `choices` by field name (the
    block id before `/`: prompt, model, duration, image, seed, `lora:loras` ...)."""
    values: dict[str, Any] = {}
    for block in view.get("blocks", []):
        if block.get("type") != "input":
            continue
        element = block["element"]
        name = block["block_id"].split("/", 1)[0]
        kind = element["type"]
        if kind == "file_input":
            state: dict[str, Any] = {"type": kind, "files": choices.get(name, [])}
        elif kind == "static_select":
            chosen = element.get("initial_option")
            if name in choices:
                chosen = next(
                    (o for o in element["options"] if o["value"] == str(choices[name])),
                    {"text": {"type": "plain_text", "text": str(choices[name])},
                     "value": str(choices[name])},
                )  # fmt: skip
            state = {"type": kind, "selected_option": chosen}
        else:
            state = {"type": kind, "value": choices.get(name, element.get("initial_value"))}
        values[block["block_id"]] = {element["action_id"]: state}
    return values


def with_state(view: Mapping[str, Any], **choices: Any) -> dict[str, Any]:
    return {**view, "state": {"values": state_values(view, **choices)}}


def submission(view: Mapping[str, Any], *, user: str = "U1", **choices: Any) -> dict[str, Any]:
    return {
        "type": "view_submission",
        **_who(user),
        "api_app_id": "A1",
        "trigger_id": trigger(),
        "view": with_state(view, **choices),
        "response_urls": [],
    }


def field_change(
    view: Mapping[str, Any], field: str, *, user: str = "U1", **choices: Any
) -> dict[str, Any]:
    """A block action from a modal field (`dispatch_action`), with the whole state."""
    state_view = with_state(view, **choices)
    block = next(b for b in view["blocks"] if b.get("block_id", "").split("/")[0] == field)
    return {
        "type": "block_actions",
        **_who(user),
        "api_app_id": "A1",
        "trigger_id": trigger(),
        "container": {"type": "view", "view_id": view["id"]},
        "view": state_view,
        "actions": [{
            "type": block["element"]["type"], "action_id": block["element"]["action_id"],
            "block_id": block["block_id"], "action_ts": f"{time.time():.6f}.{next(_ids)}",
        }],
    }  # fmt: skip


def button_press(
    action_id: str, *, user: str = "U1", channel: str = "C1", message_ts: str = "1.1",
    response_url: str = "", ephemeral: bool = False,
) -> dict[str, Any]:  # fmt: skip
    return {
        "type": "block_actions",
        **_who(user),
        "api_app_id": "A1",
        "trigger_id": trigger(),
        "container": {"type": "ephemeral" if ephemeral else "message",
                      "message_ts": message_ts, "channel_id": channel},
        "channel": {"id": channel, "name": "general"},
        "message": {"type": "message", "ts": message_ts, "text": "status"},
        "response_url": response_url,
        "actions": [{"type": "button", "action_id": action_id, "block_id": "b",
                     "value": action_id.rsplit(":", 1)[-1],
                     "action_ts": f"{time.time():.6f}"}],
    }  # fmt: skip


def message_shortcut(
    message: Mapping[str, Any], *, user: str = "U1", channel: str = "C1", response_url: str = ""
) -> dict[str, Any]:
    return {
        "type": "message_action",
        "callback_id": "animate_this_image",
        **_who(user),
        "trigger_id": trigger(),
        "response_url": response_url,
        "channel": {"id": channel, "name": "general"},
        "message": dict(message),
        "message_ts": message["ts"],
    }


def home_opened(user: str = "U1") -> str:
    return json.dumps({
        "token": "legacy", "team_id": TEAM, "api_app_id": "A1", "type": "event_callback",
        "event_id": f"Ev{next(_ids)}", "event_time": int(time.time()),
        "event": {"type": "app_home_opened", "user": user, "channel": f"D{user}",
                  "tab": "home", "event_ts": f"{time.time():.6f}"},
    })  # fmt: skip
