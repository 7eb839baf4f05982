"""Chat input: LoRA lists as people type them, and the choices each model offers.

LoRAs are typed as `omninft:0.5, better_motion:0.3` (or `=` instead of `:`); a LoRA without
a strength takes 1.0, or a saved LoRA's own strength. A LoRA URL keeps its colons
(`https://host/a.safetensors:0.8` is the URL at 0.8).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from bot.errors import RequestRefused
from bot.service import AnimateService
from providers.catalog import CATALOG, ModelSpec
from providers.pricing import price_matrix
from storage import SavedLora

MAX_CHOICES = 25  # Discord's limit for choices and autocomplete answers


def parse_loras(text: str, *, field: str = "loras") -> list[dict[str, object]]:
    """`a:0.5, b=0.3, c` -> [{"path", "scale"}]; scale None means "the default"."""
    out: list[dict[str, object]] = []
    for raw in text.replace("\n", ",").split(","):
        part = raw.strip()
        if not part:
            continue
        path, scale_text = _split_scale(part)
        if not path:
            raise RequestRefused(
                f"LoRA {part!r} is not in the form NAME:STRENGTH (e.g. omninft:0.8)",
                fields={field: [f"LoRA {part!r} is not in the form NAME:STRENGTH"]},
            )
        scale: float | None = None
        if scale_text is not None:
            try:
                scale = float(scale_text)
            except ValueError:
                msg = f"LoRA {path!r} strength {scale_text!r} is not a number: use 0 to 4"
                raise RequestRefused(msg, fields={field: [msg]}) from None
        out.append({"path": path, "scale": scale})
    return out


def _split_scale(part: str) -> tuple[str, str | None]:
    for sep in ("=", ":"):
        head, found, tail = part.rpartition(sep)
        if found and tail.strip() and not tail.strip().startswith("//"):
            return head.strip(), tail.strip()
    return part, None


@dataclass(frozen=True)
class Choice:
    name: str  # what a person sees
    value: str


def enabled_models(service: AnimateService) -> list[ModelSpec]:
    return [spec for spec in CATALOG.values() if service.unavailable(spec) is None]


def model_choices(service: AnimateService) -> list[Choice]:
    return [Choice(f"{spec.display_name} ({spec.id})", spec.id) for spec in enabled_models(service)]


def duration_choices(spec: ModelSpec) -> list[Choice]:
    return [Choice(f"{d} s", str(d)) for d in spec.durations][:MAX_CHOICES]


def resolution_choices(spec: ModelSpec) -> list[Choice]:
    return [Choice(r, r) for r in spec.resolutions]


def price_lines(service: AnimateService, spec: ModelSpec) -> list[str]:
    """Every price the model has, short: '480p: 5 s $0.10 … 20 s $0.40'."""
    by_res: dict[str | None, list[tuple[int, int]]] = {}
    for res, duration, micros in price_matrix(spec, service.prices):
        by_res.setdefault(res, []).append((duration, micros))
    from providers.money import format_usd

    lines = []
    for res, rows in by_res.items():
        shown = rows if len(rows) <= 3 else [rows[0], rows[len(rows) // 2], rows[-1]]
        prices = ", ".join(f"{d} s {format_usd(c)}" for d, c in shown)
        lines.append(f"{res}: {prices}" if res else prices)
    return lines


def lora_suggestions(
    model_id: str | None, typed: str, saved: list[SavedLora]
) -> list[Choice]:
    """Autocomplete for the `loras` option: the model's LoRA keys, or the server's saved
    LoRAs for models that take URLs. Completes the last entry of what is already typed."""
    spec = CATALOG.get(model_id or "")
    done, _, last = typed.rpartition(",")
    prefix = (done + ", ") if done.strip() else ""
    current = last.strip().split(":")[0].split("=")[0].lower()
    names: list[tuple[str, str]] = []
    keys = [k for r in (spec.lora_rules if spec else ()) for k in (r.keys or ())]
    if keys:
        names = [(k, f"{k}:1") for k in keys]
    else:
        names = [(f"{s.name} (saved, {s.scale:g})", s.name) for s in saved]
    if current:
        starts = [n for n in names if n[1].lower().startswith(current)]
        close = difflib.get_close_matches(current, [n[1] for n in names], n=5, cutoff=0.5)
        names = starts + [n for n in names if n[1] in close and n not in starts]
    return [
        Choice(name=(prefix + label)[:100], value=(prefix + value)[:100])
        for label, value in names[:MAX_CHOICES]
    ]
