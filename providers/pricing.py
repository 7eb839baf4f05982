"""Exact prices in integer micro-dollars (1 USD = 1_000_000), one table for every model.

The published prices (each row cites the provider's page) are written below as *data* in
the same JSON shape the operator uses in `PRICE_OVERRIDES`, and parsed by the same code, through
`Decimal`, so no float ever touches money. A model without a price is disabled, never free.

PRICE_OVERRIDES (a JSON object; one entry per model id; an entry replaces that model's whole
row, it is not merged with the published one). USD amounts are strings (or whole numbers):

    {"wan-2.1": "0.30"}                                   flat per clip
    {"wan-2.1": {"480p": "0.30", "720p": "0.45"}}         per clip, by resolution
    {"wan-2.1": {"per_clip": {"480p": "0.30", "720p": "0.45"}, "source": "Novita invoice"}}
    {"sora-2": {"per_second": "0.12"}}                    per second of the clip
    {"openvideo": {"per_second": {"480p": "0.02", "720p": "0.04", "1080p": "0.06"},
                   "min_billed_s": 5, "max_billed_s": 20}}
    {"sora-2": null}                                      turn a model off

Price keys: "*" (any), a resolution ("720p"), a duration ("8s") or both ("720p/8s"); the
most specific key wins. Every duration x resolution the model offers must end up priced,
and each amount must be positive and exact to the micro-dollar; anything else is refused
with a `PriceOverrideError` that says what to fix.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict

from providers.catalog import CATALOG, ModelSpec
from providers.money import MAX_USD, MICROS_PER_USD, format_usd, usd_string
from providers.params import AnimateParams

_TRANSCRIBED: Final = "as published on 2026-11-22"
OVERRIDE_HINT: Final = (
    "set PRICE_OVERRIDES to the price you are billed, e.g. "
    'PRICE_OVERRIDES=\'{"wan-2.1": {"480p": "<USD per clip>", "720p": "<USD per clip>"}}\''
)

# The published prices. Each row cites the provider's public page it was read from.
PUBLISHED_PRICES: Final[Mapping[str, Any]] = MappingProxyType(
    {
        "openvideo": {
            "per_second": {"480p": "0.02", "720p": "0.04", "1080p": "0.06"},
            "min_billed_s": 5,
            "max_billed_s": 20,
            "source": "WaveSpeed, https://wavespeed.ai/docs/docs-api/wavespeed-ai/"
            f"open-video-image-to-video ({_TRANSCRIBED})",
        },
        "openvideo-lora": {
            "per_second": {"480p": "0.03", "720p": "0.05", "1080p": "0.07"},
            "min_billed_s": 5,
            "max_billed_s": 20,
            "source": "WaveSpeed, https://wavespeed.ai/docs/docs-api/wavespeed-ai/"
            f"open-video-image-to-video-lora ({_TRANSCRIBED})",
        },
        "sora-2": {
            "per_second": "0.10",
            "source": "WaveSpeed, https://wavespeed.ai/docs/docs-api/openai/"
            f"openai-sora-2-image-to-video ({_TRANSCRIBED})",
        },
        "wan-2.2-fast": {
            "per_clip": {"5s": "0.10", "8s": "0.16"},
            "source": "WaveSpeed model page wavespeed-ai/wan-2.2/i2v-480p-lora-ultra-fast, "
            "https://wavespeed.ai/models/wavespeed-ai/wan-2.2/i2v-480p-lora-ultra-fast "
            f"({_TRANSCRIBED})",
        },
        # "wan-2.1": Novita publishes no price; the operator must set one (see OVERRIDE_HINT).
    }
)


class PriceOverrideError(ValueError):
    """PRICE_OVERRIDES is malformed; `problems` says each thing to fix."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("PRICE_OVERRIDES: " + "; ".join(self.problems))


class ModelUnavailable(Exception):
    """The model cannot be run: no price (or no key). The message tells the operator the fix."""

    def __init__(self, model_id: str, reason: str) -> None:
        self.model_id = model_id
        self.reason = reason
        super().__init__(reason)


class Quote(BaseModel):
    """The exact price of one request; `cost_micros` is what is held and then settled."""

    model_config = ConfigDict(frozen=True)

    model: str
    cost_micros: int
    billed_seconds: int | None  # None when the price is per clip
    resolution: str | None
    duration: int
    basis: str  # e.g. "$0.05/s x 8 s at 720p"
    source: str


