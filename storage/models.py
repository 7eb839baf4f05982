"""Typed values the ledger and the job store return. Rows never leave `storage/` raw."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from providers.money import format_usd
from storage.periods import format_when

ScopeKind = Literal["user", "server", "global"]
CapName = Literal["daily", "monthly", "concurrent_jobs", "jobs_per_hour"]
GLOBAL_ID = "*"


@dataclass(frozen=True)
class Limits:
    """Caps for one scope; None means no cap."""

    daily_micros: int | None = None
    monthly_micros: int | None = None
    concurrent_jobs: int | None = None
    jobs_per_hour: int | None = None


@dataclass(frozen=True)
class Scopes:
    """Who a reservation counts against. The global scope always applies.

    `user_defaults` replaces the operator's default user caps for this person (a Discord
    member's caps from their roles); the person's own overrides still win over it.
    """

    user_id: str
    server_id: str | None = None
    user_defaults: Limits | None = None

    def chain(self) -> list[tuple[ScopeKind, str]]:
        """Scopes in the fixed lock order: user, server, global (the hottest row last)."""
        out: list[tuple[ScopeKind, str]] = [("user", self.user_id)]
        if self.server_id is not None:
            out.append(("server", self.server_id))
        out.append(("global", GLOBAL_ID))
        return out


LIMIT_FIELDS: tuple[str, ...] = (
    "daily_micros",
    "monthly_micros",
    "concurrent_jobs",
    "jobs_per_hour",
)


@dataclass(frozen=True)
class LimitDefaults:
    """Caps that apply where the database holds no override."""

    user: Limits = field(default_factory=Limits)
    server: Limits = field(default_factory=Limits)
    global_: Limits = field(default_factory=Limits)

    def for_kind(self, kind: str) -> Limits:
        return {"user": self.user, "server": self.server, "global": self.global_}[kind]


@dataclass(frozen=True)
class Reservation:
    key: str
    status: Literal["held", "settled", "voided"]
    amount_micros: int
    settled_micros: int
    user_id: str
    server_id: str | None
    model: str
    created_at: float
    updated_at: float

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Reservation:
        return cls(
            key=row["key"],
            status=row["status"],
            amount_micros=int(row["amount_micros"]),
            settled_micros=int(row["settled_micros"]),
            user_id=row["user_id"],
            server_id=row["server_id"],
            model=row["model"],
            created_at=float(row["created_at"]),
            updated_at=float(row["updated_at"]),
        )


_WHO = {"user": "Your", "server": "This server's", "global": "The bot's"}
_HAS = {
    "user": "You already have",
    "server": "This server already has",
    "global": "The bot already has",
}


@dataclass(frozen=True)
class Refusal:
    """Which cap refused a reservation, with the numbers a person needs to understand why."""

    scope_kind: ScopeKind
    scope_id: str
    cap: CapName
    limit: int
    used: int
    requested: int
    remaining: int
    unit: Literal["micros", "jobs"]
    resets_at: float | None

    def message(self) -> str:
        if self.cap == "concurrent_jobs":
            clips = "clip" if self.used == 1 else "clips"
            return (
                f"{_HAS[self.scope_kind]} {self.used} {clips} rendering (the limit is "
                f"{self.limit}); try again when one finishes."
            )
        if self.cap == "jobs_per_hour":
            text = (
                f"{_WHO[self.scope_kind]} hourly limit of {self.limit} clips is reached: "
                f"{self.used} started in the last hour."
            )
            if self.resets_at is not None:
                text += f" It resets at {format_when(self.resets_at, time_only=True)}."
            return text
        period = "daily" if self.cap == "daily" else "monthly"
        whose = _WHO[self.scope_kind].lower()
        text = (
            f"This clip costs {format_usd(self.requested)}, but only "
            f"{format_usd(self.remaining)} is left of {whose} {period} limit of "
            f"{format_usd(self.limit)} ({format_usd(self.used)} used)."
        )
        if self.resets_at is not None:
            text += f" It resets at {format_when(self.resets_at)}."
        return text

    def to_json(self) -> str:
        return json.dumps(self.__dict__, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Refusal:
        return cls(**json.loads(text))


@dataclass(frozen=True)
class CapUsage:
    """One cap that applies to a scope: its limit, what is used, and when it resets."""

    scope_kind: ScopeKind
    scope_id: str
    cap: CapName
    limit: int | None
    used: int
    spent: int
    held: int
    remaining: int | None
    unit: Literal["micros", "jobs"]
    resets_at: float | None


@dataclass(frozen=True)
class LedgerEntry:
    """One line of the append-only history: who, what, why."""

    id: int
    at: float
    key: str
    kind: Literal["reserve", "refuse", "settle", "void"]
    amount_micros: int
    user_id: str
    server_id: str | None
    model: str
    note: str


class JobStatus(StrEnum):
    RESERVED = "reserved"
    SUBMITTED = "submitted"
    PROCESSING = "processing"
    COMPLETED = "completed"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


ACTIVE: frozenset[JobStatus] = frozenset(
    {JobStatus.RESERVED, JobStatus.SUBMITTED, JobStatus.PROCESSING, JobStatus.COMPLETED}
)


@dataclass(frozen=True)
class NewJob:
    id: str
    platform: str
    event_id: str
    user_id: str
    server_id: str | None
    model: str
    provider: str
    params: dict[str, Any]
    prompt: str
    image_ref: str
    cost_micros: int
    channel_id: str | None = None
    thread_id: str | None = None
    message_id: str | None = None
    sink: dict[str, Any] = field(default_factory=dict)  # how to deliver
    meta: dict[str, Any] = field(default_factory=dict)  # free JSON for the runner
    next_check_at: float | None = None
    deadline_at: float | None = None
    # The creator may hold the lease from the start, so no runner submits the job while the
    # creating process is still preparing it.
    lease_owner: str | None = None
    lease_until: float | None = None


@dataclass(frozen=True)
class Job:
    id: str
    platform: str
    event_id: str
    user_id: str
    server_id: str | None
    model: str
    provider: str
    params: dict[str, Any]
    prompt: str
    image_ref: str
    cost_micros: int
    channel_id: str | None
    thread_id: str | None
    message_id: str | None
    sink: dict[str, Any]
    meta: dict[str, Any]
    next_check_at: float | None
    deadline_at: float | None
    status: JobStatus
    ledger_key: str
    provider_task_id: str | None
    submit_started_at: float | None
    status_reason: str
    error_code: int | None
    progress_percent: int | None
    output_url: str | None
    delivered_ref: str | None
    cancel_requested: bool
    poll_count: int
    lease_owner: str | None
    lease_until: float | None
    created_at: float
    updated_at: float

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Job:
        def opt_float(name: str) -> float | None:
            v = row[name]
            return None if v is None else float(v)

        return cls(
            id=row["id"],
            platform=row["platform"],
            event_id=row["event_id"],
            user_id=row["user_id"],
            server_id=row["server_id"],
            model=row["model"],
            provider=row["provider"],
            params=json.loads(row["params"]),
            prompt=row["prompt"],
            image_ref=row["image_ref"],
            cost_micros=int(row["cost_micros"]),
            channel_id=row["channel_id"],
            thread_id=row["thread_id"],
            message_id=row["message_id"],
            sink=json.loads(row["sink"]),
            meta=json.loads(row["meta"]),
            next_check_at=opt_float("next_check_at"),
            deadline_at=opt_float("deadline_at"),
            status=JobStatus(row["status"]),
            ledger_key=row["ledger_key"],
            provider_task_id=row["provider_task_id"],
            submit_started_at=opt_float("submit_started_at"),
            status_reason=row["status_reason"],
            error_code=row["error_code"],
            progress_percent=row["progress_percent"],
            output_url=row["output_url"],
            delivered_ref=row["delivered_ref"],
            cancel_requested=bool(row["cancel_requested"]),
            poll_count=int(row["poll_count"]),
            lease_owner=row["lease_owner"],
            lease_until=opt_float("lease_until"),
            created_at=float(row["created_at"]),
            updated_at=float(row["updated_at"]),
        )


@dataclass(frozen=True)
class JobEvent:
    job_id: str
    at: float
    from_status: JobStatus | None
    to_status: JobStatus
    note: str


@dataclass(frozen=True)
class StoredImage:
    """A job's prepared input image as kept in the database (already validated and cleaned)."""

    data: bytes
    content_type: str
    filename: str
    width: int
    height: int


@dataclass(frozen=True)
class SavedLora:
    """A server's name for a LoRA URL, with the strength used when none is given."""

    server_id: str
    name: str
    url: str
    scale: float
    created_by: str


@dataclass(frozen=True)
class CreateResult:
    job: Job
    created: bool


@dataclass(frozen=True)
class KeyRefusal:
    """A provider refused one of our API keys (by fingerprint) with this status, at this time."""

    provider: str
    key_id: str
    status_code: int | None
    detail: str
    refused_at: float
