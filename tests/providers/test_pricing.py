"""Exact prices for every model x duration x resolution, and the PRICE_OVERRIDES format.

Expectations come from the providers' published prices, written here independently as USD
strings and turned into micro-dollars with Decimal, never through the code under test.
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import pytest

from providers.catalog import CATALOG, get_model
from providers.pricing import (
    DEFAULT_PRICES,
    ModelUnavailable,
    PriceOverrideError,
    PriceTable,
    Quote,
    availability,
    format_usd,
)


def micros(usd: str) -> int:
    value = Decimal(usd) * 1_000_000
    assert value == value.to_integral_value()
    return int(value)


# Published per-second rates, billed seconds = min(max(d, 5), 20).
PER_SECOND = {
    "openvideo": {"480p": "0.02", "720p": "0.04", "1080p": "0.06"},
    "openvideo-lora": {"480p": "0.03", "720p": "0.05", "1080p": "0.07"},
}
SORA_PER_SECOND = "0.10"
WAN22_PER_CLIP = {5: "0.10", 8: "0.16"}


def published_cases() -> list[tuple[str, int, str | None, int, int | None]]:
    """(model, duration, resolution, cost_micros, billed_seconds) for every combination."""
    cases = []
    for model, rates in PER_SECOND.items():
        for duration in range(3, 21):
            for resolution, rate in rates.items():
                billed = min(max(duration, 5), 20)
                cases.append((model, duration, resolution, micros(rate) * billed, billed))
    for duration in (4, 8, 12, 16, 20):
        cases.append(("sora-2", duration, None, micros(SORA_PER_SECOND) * duration, duration))
    for duration, price in WAN22_PER_CLIP.items():
        cases.append(("wan-2.2-fast", duration, "480p", micros(price), None))
    return cases


def quote(model: str, table: PriceTable = DEFAULT_PRICES, **raw: Any) -> Quote:
    return table.quote(get_model(model).validate({"prompt": "a wave", **raw}))


@pytest.mark.parametrize(("model", "duration", "resolution", "cost", "billed"), published_cases())
def test_published_price(
    model: str, duration: int, resolution: str | None, cost: int, billed: int | None
) -> None:
    raw: dict[str, Any] = {"duration": duration}
    if resolution is not None:
        raw["resolution"] = resolution
    q = quote(model, **raw)
    assert (q.model, q.duration, q.resolution) == (model, duration, resolution)
    assert q.cost_micros == cost
    assert type(q.cost_micros) is int
    assert q.billed_seconds == billed
    assert q.source


def test_cases_cover_every_priced_combination() -> None:
    covered = {(m, d, r) for m, d, r, _, _ in published_cases()}
    expected = {
        (spec.id, d, r)
        for spec in CATALOG.values()
        if spec.id != "wan-2.1"
        for d, r in itertools.product(spec.durations, spec.resolutions or [None])
    }
    assert covered == expected


@pytest.mark.parametrize(
    ("model", "raw", "usd"),
    [
        ("openvideo", {"duration": 3, "resolution": "480p"}, "0.10"),  # 5 s minimum
        ("openvideo", {"duration": 20, "resolution": "1080p"}, "1.20"),
        ("openvideo-lora", {"duration": 8, "resolution": "720p"}, "0.40"),
        ("openvideo-lora", {"duration": 20, "resolution": "1080p"}, "1.40"),
        ("sora-2", {"duration": 4}, "0.40"),
        ("sora-2", {"duration": 20}, "2.00"),
        ("wan-2.2-fast", {"duration": 8}, "0.16"),
        ("wan-2.2-fast", {}, "0.10"),
    ],
)
def test_spot_prices(model: str, raw: dict[str, Any], usd: str) -> None:
    assert quote(model, **raw).cost_micros == micros(usd)


def test_basis_says_how_the_price_was_reached() -> None:
    assert quote("openvideo-lora", duration=8, resolution="720p").basis == "$0.05/s x 8 s at 720p"
    assert quote("sora-2", duration=8).basis == "$0.10/s x 8 s"
    short = quote("openvideo", duration=3).basis
    assert short.startswith("$0.02/s x 5 s at 480p") and "minimum" in short
    assert quote("wan-2.2-fast", duration=8).basis == "$0.16 per 8 s clip at 480p"


def test_sources_cite_the_documents() -> None:
    assert "https://wavespeed.ai/" in quote("openvideo").source
    assert "open-video-image-to-video" in quote("openvideo").source
    assert "open-video-image-to-video-lora" in quote("openvideo-lora").source
    assert "openai-sora-2-image-to-video" in quote("sora-2").source
    assert "i2v-480p-lora-ultra-fast" in quote("wan-2.2-fast").source


def test_wan21_has_no_default_price() -> None:
    assert not DEFAULT_PRICES.is_priced("wan-2.1")
    with pytest.raises(ModelUnavailable) as info:
        quote("wan-2.1")
    assert "PRICE_OVERRIDES" in str(info.value)
    assert info.value.model_id == "wan-2.1"


# --- overrides ---


@pytest.mark.parametrize(
    ("override", "res480", "res720"),
    [
        ("0.30", "0.30", "0.30"),
        (1, "1", "1"),
        ({"per_clip": "0.25"}, "0.25", "0.25"),
        ({"480p": "0.30", "720p": "0.45"}, "0.30", "0.45"),
        ({"per_clip": {"480p": "0.30", "720p": "0.45"}}, "0.30", "0.45"),
        ({"per_clip": {"480p/5s": "0.31", "*": "0.50"}}, "0.31", "0.50"),
        ({"per_second": "0.06"}, "0.30", "0.30"),
        ({"per_second": {"480p": "0.06", "720p": "0.09"}}, "0.30", "0.45"),
        ({"per_clip": "$0.123456"}, "0.123456", "0.123456"),
    ],
)
def test_wan21_override_forms(override: Any, res480: str, res720: str) -> None:
    table = PriceTable.with_overrides({"wan-2.1": override})
    assert table.is_priced("wan-2.1")
    assert quote("wan-2.1", table, resolution="480p").cost_micros == micros(res480)
    assert quote("wan-2.1", table, resolution="720p").cost_micros == micros(res720)
    # published rows survive an override of another model
    assert quote("sora-2", table, duration=8).cost_micros == micros("0.80")


def test_override_replaces_a_published_row_and_keeps_its_billing_rule() -> None:
    table = PriceTable.with_overrides(
        '{"openvideo": {"per_second": "0.05", "min_billed_s": 5, "max_billed_s": 10,'
        ' "source": "invoice 2026-11"}}'
    )
    assert quote("openvideo", table, duration=3).cost_micros == micros("0.25")
    assert quote("openvideo", table, duration=20).cost_micros == micros("0.50")
    assert quote("openvideo", table, duration=20).billed_seconds == 10
    assert quote("openvideo", table).source == "invoice 2026-11"
    # the default table is untouched
    assert quote("openvideo", duration=20).cost_micros == micros("0.40")


def test_override_by_duration_for_sora() -> None:
    table = PriceTable.with_overrides({"sora-2": {"per_clip": {"4s": "0.5", "*": "1"}}})
    assert quote("sora-2", table, duration=4).cost_micros == micros("0.5")
    assert quote("sora-2", table, duration=12).cost_micros == micros("1")
    assert quote("sora-2", table, duration=12).billed_seconds is None


def test_null_override_disables_a_model() -> None:
    table = PriceTable.with_overrides({"sora-2": None})
    assert not table.is_priced("sora-2")
    with pytest.raises(ModelUnavailable, match="turned off by PRICE_OVERRIDES"):
        quote("sora-2", table)


def test_empty_overrides_equal_the_published_table() -> None:
    for empty in ({}, None, "", "{}"):
        assert PriceTable.with_overrides(empty).rows == DEFAULT_PRICES.rows


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"wan-2.1": 0.3}, 'as a string such as "0.30"'),
        ({"wan-2.1": {"480p": 0.3, "720p": "1"}}, "not a number"),
        ({"wan-2.1": True}, "as a string"),
        ({"wan-2.1": "abc"}, "is not a USD amount"),
        ({"wan-2.1": "0"}, "more than $0"),
        ({"wan-2.1": "-0.30"}, "more than $0"),
        ({"wan-2.1": "NaN"}, "more than $0"),
        ({"wan-2.1": "0.0000001"}, "finer than a micro-dollar"),
        ({"wan2.1": "0.30"}, "unknown model 'wan2.1'"),
        ({"wan-2.1": {"480p": "0.30"}}, "no price for 720p 5 s"),
        ({"wan-2.1": {"4k": "0.30", "*": "1"}}, "price key '4k'"),
        ({"wan-2.1": {"480p/8s": "0.30", "*": "1"}}, "price key '480p/8s'"),
        ({"sora-2": {"per_clip": {"720p": "1"}}}, "price key '720p'"),
        ({"wan-2.1": {"per_clip": "1", "per_second": "1"}}, "exactly one of"),
        ({"wan-2.1": {"per_clip": "1", "bogus": 1}}, "unknown keys bogus"),
        ({"wan-2.1": {"per_clip": {}}}, "empty"),
        ({"wan-2.1": {"per_clip": "1", "min_billed_s": 5}}, "only apply to per_second"),
        ({"sora-2": {"per_second": "1", "min_billed_s": "5"}}, "whole number of seconds"),
        ({"sora-2": {"per_second": "1", "min_billed_s": 9, "max_billed_s": 8}}, "more than max"),
        ({"sora-2": {"per_second": "1", "source": 5}}, "source must be text"),
        ('{"wan-2.1": ', "not valid JSON"),
        ('["wan-2.1"]', "must be a JSON object"),
    ],
)
def test_bad_overrides_are_refused(overrides: Any, fragment: str) -> None:
    with pytest.raises(PriceOverrideError) as info:
        PriceTable.with_overrides(overrides)
    assert fragment in str(info.value)
    assert str(info.value).startswith("PRICE_OVERRIDES: ")


def test_bad_overrides_report_every_problem() -> None:
    with pytest.raises(PriceOverrideError) as info:
        PriceTable.with_overrides({"nope": "1", "wan-2.1": 0.5, "sora-2": "-1"})
    assert len(info.value.problems) == 3


# --- availability ---


@pytest.mark.parametrize(
    ("model", "ws", "nv", "priced_wan", "enabled", "fragments"),
    [
        ("openvideo", True, False, False, True, []),
        ("openvideo", False, True, False, False, ["WAVESPEED_API_KEY"]),
        ("sora-2", False, False, False, False, ["WAVESPEED_API_KEY"]),
        ("wan-2.2-fast", True, True, True, True, []),
        ("wan-2.1", True, True, False, False, ["PRICE_OVERRIDES"]),
        ("wan-2.1", True, False, True, False, ["NOVITA_API_KEY"]),
        ("wan-2.1", False, False, False, False, ["NOVITA_API_KEY", "PRICE_OVERRIDES"]),
        ("wan-2.1", False, True, True, True, []),
    ],
)
def test_availability(
    model: str, ws: bool, nv: bool, priced_wan: bool, enabled: bool, fragments: list[str]
) -> None:
    table = PriceTable.with_overrides({"wan-2.1": "0.30"} if priced_wan else {})
    ok, reason = availability(get_model(model), table, has_wavespeed_key=ws, has_novita_key=nv)
    assert ok is enabled
    assert (reason == "") is enabled
    for fragment in fragments:
        assert fragment in reason


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (400_000, "$0.40"),
        (1_234, "$0.001234"),
        (2_000_000, "$2.00"),
        (0, "$0.00"),
        (-50, "-$0.00005"),
    ],
)
def test_format_usd(amount: int, text: str) -> None:
    assert format_usd(amount) == text
