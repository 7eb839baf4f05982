"""Platform-neutral shapes that the adapters build and the service consumes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ImageSource(BaseModel):
    """Where the user's image is. Exactly one of url, path or data.

    `headers` (e.g. Slack's Bearer token for a private file) are used for the download only
    and never stored with the job.
    """

    model_config = ConfigDict(frozen=True)

    url: str | None = None
    path: str | None = None
    data: bytes | None = None
    headers: dict[str, str] = Field(default_factory=dict, repr=False)

    def ref(self) -> str:
        """What the job record keeps about the image (no bytes, no secrets)."""
        if self.url:
            return self.url
        if self.path:
            return self.path
        return "upload"


class AnimateRequest(BaseModel):
    """One `/animate` from any front door, before validation.

    `event_id` is the platform's id for this command (a Discord interaction id, a Slack
    view id, a CLI-generated id): a repeat of the same event makes no second job or hold.
    """

    model_config = ConfigDict(frozen=True)

    platform: str  # "discord" | "slack" | "cli"
    event_id: str
    user_id: str
    server_id: str | None = None
    channel_id: str | None = None
    thread_id: str | None = None
    message_id: str | None = None
    image: ImageSource
    prompt: str
    model: str
    options: dict[str, Any] = Field(default_factory=dict)  # duration, resolution, loras, seed...
    sink: dict[str, Any] = Field(default_factory=dict)  # how to deliver, e.g. {"kind": "file"}
    # the member's roles (Discord): their default caps come from the server's role caps
    role_ids: tuple[str, ...] = ()
    meta: dict[str, Any] = Field(default_factory=dict)  # kept with the job, for its front door


def qualify(platform: str, raw_id: str) -> str:
    """Scope ids are platform-qualified ("discord:123"); an id that has a colon is kept."""
    return raw_id if ":" in raw_id else f"{platform}:{raw_id}"


def raw_id(qualified: str) -> str:
    """The platform's own id: 'discord:123' -> '123' (an id without a prefix is kept)."""
    return qualified.split(":", 1)[-1]