@dataclass(frozen=True)
class PriceRow:
    """One model's price. `amounts` maps a price key ("*", "720p", "8s", "720p/8s") to micros."""

    model: str
    unit: Literal["second", "clip"]
    amounts: Mapping[str, int]
    min_billed_s: int | None = None
    max_billed_s: int | None = None
    source: str = ""

    def amount_for(self, resolution: str | None, duration: int) -> int | None:
        keys = [f"{duration}s", "*"]
        if resolution is not None:
            keys = [f"{resolution}/{duration}s", keys[0], resolution, "*"]
        for key in keys:
            if key in self.amounts:
                return self.amounts[key]
        return None

    def billed_seconds(self, duration: int) -> int:
        seconds = max(duration, self.min_billed_s or 0)
        return min(seconds, self.max_billed_s) if self.max_billed_s else seconds

    def describe(self) -> str:
        """The price in words: "$0.02/s at 480p; at least 5 s billed", "$0.10 per 5 s clip"."""
        parts = []
        for key, micros in self.amounts.items():
            res, _, dur = key.rpartition("/") if "/" in key else ("", "", key)
            if dur.endswith("s") and dur[:-1].isdigit():
                seconds = dur[:-1]
            else:
                res, seconds = ("" if dur == "*" else dur), ""
            at = f" at {res}" if res else ""
            if self.unit == "second":
                parts.append(
                    f"{format_usd(micros)}/s{at}" + (f" for {seconds} s" if seconds else "")
                )
            else:
                clip = f"{seconds} s clip" if seconds else "clip"
                parts.append(f"{format_usd(micros)} per {clip}{at}")
        text = ", ".join(parts)
        if self.min_billed_s:
            text += f"; at least {self.min_billed_s} s billed"
        if self.max_billed_s:
            text += f"; at most {self.max_billed_s} s billed"
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "amounts_micros": dict(self.amounts),
            "amounts_usd": {key: usd_string(micros) for key, micros in self.amounts.items()},
            "min_billed_s": self.min_billed_s,
            "max_billed_s": self.max_billed_s,
            "source": self.source,
        }


@dataclass(frozen=True)
class PriceTable:
    """The one price table: published rows, then the operator's overrides on top."""

    rows: Mapping[str, PriceRow]
    disabled: frozenset[str] = field(default_factory=frozenset)  # turned off by an override

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> PriceTable:
        rows, disabled = _parse_table(data, default_source="")
        return cls(MappingProxyType(rows), frozenset(disabled))

    @classmethod
    def with_overrides(cls, overrides: Mapping[str, Any] | str | None) -> PriceTable:
        """The published prices with `overrides` (Settings.price_overrides) applied."""
        if isinstance(overrides, str):
            try:
                overrides = json.loads(overrides) if overrides.strip() else {}
            except json.JSONDecodeError as exc:
                raise PriceOverrideError([f"not valid JSON ({exc.msg})"]) from None
        if overrides is None:
            overrides = {}
        if not isinstance(overrides, Mapping):
            raise PriceOverrideError(['must be a JSON object such as {"wan-2.1": "0.30"}'])
        rows, disabled = _parse_table(overrides, default_source="PRICE_OVERRIDES (operator)")
        merged = {k: v for k, v in DEFAULT_PRICES.rows.items() if k not in disabled}
        merged.update(rows)
        return cls(MappingProxyType(merged), frozenset(disabled))

    def is_priced(self, model_id: str) -> bool:
        return model_id in self.rows

    def row(self, model_id: str) -> PriceRow | None:
        return self.rows.get(model_id)

    def unpriced_reason(self, model_id: str) -> str:
        if model_id in self.disabled:
            return (
                f"{model_id} is turned off by PRICE_OVERRIDES (null); remove that entry "
                "or give it a price"
            )
        return (
            f"{model_id} has no price (its provider publishes none), and the bot never "
            f"runs a model for free: {OVERRIDE_HINT}"
        )

    def quote(self, params: AnimateParams) -> Quote:
        """The exact cost of `params`; ModelUnavailable when the model has no price."""
        row = self.rows.get(params.model)
        if row is None:
            raise ModelUnavailable(params.model, self.unpriced_reason(params.model))
        amount = row.amount_for(params.resolution, params.duration)
        if amount is None:  # overrides are checked for coverage, so only a bad table gets here
            raise ModelUnavailable(
                params.model,
                f"{params.model} has no price for {_combo(params.resolution, params.duration)}: "
                f"{OVERRIDE_HINT}",
            )
        at = f" at {params.resolution}" if params.resolution else ""
        if row.unit == "clip":
            return Quote(
                model=params.model,
                cost_micros=amount,
                billed_seconds=None,
                resolution=params.resolution,
                duration=params.duration,
                basis=f"{format_usd(amount)} per {params.duration} s clip{at}",
                source=row.source,
            )
        billed = row.billed_seconds(params.duration)
        basis = f"{format_usd(amount)}/s x {billed} s{at}"
        if billed > params.duration:
            basis += f"; {params.duration} s is billed as the {billed} s minimum"
        elif billed < params.duration:
            basis += f"; {params.duration} s is billed at the {billed} s maximum"
        return Quote(
            model=params.model,
            cost_micros=amount * billed,
            billed_seconds=billed,
            resolution=params.resolution,
            duration=params.duration,
            basis=basis,
            source=row.source,
        )


