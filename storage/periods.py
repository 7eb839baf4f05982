"""UTC calendar periods, and how refusals write a moment.

Kept free of `bot` imports: storage must be usable (and testable) on its own.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import lru_cache

HOUR_S = 3600.0


def day_start(at: float) -> int:
    """Unix second of 00:00 UTC on the day containing `at`."""
    return int(at // 86400) * 86400


def month_start(at: float) -> int:
    """Unix second of 00:00 UTC on the first day of the month containing `at`."""
    return _month_of_day(day_start(at))


@lru_cache(maxsize=8)
def _month_of_day(day: int) -> int:
    # every reservation asks; the answer changes once a day
    d = datetime.fromtimestamp(day, UTC)
    return int(datetime(d.year, d.month, 1, tzinfo=UTC).timestamp())


def start_second(at: float) -> int:
    """The whole second a reservation made at `at` counts in for the hourly cap: rounded up,
    so that "started after now - 3600" never counts a start for less than the full hour."""
    return math.ceil(at)


def hour_start(at: float) -> int:
    """A start counts for the hourly cap at `at` when its second (`start_second`) is after
    this one: at_second > at - 3600, for whole seconds."""
    return math.floor(at - HOUR_S)


def next_day(start: int) -> int:
    return start + 86400


def next_month(start: int) -> int:
    d = datetime.fromtimestamp(start, UTC)
    year, month = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp())


def day_label(at: float) -> str:
    """'YYYY-MM-DD' (UTC) of the day containing `at`."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d")


def format_when(at: float, *, time_only: bool = False) -> str:
    d = datetime.fromtimestamp(at, UTC)
    return d.strftime("%H:%M UTC" if time_only else "%Y-%m-%d %H:%M UTC")
