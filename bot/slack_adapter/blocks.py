"""Block Kit for messages, buttons and the App Home tab. Pure functions of what `bot.chat`
rendered; each message also gets a plain `text` (notifications and screen readers use it).

Every message the bot posts about a job carries the job id in its message metadata
(`event_type` below), so a restarted bot can find what it already posted in a thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.chat.actions import Action, Button
from bot.chat.status import StatusView

# Message metadata event types, one per kind of bot message about a job.
REQUEST_EVENT = "animate_request"  # the public reply to /animate (the thread's parent)
STATUS_EVENT = "animate_status"  # the one status message, edited as the job moves
CLIP_EVENT = "animate_clip"  # a clip posted as a link (a file upload carries no metadata)
TEXT_MAX = 3000  # Block Kit's limit for a text object


def plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}


def section(text: str, block_id: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "section", "text": mrkdwn(text[:TEXT_MAX])}
    if block_id:
        out["block_id"] = block_id
    return out


def context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [mrkdwn(text[:TEXT_MAX])]}


def job_metadata(event_type: str, job_id: str) -> dict[str, Any]:
    return {"event_type": event_type, "event_payload": {"job_id": job_id}}


def button(b: Button) -> dict[str, Any]:
    """A button whose `action_id` is the shared custom id (`animate:<action>:<job>`): the
    press names the job itself, so it works after a restart and on any process."""
    out: dict[str, Any] = {
        "type": "button",
        "action_id": b.custom_id,
        "value": b.job_id,
        "text": plain(b.label),
    }
    if b.style in ("primary", "danger"):
        out["style"] = b.style
    if b.action is Action.DELETE:
        out["confirm"] = {
            "title": plain("Delete this clip?"),
            "text": plain("The clip and its status messages are removed from the thread."),
            "confirm": plain("Delete"),
            "deny": plain("Keep it"),
            "style": "danger",
        }
    return out


def actions(buttons: Sequence[Button]) -> list[dict[str, Any]]:
    if not buttons:
        return []
    return [{"type": "actions", "elements": [button(b) for b in buttons]}]


def status_blocks(view: StatusView) -> list[dict[str, Any]]:
    blocks = [section(view.headline)]
    if view.details:
        blocks.append(context("\n".join(view.details)))
    return blocks + actions(view.buttons)


def text_blocks(text: str, buttons: Sequence[Button] = ()) -> list[dict[str, Any]]:
    return [section(text), *actions(buttons)]


def lines_blocks(title: str, lines: Sequence[str]) -> list[dict[str, Any]]:
    """A heading and lines, split into sections that stay under Block Kit's text limit."""
    blocks: list[dict[str, Any]] = [section(f"*{title}*")]
    chunk: list[str] = []
    for line in lines:
        if sum(len(x) + 1 for x in chunk) + len(line) > TEXT_MAX - 100:
            blocks.append(section("\n".join(chunk)))
            chunk = []
        chunk.append(line)
    if chunk:
        blocks.append(section("\n".join(chunk)))
    return blocks


def home_view(usage: Sequence[str], jobs: Sequence[str]) -> dict[str, Any]:
    """The App Home tab: what the person has left, and their recent clips."""
    blocks = [
        {"type": "header", "text": plain("Your animate budget")},
        *lines_blocks("Left to spend", usage)[1:],
        {"type": "divider"},
        {"type": "header", "text": plain("Your recent clips")},
        *lines_blocks("Recent clips", jobs)[1:],
        context(
            "Start a clip with `/animate`, or the *Animate this image* shortcut on a message "
            "with a picture. `/animate-usage` shows this in any channel."
        ),
    ]
    return {"type": "home", "blocks": blocks[:100]}


def refusal(sentence: str) -> str:
    """A refusal, saying that it cost nothing (most sentences already say so)."""
    text = sentence.strip()
    if "charged" in text.lower() or "charge" in text.lower():
        return text
    return f"{text} Nothing was charged."


ADMIN_HELP = "\n".join(
    [
        "*/animate-admin* — for workspace admins and owners:",
        "• `caps` — the caps for the workspace and members",
        "• `caps workspace daily=50 monthly=500 concurrent=10 per_hour=none`",
        "• `caps @member daily=2 monthly=default` — a member's own caps (`default` drops one)",
        "• `lora list` · `lora save NAME URL [STRENGTH]` · `lora delete NAME`",
        "• `report [DAYS]` — the workspace's spend as a CSV file, sent to you privately",
        "• `pause` · `resume` — stop or restart /animate here (running clips finish)",
        "Money in dollars (`5`, `2.50`), counts as whole numbers, `none` for no cap.",
    ]
)
