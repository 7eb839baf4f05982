"""The polling policy, as a table."""

from __future__ import annotations

import random

import pytest

from bot.schedule import error_backoff, first_poll_delay, next_poll_delay


@pytest.mark.parametrize(
    ("typical", "provider", "expected"),
    [
        (60.0, "wavespeed", 30.0),
        (4.0, "wavespeed", 5.0),
        (4.0, "novita", 3.0),
        (100.0, "novita", 50.0),
    ],
)
def test_first_poll_waits_half_the_typical_render(
    typical: float, provider: str, expected: float
) -> None:
    assert first_poll_delay(typical, provider) == expected


@pytest.mark.parametrize(
    ("elapsed", "low", "high"),
    [
        (0.0, 30.0, 30.0),  # before the first poll: wait for it
        (10.0, 20.0, 20.0),
        (28.0, 5.0, 5.0),  # polled early: never sooner than the floor
        (30.0, 6.375, 8.625),  # a quarter of the elapsed time, +-15 %
        (100.0, 21.25, 28.75),
        (1000.0, 51.0, 69.0),  # capped at 60 s
    ],
)
def test_gaps_grow_with_elapsed_time(elapsed: float, low: float, high: float) -> None:
    rng = random.Random(1)
    for _ in range(200):
        delay = next_poll_delay(elapsed, typical_render_s=60.0, provider="wavespeed", rng=rng)
        assert low <= delay <= high


def test_never_below_the_provider_floor() -> None:
    rng = random.Random(2)
    delays = [
        next_poll_delay(e, typical_render_s=1.0, provider="wavespeed", rng=rng)
        for e in range(0, 30)
    ]
    assert min(delays) >= 5.0


def test_polls_per_job_stay_few_for_long_renders() -> None:
    """A 120 s render is followed with about ten polls, not 120."""
    rng = random.Random(3)
    t, polls = 0.0, 0
    while t < 120.0:
        t += next_poll_delay(t, typical_render_s=60.0, provider="wavespeed", rng=rng)
        polls += 1
    assert polls <= 12


@pytest.mark.parametrize(
    ("attempt", "low", "high"), [(0, 3.75, 5.0), (2, 15.0, 20.0), (10, 225.0, 300.0)]
)
def test_error_backoff(attempt: int, low: float, high: float) -> None:
    assert low <= error_backoff(attempt, rng=random.Random(4)) <= high
