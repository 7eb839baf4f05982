"""The one money module: exact conversion, bounded amounts, one format for people and one
for scripts."""

from __future__ import annotations

from decimal import Decimal

import pytest

from providers.money import MAX_MICROS, format_usd, usd_string, usd_to_micros


@pytest.mark.parametrize(
    ("usd", "micros"),
    [("0.40", 400_000), ("5", 5_000_000), ("0.000001", 1), (Decimal("19.99"), 19_990_000),
     ("$2.50", 2_500_000), (" 3 ", 3_000_000), ("1000000000", MAX_MICROS)],
)  # fmt: skip
def test_dollars_to_micros_is_exact(usd: str | Decimal, micros: int) -> None:
    assert usd_to_micros(usd) == micros


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0.0000001", "finer than one micro-dollar"),
        ("99999999999999999999", "more than the largest amount"),
        ("1000000000.000001", "more than the largest amount"),
        ("abc", "is not a dollar amount"),
        ("NaN", "is not a dollar amount"),
        ("Infinity", "is not a dollar amount"),
    ],
)
def test_bad_amounts_are_refused_not_rounded(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        usd_to_micros(value)


@pytest.mark.parametrize(
    ("micros", "people", "scripts"),
    [
        (400_000, "$0.40", "0.40"),
        (5_000_000, "$5.00", "5.00"),
        (1_234, "$0.001234", "0.001234"),
        (0, "$0.00", "0.00"),
        (-250_000, "-$0.25", "-0.25"),
    ],
)
def test_one_format_for_people_and_one_for_scripts(micros: int, people: str, scripts: str) -> None:
    assert format_usd(micros) == people
    assert usd_string(micros) == scripts
    assert usd_to_micros(scripts) == micros
