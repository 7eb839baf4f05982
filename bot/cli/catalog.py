"""`models` and `quote`: what the bot can run, and what a request would cost.

`quote` needs no prompt because no price depends on it: it validates the options with a
placeholder prompt (`QUOTE_PROMPT`), so every other rule (durations, LoRA keys, scales,
counts) is checked exactly as `/animate` would check it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from bot.cli._output import CliError, add_json_flag, cli_settings, print_json
from bot.config import Settings
from bot.keys import ProviderKeys, key_refused_message
from providers.catalog import CATALOG, ModelSpec, describe_options, get_model
from providers.money import format_usd, usd_string
from providers.params import InvalidParameters, parse_lora_arg
from providers.pricing import (
    ModelUnavailable,
    PriceOverrideError,
    PriceTable,
    availability,
    price_matrix,
)

if TYPE_CHECKING:
    from pydantic import SecretStr

    from storage import KeyRefusal

QUOTE_PROMPT: Final = "price quote"  # stands in for the prompt, which no price depends on


def register(sub: Any) -> None:
    models = sub.add_parser(
        "models", help="the model catalog: options, prices, and whether each is enabled"
    )
    add_json_flag(models)
    models.set_defaults(handler=cmd_models)

    quote = sub.add_parser(
        "quote",
        help="the exact price of a request, or why it is invalid",
        description="Price a request without running it. No prompt is needed: "
        "no price depends on it.",
    )
    quote.add_argument("--model", help=f"one of {', '.join(CATALOG)}")
    quote.add_argument("--duration", help="seconds (default: the model's default)")
    quote.add_argument("--resolution", help="e.g. 720p (default: the model's default)")
    quote.add_argument("--preset", help="openvideo-lora: tuned or original")
    quote.add_argument("--seed", help="-1 (random) or a fixed seed")
    quote.add_argument(
        "--lora",
        action="append",
        default=[],
        metavar="KEY=SCALE",
        help="a LoRA key (openvideo-lora) or URL (wan models) and its scale 0-4; repeatable",
    )
    quote.add_argument(
        "--high-noise-lora",
        action="append",
        default=[],
        metavar="URL=SCALE",
        help="wan-2.2-fast high-noise LoRA; repeatable",
    )
    quote.add_argument(
        "--low-noise-lora",
        action="append",
        default=[],
        metavar="URL=SCALE",
        help="wan-2.2-fast low-noise LoRA; repeatable",
    )
    add_json_flag(quote)
    quote.set_defaults(handler=cmd_quote)


def load_prices(settings: Settings) -> PriceTable:
    """The price table this process uses: published prices plus PRICE_OVERRIDES."""
    try:
        return PriceTable.with_overrides(settings.price_overrides)
    except PriceOverrideError as exc:
        raise CliError(str(exc), 2) from None


def cmd_models(args: argparse.Namespace) -> int:
    settings = cli_settings()
    prices = load_prices(settings)
    keys = _keys(settings)
    refused = key_refusals(settings)
    for spec in CATALOG.values():
        enabled, reason = availability(spec, prices, **keys)
        refusal = next((refused[p] for p in _key_providers(spec, settings) if p in refused), None)
        if enabled and refusal is not None:
            enabled, reason = False, key_refused_message(refusal.provider, refusal.status_code)
        if args.json:
            print_json(_model_json(spec, prices, enabled, reason))
        else:
            print("\n".join(_model_lines(spec, prices, enabled, reason)))
    return 0


def cmd_quote(args: argparse.Namespace) -> int:
    if not args.model:
        raise CliError(f"choose a model with --model: {', '.join(CATALOG)}", 2)
    settings = cli_settings()
    prices = load_prices(settings)
    try:
        spec = get_model(args.model)
        params = spec.validate(_quote_raw(args))
        quote = prices.quote(params)
    except (InvalidParameters, ModelUnavailable) as exc:
        raise CliError(str(exc), 2) from None
    if args.json:
        print_json(
            {
                "model": quote.model,
                "cost_micros": quote.cost_micros,
                "cost_usd": usd_string(quote.cost_micros),
                "billed_seconds": quote.billed_seconds,
                "duration": quote.duration,
                "resolution": quote.resolution,
                "basis": quote.basis,
            }
        )
        return 0
    print(f"{quote.model}: {format_usd(quote.cost_micros)} ({quote.basis})")
    print(f"source: {quote.source}")
    enabled, reason = availability(spec, prices, **_keys(settings))
    if not enabled:
        print(f"note: not enabled here: {reason}")
    return 0


def _quote_raw(args: argparse.Namespace) -> dict[str, Any]:
    raw: dict[str, Any] = {"prompt": QUOTE_PROMPT}
    for name in ("duration", "resolution", "preset", "seed"):
        if getattr(args, name) is not None:
            raw[name] = getattr(args, name)
    # The LoRA strings go in as given: validate() parses them and reports every bad one.
    for name, values in (
        ("loras", args.lora),
        ("high_noise_loras", args.high_noise_lora),
        ("low_noise_loras", args.low_noise_lora),
    ):
        if values:
            raw[name] = list(values)
    return raw


def _model_json(spec: ModelSpec, prices: PriceTable, enabled: bool, reason: str) -> dict[str, Any]:
    row = prices.row(spec.id)
    return {
        "id": spec.id,
        "display_name": spec.display_name,
        "provider": spec.provider,
        "endpoint": spec.endpoint,
        "durations": list(spec.durations),
        "default_duration": spec.default_duration,
        "resolutions": list(spec.resolutions),
        "default_resolution": spec.default_resolution,
        "seed_max": spec.seed_max,
        "presets": list(spec.presets),
        "loras": [
            {
                "field": r.field,
                "max_count": r.max_count,
                "keys": list(r.keys) if r.keys else None,
                "scale_min": 0,
                "scale_max": 4,
            }
            for r in spec.lora_rules
        ],
        "options": list(spec.fields),
        "price": row.to_json() if row else None,
        "price_text": row.describe() if row else None,
        "prices": [
            {
                "resolution": res,
                "duration": d,
                "cost_micros": micros,
                "cost_usd": usd_string(micros),
            }
            for res, d, micros in price_matrix(spec, prices)
        ],
        "enabled": enabled,
        "reason": reason,
    }


def _model_lines(spec: ModelSpec, prices: PriceTable, enabled: bool, reason: str) -> list[str]:
    state = "enabled" if enabled else f"DISABLED: {reason}"
    lines = [f"{spec.id}  ({spec.display_name}, {spec.provider})  {state}"]
    lines += [f"    {line}" for line in describe_options(spec)]
    row = prices.row(spec.id)
    if row is None:
        lines.append("    price: none set")
    else:
        lines.append(f"    price: {row.describe()}")
        if row.source:
            lines.append(f"    source: {row.source}")
    return lines


def _key_providers(spec: ModelSpec, settings: Settings) -> list[str]:
    """Whose key a model needs: its provider's, and WaveSpeed's for Novita's input images
    while no PUBLIC_BASE_URL serves them."""
    if spec.provider == "novita" and settings.public_base_url is None:
        return ["novita", "wavespeed"]
    return [spec.provider]


def key_refusals(settings: Settings) -> dict[str, KeyRefusal]:
    """Refusals recorded for this process's provider keys, by provider. Empty when the
    database does not exist yet; a database that cannot be read is said on stderr (the
    catalog is still printed; `doctor` says more)."""
    from bot.keys import provider_keys

    keys = provider_keys(settings)
    if not keys:
        return {}
    from storage.backend import sqlite_path

    url = settings.database_url
    if url.startswith("sqlite:") and not Path(sqlite_path(url)).exists():
        return {}
    try:
        return asyncio.run(_read_refusals(settings, keys))
    except Exception as exc:  # an old schema, an unreachable server: the catalog still prints
        print(f"warning: refused provider keys are not shown: {exc}", file=sys.stderr)
        return {}


async def _read_refusals(
    settings: Settings, keys: dict[str, SecretStr]
) -> dict[str, KeyRefusal]:
    from bot.database import connect

    out: dict[str, KeyRefusal] = {}
    async with await connect(settings, migrate=False) as db:
        ours = ProviderKeys(db.keys, keys)
        for provider in keys:
            refusal = await ours.refusal(provider)
            if refusal is not None:
                out[provider] = refusal
    return out


def _keys(settings: Settings) -> dict[str, bool]:
    def present(secret: Any) -> bool:
        return secret is not None and bool(secret.get_secret_value().strip())

    return {
        "has_wavespeed_key": present(settings.wavespeed_api_key),
        "has_novita_key": present(settings.novita_api_key),
    }


__all__ = ["QUOTE_PROMPT", "cmd_models", "cmd_quote", "load_prices", "parse_lora_arg", "register"]
