"""The operator's default caps, from settings to the ledger's terms (micro-dollars).

Below both the composition root and the front doors: `bot/app.py` opens the ledger with
these defaults, and `limits show` prints them.
"""

from __future__ import annotations

from decimal import Decimal

from bot.config import Settings
from providers.money import usd_to_micros
from storage import LimitDefaults, Limits


def _money(value: Decimal | None) -> int | None:
    return None if value is None else usd_to_micros(value)


def limit_defaults(settings: Settings) -> LimitDefaults:
    """The caps from settings, used wherever the database holds no override."""
    return LimitDefaults(
        user=Limits(
            daily_micros=_money(settings.user_daily_cap_usd),
            monthly_micros=_money(settings.user_monthly_cap_usd),
            concurrent_jobs=settings.user_concurrent_jobs,
            jobs_per_hour=settings.user_jobs_per_hour,
        ),
        server=Limits(
            daily_micros=_money(settings.server_daily_cap_usd),
            monthly_micros=_money(settings.server_monthly_cap_usd),
            concurrent_jobs=settings.server_concurrent_jobs,
            jobs_per_hour=settings.server_jobs_per_hour,
        ),
        global_=Limits(
            daily_micros=_money(settings.global_daily_cap_usd),
            monthly_micros=_money(settings.global_monthly_cap_usd),
            concurrent_jobs=settings.global_concurrent_jobs,
            jobs_per_hour=settings.global_jobs_per_hour,
        ),
    )
