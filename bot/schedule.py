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
    "wavespeed": 5.0,  # "at least 5 s between checks": https://wavespeed.ai/docs/get-result
    "novita": 3.0,  # no documented floor; be gentle
}
MAX_POLL_INTERVAL_S = 60.0
SLOW_POLL_INTERVAL_S = 300.0  # past the deadline: still following, rarely
GROWTH = 0.25
JITTER = 0.15
# With a callback URL the provider says when the clip is done and polling is only the safety
# net for a callback that never comes: first look at twice the typical render time, then
# every half of the time spent, between 1 and 10 minutes.
CALLBACK_FIRST_FACTOR = 2.0
CALLBACK_GROWTH = 0.5
CALLBACK_MIN_INTERVAL_S = 60.0
CALLBACK_MAX_INTERVAL_S = 600.0


def min_interval(provider: str) -> float:
    return MIN_POLL_INTERVAL_S.get(provider, 5.0)


def first_poll_delay(typical_render_s: float, provider: str, *, callback: bool = False) -> float:
    if callback:
        return max(CALLBACK_MIN_INTERVAL_S, CALLBACK_FIRST_FACTOR * typical_render_s)
    return max(min_interval(provider), 0.5 * typical_render_s)


def next_poll_delay(
    elapsed_s: float,
    *,
    typical_render_s: float,
    provider: str,
    rng: random.Random,
    callback: bool = False,
) -> float:
    """Seconds until the next poll of a task submitted `elapsed_s` ago (`callback`: the
    provider was given a callback URL, so this poll is only the safety net)."""
    floor = CALLBACK_MIN_INTERVAL_S if callback else min_interval(provider)
    first = first_poll_delay(typical_render_s, provider, callback=callback)
    if elapsed_s < first:  # polled early (a webhook nudge, a take-over): still keep the floor
        return max(floor, first - elapsed_s)
    if callback:
        gap = min(CALLBACK_MAX_INTERVAL_S, max(floor, CALLBACK_GROWTH * elapsed_s))
    else:
        gap = min(MAX_POLL_INTERVAL_S, max(floor, GROWTH * elapsed_s))
    return max(floor, gap * rng.uniform(1 - JITTER, 1 + JITTER))


def error_backoff(
    attempt: int, *, rng: random.Random, base_s: float = 5.0, cap_s: float = 300.0
) -> float:
    """After a failed poll or delivery: exponential with jitter, capped."""
    return min(cap_s, base_s * 2 ** max(0, attempt)) * rng.uniform(0.75, 1.0)