def availability(
    model: ModelSpec, prices: PriceTable, *, has_wavespeed_key: bool, has_novita_key: bool
) -> tuple[bool, str]:
    """(enabled, why not). WaveSpeed models need its key; wan-2.1 needs a Novita key and a price."""
    reasons: list[str] = []
    if model.provider == "wavespeed" and not has_wavespeed_key:
        reasons.append(f"{model.id} needs a WaveSpeed API key: set WAVESPEED_API_KEY")
    if model.provider == "novita" and not has_novita_key:
        reasons.append(f"{model.id} needs a Novita API key: set NOVITA_API_KEY")
    if not prices.is_priced(model.id):
        reasons.append(prices.unpriced_reason(model.id))
    return (not reasons, "; ".join(reasons))


# --- parsing the table data (published rows and overrides alike) ---

_ROW_KEYS: Final = {"per_second", "per_clip", "min_billed_s", "max_billed_s", "source"}


def _parse_table(
    data: Mapping[str, Any], *, default_source: str
) -> tuple[dict[str, PriceRow], set[str]]:
    problems: list[str] = []
    rows: dict[str, PriceRow] = {}
    disabled: set[str] = set()
    for model_id, entry in data.items():
        spec = CATALOG.get(str(model_id))
        if spec is None:
            problems.append(f"unknown model {model_id!r}: price one of {', '.join(CATALOG)}")
        elif entry is None:
            disabled.add(spec.id)
        else:
            row = _parse_row(spec, entry, default_source, problems)
            if row is not None:
                rows[spec.id] = row
    if problems:
        raise PriceOverrideError(problems)
    return rows, disabled


def _parse_row(
    spec: ModelSpec, entry: Any, default_source: str, problems: list[str]
) -> PriceRow | None:
    name = spec.id
    before = len(problems)
    if not isinstance(entry, Mapping):
        entry = {"per_clip": entry}
    units = [u for u in ("per_second", "per_clip") if u in entry]
    shorthand = {k: v for k, v in entry.items() if k not in _ROW_KEYS}
    if shorthand and not units:
        entry = {**{k: v for k, v in entry.items() if k in _ROW_KEYS}, "per_clip": shorthand}
        units = ["per_clip"]
    elif shorthand:
        problems.append(
            f"{name}: unknown keys {', '.join(map(str, shorthand))} "
            f"(allowed: {', '.join(sorted(_ROW_KEYS))})"
        )
    if len(units) != 1:
        problems.append(f"{name}: give exactly one of per_second or per_clip")
        return None
    unit: Literal["second", "clip"] = "second" if units[0] == "per_second" else "clip"
    amounts = _parse_amounts(spec, entry[units[0]], problems)
    bounds = {
        k: _parse_seconds(name, k, entry.get(k), problems) for k in ("min_billed_s", "max_billed_s")
    }
    low, high = bounds["min_billed_s"], bounds["max_billed_s"]
    if low is not None and high is not None and low > high:
        problems.append(f"{name}: min_billed_s {low} is more than max_billed_s {high}")
    if unit == "clip" and any(v is not None for v in bounds.values()):
        problems.append(f"{name}: min_billed_s and max_billed_s only apply to per_second prices")
    source = entry.get("source", default_source)
    if not isinstance(source, str):
        problems.append(f"{name}: source must be text")
    if len(problems) > before:
        return None
    row = PriceRow(
        name,
        unit,
        MappingProxyType(amounts),
        bounds["min_billed_s"],
        bounds["max_billed_s"],
        str(source),
    )
    missing = [
        _combo(res, d)
        for res, d in itertools.product(spec.resolutions or [None], spec.durations)
        if row.amount_for(res, d) is None
    ]
    if missing:
        shown = ", ".join(missing[:4]) + (", ..." if len(missing) > 4 else "")
        problems.append(f'{name}: no price for {shown} (add those keys or a "*" key)')
        return None
    return row


