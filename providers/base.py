"""Provider-neutral shapes: what every video API client returns and promises.

Raw provider JSON never leaves `providers/`; callers see `ProviderTask` and `TaskStatus`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field


class TaskStatus(StrEnum):
    """One status vocabulary for both providers.

    `UNKNOWN` is what a status we have never seen maps to: it is not terminal, so the
    runner keeps following the task until its deadline and then reconciles it.
    """

    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    DELETED = "deleted"
    UNKNOWN = "unknown"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL: frozenset[TaskStatus] = frozenset(
    {
        TaskStatus.COMPLETED,
        TaskStatus.FAILED,
        TaskStatus.CANCELLED,
        TaskStatus.TIMEOUT,
        TaskStatus.DELETED,
    }
)


class ProviderTask(BaseModel):
    """A provider task as last seen: the one thing a poll or a webhook yields."""

    model_config = ConfigDict(frozen=True)

    provider: str  # "wavespeed" | "novita"
    task_id: str
    status: TaskStatus
    raw_status: str = ""  # the provider's own word, kept for logs and reconciliation
    outputs: list[str] = Field(default_factory=list)  # clip URLs (or base64 payloads)
    nsfw: list[bool] = Field(default_factory=list)  # one flag per output, when given
    error_code: int | None = None  # WaveSpeed data.code (1200 = content moderation)
    error: str = ""  # the provider's failure text (WaveSpeed error / Novita task.reason)
    progress_percent: int | None = None  # Novita gives it; WaveSpeed does not
    eta_s: int | None = None
    inference_ms: int | None = None
    output_ttl_s: int | None = None  # Novita video_url_ttl

    @property
    def moderated(self) -> bool:
        """True when the provider refused the content (WaveSpeed code 1200)."""
        return self.error_code == 1200


class UploadedMedia(BaseModel):
    """A file the provider can fetch by URL."""

    model_config = ConfigDict(frozen=True)

    url: str
    filename: str = ""
    size: int = 0


class VideoProvider(Protocol):
    """What the service and the runner need from a provider client.

    `submit` is never retried automatically: the task may already exist and be billed.
    `get` may be retried (it is a read).
    """

    name: str

    async def submit(
        self, endpoint: str, payload: dict[str, Any], *, webhook_url: str | None = None
    ) -> ProviderTask: ...

    async def get(self, task_id: str) -> ProviderTask: ...

    async def download(self, url: str, *, max_bytes: int) -> bytes: ...

    async def aclose(self) -> None: ...
