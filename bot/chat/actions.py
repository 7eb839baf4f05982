"""The buttons on status and result messages, their ids, and who may press them.

A button's id carries its whole state (`animate:<action>:<job id>`, at most 100 characters,
Discord's limit), and the rest is in the database, so buttons keep working after a restart
and on any process (discord.py `DynamicItem`; Slack `action_id` + `value`).

Who may press what (re-checked here on every press; the platform's UI is not authorization):
- Cancel and Delete: the person who started the clip, or a moderator.
- Re-roll and Retry: the person who started the clip only - each is a new charge, theirs.
  Both first show the price with a Confirm button; only Confirm reserves money, and a
  replayed Confirm (the same press) never charges twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from bot.models import qualify
from storage import ACTIVE, Job, JobStatus

PREFIX = "animate"


class Action(StrEnum):
    CANCEL = "cancel"
    REROLL = "reroll"
    RETRY = "retry"
    DELETE = "delete"
    CONFIRM_REROLL = "reroll-ok"
    CONFIRM_RETRY = "retry-ok"


LABELS = {
    Action.CANCEL: "Cancel",
    Action.REROLL: "Re-roll",
    Action.RETRY: "Retry",
    Action.DELETE: "Delete",
    Action.CONFIRM_REROLL: "Confirm re-roll",
    Action.CONFIRM_RETRY: "Confirm retry",
}
STYLES: dict[Action, Literal["primary", "secondary", "danger"]] = {
    Action.CANCEL: "danger",
    Action.REROLL: "secondary",
    Action.RETRY: "primary",
    Action.DELETE: "danger",
    Action.CONFIRM_REROLL: "primary",
    Action.CONFIRM_RETRY: "primary",
}
CUSTOM_ID = re.compile(r"^animate:(?P<action>[a-z-]+):(?P<job>[0-9a-f]{1,64})$")


@dataclass(frozen=True)
class Button:
    action: Action
    job_id: str
    label: str = ""
    style: Literal["primary", "secondary", "danger"] = "secondary"

    @property
    def custom_id(self) -> str:
        return custom_id(self.action, self.job_id)


def button(action: Action, job_id: str) -> Button:
    return Button(action, job_id, LABELS[action], STYLES[action])


def custom_id(action: Action, job_id: str) -> str:
    out = f"{PREFIX}:{action.value}:{job_id}"
    if len(out) > 100:
        raise ValueError(f"custom id too long: {out!r}")
    return out


def parse_custom_id(value: str) -> tuple[Action, str] | None:
    match = CUSTOM_ID.match(value)
    if match is None:
        return None
    try:
        return Action(match["action"]), match["job"]
    except ValueError:
        return None


def buttons_for(job: Job, *, on: Literal["status", "result"]) -> list[Button]:
    """The buttons that make sense for the job as it is now: while it runs, Cancel on its
    status message (`on` matters only then); once it ended, Retry (failed or expired) or
    Re-roll, and Delete."""
    if job.status in ACTIVE:
        if on != "status" or job.cancel_requested or job.status is JobStatus.COMPLETED:
            return []
        return [button(Action.CANCEL, job.id)]
    again = Action.RETRY if job.status in (JobStatus.FAILED, JobStatus.EXPIRED) else Action.REROLL
    return [button(again, job.id), button(Action.DELETE, job.id)]


@dataclass(frozen=True)
class Actor:
    """Who pressed or typed: the platform's raw user id and what they may do there."""

    platform: str
    user_id: str
    server_id: str | None = None
    moderator: bool = False  # may cancel or delete others' clips
    admin: bool = False  # may use /animate-admin
    role_ids: tuple[str, ...] = field(default_factory=tuple)

    @property
    def qualified(self) -> str:
        return qualify(self.platform, self.user_id)


def refusal(action: Action, actor: Actor, job: Job) -> str | None:
    """None when `actor` may press `action` on `job`; else the sentence saying why not."""
    own = job.user_id == actor.qualified
    if action in (Action.CANCEL, Action.DELETE):
        if own or actor.moderator:
            return None
        verb = "cancel" if action is Action.CANCEL else "delete"
        return f"Only the person who started this clip, or a moderator, can {verb} it."
    if not own:
        return "Only the person who started this clip can run it again (it is their charge)."
    return None
