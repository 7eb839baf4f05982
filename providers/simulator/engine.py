"""Task lifecycle: outcomes, lazily computed status, the concurrency cap.

Status is computed from timestamps (progression "time") or poll counts (progression "polls")
when someone asks, so an idle task costs a dict entry and at most one heap entry. A task
*finishes* (status frozen, slot released, webhook sent) exactly once, through `finish`.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from providers.simulator.config import Outcome, SimulatorConfig
from providers.simulator.scheduler import Scheduler


def iso_now_ns(unix_ns: int) -> str:
    """ISO-8601 UTC with nanoseconds, like WaveSpeed's `2025-09-25T09:12:48.239112031Z`."""
    secs, nanos = divmod(unix_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{nanos:09d}Z"


@dataclass(eq=False, slots=True)
class SimTask:
    """One submitted task. `status` is live (computed now); `final_status` is set once finished."""

    id: str
    provider: str  # "wavespeed" | "novita"
    model: str  # WaveSpeed model path, or "wan-i2v"
    input: dict[str, Any]
    created_at: str
    submitted_at: float  # simulator clock
    outcome: Outcome
    render_wall_s: float
    queue_wall_s: float
    webhook_url: str | None = None
    base64_output: bool = False
    clip_seconds: float = 5.0
    started_at: float | None = None  # got a concurrency slot
    holds_slot: bool = False
    polls: int = 0  # every GET of this task
    active_polls: int = 0  # GETs since it got its slot (progression "polls")
    final_status: str | None = None
    finished_at: float | None = None
    output_expires_at: float | None = None  # unix seconds (simulator clock)
    image_bytes: bytes | None = None
    fetch: asyncio.Future[None] | None = None
    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    _engine: Engine | None = field(default=None, repr=False)

    @property
    def status(self) -> str:
        assert self._engine is not None
        return self._engine.status_of(self)

    @property
    def terminal(self) -> bool:
        return self.final_status is not None

    @property
    def inference_ms(self) -> int:
        return max(1, round(self.render_wall_s * 1000))

    def _finished_unix(self) -> float | None:
        if self.finished_at is None or self._engine is None:
            return None
        return self.finished_at - self._engine.now() + self._engine.unix_now()

    def summary(self) -> dict[str, Any]:
        assert self._engine is not None
        return {
            "id": self.id,
            "provider": self.provider,
            "model": self.model,
            "status": self.status,
            "input": self.input,
            "polls": self.polls,
            "webhook_url": self.webhook_url,
            # For benchmarks: the render time in simulated seconds, and when the task
            # finished on the wall clock (None while it runs).
            "render_s": self.render_wall_s / self._engine.config.time_scale,
            "finished_at_unix": self._finished_unix(),
            "outcome": {"status": self.outcome.status, "code": self.outcome.code,
                        "error": self.outcome.error, "nsfw": self.outcome.nsfw},
        }


class Engine:
    def __init__(self, config: SimulatorConfig, on_finish: Callable[[SimTask], None]) -> None:
        self.config = config
        self._on_finish = on_finish
        self._offset = 0.0
        self.scheduler = Scheduler(self.now)
        self.tasks: dict[str, SimTask] = {}
        self.rng = random.Random(config.seed)
        self.next_outcomes: deque[Outcome] = deque()
        self._running = 0
        self._waiting: deque[SimTask] = deque()

    # --- clocks -------------------------------------------------------------------------
    def now(self) -> float:
        return asyncio.get_running_loop().time() + self._offset

    def unix_now(self) -> float:
        return time.time() + self._offset

    def advance_clock(self, seconds: float) -> None:
        """Jump the simulator clock forward (wall seconds): deterministic time for tests."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._offset += seconds
        self.scheduler.run_due()
        self.scheduler.poke()

    def reset(self) -> None:
        self.tasks.clear()
        self.next_outcomes.clear()
        self._waiting.clear()
        self._running = 0
        self.scheduler.clear()
        self.rng = random.Random(self.config.seed)

    # --- creation -----------------------------------------------------------------------
    def create(
        self,
        provider: str,
        model: str,
        body: dict[str, Any],
        *,
        task_id: str | None = None,
        webhook_url: str | None = None,
        base64_output: bool = False,
        clip_seconds: float = 5.0,
        forced: Outcome | None = None,
    ) -> SimTask:
        cfg = self.config
        outcome = forced or self._decide_outcome()
        low, high = cfg.render_s
        render = (low if low == high else self.rng.uniform(low, high)) * cfg.time_scale
        task = SimTask(
            id=task_id or uuid.uuid4().hex,
            provider=provider,
            model=model,
            input=body,
            created_at=iso_now_ns(int(self.unix_now() * 1e9)),
            submitted_at=self.now(),
            outcome=outcome,
            render_wall_s=render,
            queue_wall_s=cfg.queue_s * cfg.time_scale,
            webhook_url=webhook_url,
            base64_output=base64_output,
            clip_seconds=clip_seconds,
            _engine=self,
        )
        self.tasks[task.id] = task
        if forced is not None:  # refused at validation (mode "task_failed"): fails at once
            self.finish(task, forced)
        elif self._capped(task) and self._running >= (cfg.concurrency_cap or 0):
            self._waiting.append(task)
        else:
            self._start(task, task.submitted_at)
        return task

    def _decide_outcome(self) -> Outcome:
        if self.next_outcomes:
            return self.next_outcomes.popleft()
        if self.config.failure_rate and self.rng.random() < self.config.failure_rate:
            return Outcome(status="failed", code=5000)
        nsfw = bool(self.config.nsfw_rate) and self.rng.random() < self.config.nsfw_rate
        return Outcome(nsfw=nsfw)

    def _capped(self, task: SimTask) -> bool:
        # The cap models WaveSpeed's account tier; Novita limits by RPM only (fault injection).
        return self.config.concurrency_cap is not None and task.provider == "wavespeed"

    def _start(self, task: SimTask, at: float) -> None:
        task.started_at = at
        if self._capped(task):
            task.holds_slot = True
            self._running += 1
        if self.config.progression == "time":
            due = at + task.queue_wall_s + task.render_wall_s
            self.scheduler.call_at(due, lambda: self._finish_natural(task, due))

    # --- progression --------------------------------------------------------------------
    def status_of(self, task: SimTask) -> str:
        if task.final_status is not None:
            return task.final_status
        if task.started_at is None:
            return "created"
        if self.config.progression == "polls":
            if task.active_polls >= max(1, self.config.polls_to_processing):
                return "processing"
            return "created" if self.config.polls_to_processing > 0 else "processing"
        return "created" if self.now() < task.started_at + task.queue_wall_s else "processing"

    def record_poll(self, task: SimTask) -> None:
        """A GET of the task: counts, and in progression "polls" may move it along."""
        self.scheduler.run_due()
        task.polls += 1
        if task.terminal or task.started_at is None:
            return
        task.active_polls += 1
        cfg = self.config
        if cfg.progression == "polls" and task.active_polls >= cfg.polls_to_complete:
            self._finish_natural(task, self.now())

    def progress(self, task: SimTask) -> tuple[int, int]:
        """(progress_percent, eta seconds) for Novita's task block."""
        if task.terminal:
            return 100, 0
        if task.started_at is None or self.status_of(task) == "created":
            return 0, round((task.queue_wall_s + task.render_wall_s) / self.config.time_scale)
        if self.config.progression == "polls":
            return 50, 1
        begun = task.started_at + task.queue_wall_s
        left = max(0.0, begun + task.render_wall_s - self.now())
        done = 1 - left / task.render_wall_s if task.render_wall_s else 1.0
        return min(99, int(done * 100)), round(left / self.config.time_scale)

    # --- finishing ----------------------------------------------------------------------
    def _finish_natural(self, task: SimTask, at: float) -> None:
        if task.terminal:
            return
        if task.fetch is not None and not task.fetch.done():
            # The provider cannot finish before it has the input image.
            task.fetch.add_done_callback(lambda _f: self._finish_natural(task, at))
            return
        self.finish(task, None, at)

    def finish(
        self, task: SimTask, outcome: Outcome | None = None, at: float | None = None
    ) -> bool:
        """Freeze the task's fate. Returns False when it was already terminal (no webhook)."""
        if outcome is not None:
            task.outcome = outcome
        if task.terminal:
            task.final_status = task.outcome.status
            return False
        at = self.now() if at is None else at
        task.final_status = task.outcome.status
        task.finished_at = at
        if task.outcome.status == "completed":
            ttl = self.config.output_ttl_s if task.provider == "wavespeed" else (
                self.config.novita_output_ttl_s)
            task.output_expires_at = self.unix_now() + ttl
        self._release(task, at)
        for waiter in task.waiters:
            if not waiter.done():
                waiter.set_result(None)
        task.waiters.clear()
        self._on_finish(task)
        return True

    def _release(self, task: SimTask, at: float) -> None:
        if not task.holds_slot:
            return
        task.holds_slot = False
        self._running -= 1
        cap = self.config.concurrency_cap or 0
        while self._waiting and self._running < cap:
            nxt = self._waiting.popleft()
            if not nxt.terminal:
                self._start(nxt, max(at, nxt.submitted_at))

    def expire_outputs(self) -> None:
        past = self.unix_now() - 1
        for task in self.tasks.values():
            if task.output_expires_at is not None:
                task.output_expires_at = past
