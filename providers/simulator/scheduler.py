"""One timer heap served by one asyncio task.

Task completions and webhook retries are due at points in (simulated) time. Thousands of
tasks must not mean thousands of sleeping coroutines, so every timed event is a heap entry and
request handlers also run whatever is due (`run_due`) before they answer: a poll never sees
a state older than the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._heap)

    def call_at(self, when: float, fn: Callable[[], None]) -> None:
        earliest = self._heap[0][0] if self._heap else None
        heapq.heappush(self._heap, (when, next(self._seq), fn))
        if earliest is None or when < earliest:
            self._wake.set()

    def poke(self) -> None:
        """The clock jumped (advance_clock): re-check what is due."""
        self._wake.set()

    def run_due(self) -> int:
        ran = 0
        while self._heap and self._heap[0][0] <= self._clock():
            _, _, fn = heapq.heappop(self._heap)
            ran += 1
            try:
                fn()
            except Exception:  # one bad callback must not stop the timeline
                log.exception("simulator scheduled callback failed")
        return ran

    def clear(self) -> None:
        self._heap.clear()

    def start(self) -> None:
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None

    async def _loop(self) -> None:
        while True:
            self.run_due()
            self._wake.clear()
            timeout = None
            if self._heap:
                timeout = max(0.0, self._heap[0][0] - self._clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
