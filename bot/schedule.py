"""When to look at a job next: pure functions, so the policy is tested with tables.

Polling cost must grow gently with the number of in-flight jobs. The first poll waits for
about half the model's typical render time; after that the gap grows with the time already
spent (a quarter of it), so a clip that finishes is noticed within ~12% of its render time
on average, while a slow clip costs only a few more requests. Never below the provider's
guidance (WaveSpeed asks for at least 5 s between polls of a video task).
"""

from __future__ import annotations

import random

MIN_POLL_INTERVAL_S: dict[str, float] = {
    "wavespeed": 5.0,  # PROVIDERS.md §1.1 "Polling guidance" [D-result]
    "novita": 3.0,  # no documented floor; be gentle
}
MAX_POLL_INTERVAL_S = 60.0
SLOW_POLL_INTERVAL_S = 300.0  # past the deadline: still following, rarely
GROWTH = 0.25
JITTER = 0.15


def min_interval(provider: str) -> float:
    return MIN_POLL_INTERVAL_S.get(provider, 5.0)


def first_poll_delay(typical_render_s: float, provider: str) -> float:
    return max(min_interval(provider), 0.5 * typical_render_s)


def next_poll_delay(
    elapsed_s: float, *, typical_render_s: float, provider: str, rng: random.Random
) -> float:
    """Seconds until the next poll of a task submitted `elapsed_s` ago."""
    floor = min_interval(provider)
    first = first_poll_delay(typical_render_s, provider)
    if elapsed_s < first:  # polled early (a webhook nudge, a take-over): still keep the floor
        return max(floor, first - elapsed_s)
    gap = min(MAX_POLL_INTERVAL_S, max(floor, GROWTH * elapsed_s))
    return max(floor, gap * rng.uniform(1 - JITTER, 1 + JITTER))


def error_backoff(
    attempt: int, *, rng: random.Random, base_s: float = 5.0, cap_s: float = 300.0
) -> float:
    """After a failed poll or delivery: exponential with jitter, capped."""
    return min(cap_s, base_s * 2 ** max(0, attempt)) * rng.uniform(0.75, 1.0)