def _parse_amounts(spec: ModelSpec, value: Any, problems: list[str]) -> dict[str, int]:
    if not isinstance(value, Mapping):
        value = {"*": value}
    if not value:
        problems.append(f"{spec.id}: the price list is empty")
    out: dict[str, int] = {}
    for key, amount in value.items():
        if not _valid_key(spec, str(key)):
            problems.append(f"{spec.id}: price key {key!r} is not {_key_help(spec)}")
            continue
        what = f"{spec.id} price" + ("" if key == "*" else f" for {key}")
        micros = _usd_to_micros(what, amount, problems)
        if micros is not None:
            out[str(key)] = micros
    return out


def _valid_key(spec: ModelSpec, key: str) -> bool:
    if key == "*":
        return True
    res, _, dur = key.rpartition("/") if "/" in key else ("", "", key)
    if not res and key in spec.resolutions:
        return True
    duration_ok = dur.endswith("s") and dur[:-1].isdigit() and int(dur[:-1]) in spec.durations
    return duration_ok and (not res or res in spec.resolutions)


def _key_help(spec: ModelSpec) -> str:
    keys = ['"*"'] + [f'"{r}"' for r in spec.resolutions] + [f'"{spec.durations[0]}s"']
    if spec.resolutions:
        keys.append(f'"{spec.resolutions[0]}/{spec.durations[0]}s"')
    return f"one of {', '.join(keys)} (durations {', '.join(map(str, spec.durations))} s)"


def _usd_to_micros(what: str, value: Any, problems: list[str]) -> int | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        kind = "a number" if isinstance(value, float) else repr(value)
        problems.append(f'{what}: write USD as a string such as "0.30", not {kind}')
        return None
    try:
        usd = Decimal(str(value).strip().lstrip("$"))
    except InvalidOperation:
        problems.append(f'{what}: {value!r} is not a USD amount such as "0.30"')
        return None
    if not usd.is_finite() or usd <= 0:
        problems.append(f"{what}: {value!r} must be more than $0 (a model is never free)")
        return None
    if usd > MAX_USD:
        problems.append(f"{what}: {value!r} is more than $1,000,000,000")
        return None
    micros = usd * MICROS_PER_USD
    if micros != micros.to_integral_value():
        problems.append(f"{what}: {value!r} is finer than a micro-dollar ($0.000001)")
        return None
    return int(micros)


def _parse_seconds(name: str, key: str, value: Any, problems: list[str]) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        problems.append(f"{name}: {key} must be a whole number of seconds, at least 1")
        return None
    return value


def _combo(resolution: str | None, duration: int) -> str:
    return f"{resolution} {duration} s" if resolution else f"{duration} s"


def price_matrix(spec: ModelSpec, prices: PriceTable) -> list[tuple[str | None, int, int]]:
    """(resolution, duration, cost_micros) for every combination the model offers."""
    row = prices.row(spec.id)
    if row is None:
        return []
    out: list[tuple[str | None, int, int]] = []
    for res, d in itertools.product(spec.resolutions or [None], spec.durations):
        amount = row.amount_for(res, d)
        if amount is not None:
            out.append((res, d, amount * row.billed_seconds(d) if row.unit == "second" else amount))
    return out


DEFAULT_PRICES: Final = PriceTable.from_data(PUBLISHED_PRICES)


__all__ = [
    "DEFAULT_PRICES",
    "PUBLISHED_PRICES",
    "ModelUnavailable",
    "PriceOverrideError",
    "PriceRow",
    "PriceTable",
    "Quote",
    "availability",
    "price_matrix",
]
