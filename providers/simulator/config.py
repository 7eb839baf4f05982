"""The simulator's knobs, scripted outcomes and injected faults.

Time units: `queue_s`, `render_s`, `sync_wait_s` and `webhook_backoff_s` are *simulated*
seconds and are multiplied by `time_scale` (0.01 = 100x faster). Output TTLs, `latency_s`,
`webhook_timeout_s` and fault delays are wall seconds, so an accelerated benchmark does not see
its outputs expire under it; tests of expiry use `Simulator.expire_outputs()` or
`Simulator.advance_clock()` instead of waiting.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled", "timeout", "deleted"})

# Failure codes documented by WaveSpeed (error-codes page) and their default texts.
DEFAULT_ERRORS: dict[int, str] = {
    1200: "content flagged by moderation",
    1400: "missing parameter",
    1401: "invalid parameter",
    1402: "media URL not reachable",
    1403: "task execution failed",
    1405: "task failed",
    5000: "internal server error",
    5003: "service unavailable",
    5004: "timeout",
}


def _new_webhook_secret() -> str:
    return "whsec_" + secrets.token_hex(24)


@dataclass
class SimulatorConfig:
    """Everything the simulator can be told. Mutable on purpose: tests flip knobs mid-run."""

    api_keys: frozenset[str] = frozenset({"sim-key"})
    render_s: tuple[float, float] = (0.0, 0.0)
    queue_s: float = 0.0
    time_scale: float = 1.0
    progression: Literal["time", "polls"] = "time"
    polls_to_processing: int = 1  # the n-th poll (1-based) that first shows "processing"
    polls_to_complete: int = 2  # the n-th poll that shows the terminal state
    concurrency_cap: int | None = None
    failure_rate: float = 0.0
    nsfw_rate: float = 0.0
    seed: int = 0
    output_ttl_s: float = 7 * 24 * 3600
    novita_output_ttl_s: float = 3600
    validation: Literal["http400", "task_failed"] = "http400"
    webhook_retries: int = 3  # retries after the first attempt (WaveSpeed; undocumented, 3p claim)
    novita_webhook_retries: int = 5  # Novita documents "retried up to 5 times"
    webhook_timeout_s: float = 5.0
    webhook_backoff_s: float = 1.0  # first retry delay, doubled per retry (simulated seconds)
    webhook_secret: str = field(default_factory=_new_webhook_secret)
    webhook_duplicate: bool = False  # deliver every successful webhook twice
    webhook_stale_timestamp: bool = False  # webhook-timestamp 1 hour in the past
    webhook_bad_signature: bool = False  # sign with the wrong key
    unknown_task_status: int = 404
    clip_mode: Literal["image", "static"] = "image"
    latency_s: float = 0.0
    sync_wait_s: float = 90.0  # WaveSpeed sync mode: server-side wait before code 5004
    sync_timeout_504: bool = False  # answer a sync-mode timeout with a gateway 504 instead
    upload_max_bytes: int = 20 * 1024 * 1024
    image_fetch_timeout_s: float = 10.0
    image_max_bytes: int = 30 * 1024 * 1024
    balance: float = 100.0
    request_log_max: int = 10_000  # bounded so 10k-task runs stay memory-light

    def __post_init__(self) -> None:
        problems = []
        low, high = self.render_s
        if not 0 <= low <= high:
            problems.append(f"render_s must be (low, high), 0 <= low <= high, not {self.render_s}")
        if self.queue_s < 0 or self.time_scale <= 0:
            problems.append("queue_s must be >= 0 and time_scale > 0")
        if self.progression not in ("time", "polls"):
            problems.append(f"progression must be 'time' or 'polls', got {self.progression!r}")
        if self.clip_mode not in ("image", "static"):
            problems.append(f"clip_mode must be 'image' or 'static', got {self.clip_mode!r}")
        if self.validation not in ("http400", "task_failed"):
            problems.append(f"validation must be http400 or task_failed, not {self.validation!r}")
        if self.concurrency_cap is not None and self.concurrency_cap < 1:
            problems.append("concurrency_cap must be None or >= 1")
        if not (0 <= self.failure_rate <= 1 and 0 <= self.nsfw_rate <= 1):
            problems.append("failure_rate and nsfw_rate must be within 0..1")
        if problems:
            raise ValueError("; ".join(problems))

    def __repr__(self) -> str:  # keys and the webhook secret stay out of logs
        return f"SimulatorConfig(progression={self.progression!r}, clip_mode={self.clip_mode!r})"

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a JSON patch of knobs (the control API); unknown names are refused."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown config fields {unknown}; known: {sorted(known)}")
        converted = dict(changes)
        if "api_keys" in converted:
            converted["api_keys"] = frozenset(converted["api_keys"])
        if "render_s" in converted:
            converted["render_s"] = tuple(converted["render_s"])
        replace(self, **converted)  # validates the result before anything changes
        for name, value in converted.items():
            setattr(self, name, value)


@dataclass(frozen=True)
class Outcome:
    """A task's fate. `error` doubles as Novita's `task.reason`."""

    status: Literal["completed", "failed", "cancelled", "timeout", "deleted"] = "completed"
    code: int | None = None
    error: str = ""
    nsfw: bool = False

    def __post_init__(self) -> None:
        if self.status not in TERMINAL_STATUSES:
            raise ValueError(
                f"outcome status must be one of {sorted(TERMINAL_STATUSES)}, got {self.status!r}"
            )
        if self.status != "completed":
            code = self.code if self.code is not None else 5000
            object.__setattr__(self, "code", code)
            if not self.error:
                default = DEFAULT_ERRORS.get(code, "task failed")
                object.__setattr__(self, "error", f"{self.status}: {default}")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Outcome:
        return cls(**_only(cls, data))


@dataclass
class Fault:
    """A scripted answer for the next `times` requests matching method and path prefix.

    With `status` None the request is only delayed (`delay_s`) and then served normally.
    `drop_connection` closes the socket without any response. `after_handler` runs the real
    handler first (so a submit really creates its task) and then replaces or drops the answer:
    the "submitted but the reply was lost" case that must never cause a double charge.
    In-process tests may pass `reached` (set when a request takes the fault) and `hold` (the
    request waits until it is set): a request in flight for exactly as long as a test needs.
    """

    method: str = "*"
    path_prefix: str = "/"
    times: int = 1
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None
    body: str | None = None
    drop_connection: bool = False
    delay_s: float = 0.0
    after_handler: bool = False
    reached: asyncio.Event | None = field(default=None, repr=False, compare=False)
    hold: asyncio.Event | None = field(default=None, repr=False, compare=False)

    def matches(self, method: str, path: str) -> bool:
        return (
            self.times > 0
            and (self.method == "*" or self.method.upper() == method.upper())
            and path.startswith(self.path_prefix)
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fault:
        return cls(**_only(cls, data))


def _only(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown fields {unknown}; known: {sorted(known)}")
    return data
