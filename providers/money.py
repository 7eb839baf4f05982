"""Money, the one module for it: integer micro-dollars, and the two ways they are written.

Everything that holds an amount holds an `int` of micro-dollars (1 USD = 1,000,000), so
per-second prices and fractional prices stay exact and no float ever touches money. People
read `format_usd` ("$0.40"); scripts read `usd_string` ("0.40", beside the integer).

It lives in `providers/` because prices are born there (published in dollars, converted
once), and because `providers/__init__` is empty: `storage/` and `bot/` import it without
pulling in a database driver or an HTTP stack. It imports nothing of ours.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import Final

MICROS_PER_USD: Final = 1_000_000
# The largest amount an operator may write anywhere (a cap, a price): one billion dollars.
# Far above any real cap, and far below where sums of holds could overflow a BIGINT.
MAX_USD: Final = Decimal(1_000_000_000)
MAX_MICROS: Final = int(MAX_USD) * MICROS_PER_USD


def usd_to_micros(value: Decimal | str | int) -> int:
    """Exact dollars -> micro-dollars; refuses sub-micro precision rather than rounding.

    Raises ValueError for anything that is not a finite amount of at most `MAX_USD`.
    """
    try:
        usd = Decimal(str(value).strip().removeprefix("$"))
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a dollar amount") from None
    if not usd.is_finite():
        raise ValueError(f"{value!r} is not a dollar amount")
    if abs(usd) > MAX_USD:
        raise ValueError(f"{value} USD is more than the largest amount allowed ($1,000,000,000)")
    micros = usd * MICROS_PER_USD
    if micros != micros.to_integral_value():
        raise ValueError(f"{value} USD is finer than one micro-dollar")
    return int(micros)


def usd_to_micros_floor(usd: Decimal) -> int:
    """Dollars -> micro-dollars rounded down, for amounts we only report (a wallet balance)."""
    return int((usd * MICROS_PER_USD).to_integral_value(rounding=ROUND_FLOOR))


def usd_string(micros: int) -> str:
    """The dollar string scripts read, beside the integer: 400000 -> "0.40", 1234 -> "0.001234"."""
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(micros), MICROS_PER_USD)
    return f"{sign}{whole}.{f'{frac:06d}'.rstrip('0').ljust(2, '0')}"


def format_usd(micros: int) -> str:
    """Dollars for people: 400000 -> "$0.40", 1234 -> "$0.001234", -250000 -> "-$0.25"."""
    text = usd_string(micros)
    return f"-${text[1:]}" if text.startswith("-") else f"${text}"
