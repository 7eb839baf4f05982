"""Where a job's news goes: the platform adapters and the CLI each implement a `Sink`.

The runner finds a job's sink again after a restart from `job.sink["kind"]`, so a sink is
chosen by data stored with the job, never by an object that lived in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from providers.money import format_usd

log = logging.getLogger(__name__)

Stage = Literal["queued", "submitted", "processing", "slow"]


@dataclass(frozen=True)
class Progress:
    """A step on the way: `elapsed_s` since submission, `percent` when the provider says."""

    stage: Stage
    elapsed_s: float = 0.0
    percent: int | None = None


@dataclass(frozen=True)
class Clip:
    data: bytes
    filename: str
    content_type: str = "video/mp4"
    nsfw: bool = False


class Sink(Protocol):
    """Receives what a person should see about one job. Implementations must be idempotent
    for `deliver` on the same job (a crash between posting and recording can repeat it)."""

    async def progress(self, job: Any, update: Progress) -> None: ...

    async def deliver(self, job: Any, clip: Clip) -> str: ...

    async def failed(self, job: Any, message: str) -> None: ...


class SinkRegistry:
    """Sinks by kind; a job whose kind is unknown here falls back to `default`."""

    def __init__(self, sinks: Mapping[str, Sink] | None = None, default: Sink | None = None):
        self._sinks: dict[str, Sink] = dict(sinks or {})
        self._default = default or LogSink()

    def register(self, kind: str, sink: Sink) -> None:
        self._sinks[kind] = sink

    def get(self, kind: str) -> Sink | None:
        """The sink registered for `kind`, if any (a front door finds its own sink)."""
        return self._sinks.get(kind)

    def for_job(self, job: Any) -> Sink:
        return self._sinks.get(str(job.sink.get("kind", "")), self._default)


class LogSink:
    """Fallback: a job whose front door is not running in this process is logged, and its
    clip is kept on disk so nothing is lost (the adapter can post it when it runs): under
    `out_dir/<job id>/`, the layout of the kept-clip store (`bot/clips.py`), so the same
    retention purges it."""

    def __init__(self, out_dir: Path | None = None) -> None:
        self.out_dir = out_dir or Path("animate-out")

    async def progress(self, job: Any, update: Progress) -> None:
        log.info("job %s %s (%.0f s)", job.id, update.stage, update.elapsed_s)

    async def deliver(self, job: Any, clip: Clip) -> str:
        return str(write_clip(self.out_dir / job.id, job.id, clip))

    async def failed(self, job: Any, message: str) -> None:
        log.warning("job %s failed: %s", job.id, message)


def write_clip(out_dir: Path, job_id: str, clip: Clip) -> Path:
    """Write atomically under a name fixed by the job id, so a repeated delivery overwrites;
    the path returned (and recorded with the job) is absolute."""
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{job_id}.mp4"
    tmp = target.with_suffix(".mp4.part")
    tmp.write_bytes(clip.data)
    tmp.replace(target)
    return target


class FileSink:
    """The CLI's sink: writes the clip to the job's `dir` and tells a person what happens."""

    def __init__(self, say: Callable[[str], None], default_dir: Path = Path("animate-out")):
        self.say = say
        self.default_dir = default_dir
        self.delivered: dict[str, Path] = {}

    async def progress(self, job: Any, update: Progress) -> None:
        if update.stage == "queued":
            self.say(f"job {job.id}: reserved {format_usd(job.cost_micros)} for {job.model}")
        elif update.stage == "submitted":
            self.say(f"job {job.id}: submitted to {job.provider}")
        elif update.stage == "slow":
            self.say(f"job {job.id}: taking longer than usual ({update.elapsed_s:.0f} s)")
        else:
            pct = f", {update.percent}%" if update.percent is not None else ""
            self.say(f"job {job.id}: rendering ({update.elapsed_s:.0f} s{pct})")

    async def deliver(self, job: Any, clip: Clip) -> str:
        path = write_clip(Path(job.sink.get("dir") or self.default_dir), job.id, clip)
        self.delivered[job.id] = path
        self.say(f"job {job.id}: clip written to {path}")
        return str(path)

    async def failed(self, job: Any, message: str) -> None:
        self.say(f"job {job.id}: {message}")
