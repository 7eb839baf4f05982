"""Validated request parameters, one pydantic model per catalog model.

A `ModelSpec.validate()` (providers/catalog.py) turns loose user input into one of these
*before* any money is reserved, collecting every problem into one `InvalidParameters`.
The pydantic constraints below repeat the rules as a second line of defence, and let a
stored `params.model_dump(mode="json")` be reloaded with `type(params).model_validate(...)`.

The small coercion helpers here accept what people type in a chat or a shell: integers as
exact strings ("8"), LoRAs as "KEY=SCALE" strings. Each returns None and appends a sentence
to `problems` when the value is unusable, so callers can report everything at once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

PROMPT_MAX_CHARS: Final = 2000  # Novita's documented limit; we apply it to every model
WAVESPEED_SEED_MAX: Final = 2_147_483_647
NOVITA_SEED_MAX: Final = 9_999_999_999
LORA_SCALE_MIN: Final = 0.0
LORA_SCALE_MAX: Final = 4.0
URL_MAX_CHARS: Final = 2048


class InvalidParameters(ValueError):
    """Raised before any money moves. `problems` are sentences a person understands;
    `fields` groups them by the option they are about (a form shows each by its field)."""

    def __init__(
        self, problems: list[str] | str, *, fields: Mapping[str, list[str]] | None = None
    ) -> None:
        self.problems: list[str] = [problems] if isinstance(problems, str) else list(problems)
        self.fields: dict[str, list[str]] = {k: list(v) for k, v in (fields or {}).items() if v}
        super().__init__("; ".join(self.problems))


class LoraSpec(BaseModel):
    """One LoRA: a provider key (OpenVideo) or a weights URL (Wan), and its strength."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str = Field(min_length=1)
    scale: float = Field(ge=LORA_SCALE_MIN, le=LORA_SCALE_MAX, allow_inf_nan=False)


LoraList = tuple[LoraSpec, ...]


class AnimateParams(BaseModel):
    """What every model takes. Subclasses add the fields only that model has."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    prompt: str = Field(min_length=1, max_length=PROMPT_MAX_CHARS)
    duration: int
    resolution: str | None  # None for sora-2: the model decides the size
    seed: int = -1  # -1 means random


class OpenVideoParams(AnimateParams):
    model: Literal["openvideo"] = "openvideo"
    duration: int = Field(default=5, ge=3, le=20)
    resolution: Literal["480p", "720p", "1080p"] = "480p"
    seed: int = Field(default=-1, ge=-1, le=WAVESPEED_SEED_MAX)


class OpenVideoLoraParams(AnimateParams):
    model: Literal["openvideo-lora"] = "openvideo-lora"
    duration: int = Field(default=5, ge=3, le=20)
    resolution: Literal["480p", "720p", "1080p"] = "480p"
    seed: int = Field(default=-1, ge=-1, le=WAVESPEED_SEED_MAX)
    preset: Literal["tuned", "original"] = "tuned"
    loras: LoraList = ()


class Sora2Params(AnimateParams):
    model: Literal["sora-2"] = "sora-2"
    duration: Literal[4, 8, 12, 16, 20] = 4
    resolution: None = None
    seed: Literal[-1] = -1  # sora-2 takes no seed; -1 keeps the base shape


class Wan22FastParams(AnimateParams):
    model: Literal["wan-2.2-fast"] = "wan-2.2-fast"
    duration: Literal[5, 8] = 5
    resolution: Literal["480p"] = "480p"
    seed: int = Field(default=-1, ge=-1, le=WAVESPEED_SEED_MAX)
    loras: LoraList = Field(default=(), max_length=3)
    high_noise_loras: LoraList = Field(default=(), max_length=3)
    low_noise_loras: LoraList = Field(default=(), max_length=3)
    negative_prompt: str | None = Field(default=None, max_length=PROMPT_MAX_CHARS)
    last_image: str | None = None  # http(s) URL of the clip's last frame


class Wan21Params(AnimateParams):
    model: Literal["wan-2.1"] = "wan-2.1"
    duration: Literal[5] = 5
    resolution: Literal["480p", "720p"] = "480p"
    seed: int = Field(default=-1, ge=-1, le=NOVITA_SEED_MAX)
    loras: LoraList = Field(default=(), max_length=3)
    negative_prompt: str | None = Field(default=None, max_length=PROMPT_MAX_CHARS)
    steps: int = Field(default=30, ge=1, le=40)
    guidance_scale: float = Field(default=5.0, ge=0, le=10, allow_inf_nan=False)
    flow_shift: float = Field(default=5.0, ge=1, le=10, allow_inf_nan=False)
    enable_safety_checker: bool | None = None  # None: leave Novita's default


# --- coercion helpers: loose input -> typed value, or None plus a sentence in `problems` ---


def as_int(name: str, value: Any, problems: list[str]) -> int | None:
    """Whole numbers, also as exact strings ("8", " -1 ") or integral floats (8.0)."""
    if isinstance(value, bool):
        problems.append(f"{name} must be a whole number, not {value!r}")
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text[:1] in "+-" else text
        if digits.isascii() and digits.isdigit():
            return int(text)
    problems.append(f"{name} {_show(value)} is not a whole number")
    return None


def as_float(name: str, value: Any, problems: list[str]) -> float | None:
    """A finite number, also as a string ("0.8")."""
    number: float | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        problems.append(f"{name} {_show(value)} is not a number")
        return None
    return number


def as_bool(name: str, value: Any, problems: list[str]) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
        return _BOOL_WORDS[value.strip().lower()]
    problems.append(f"{name} {_show(value)} is not true or false")
    return None


_BOOL_WORDS: Final = {
    "true": True,
    "yes": True,
    "on": True,
    "1": True,
    "false": False,
    "no": False,
    "off": False,
    "0": False,
}


def as_text(name: str, value: Any, problems: list[str], *, max_chars: int) -> str | None:
    """Stripped text of at most `max_chars`; empty text counts as not given (returns "")."""
    if not isinstance(value, str):
        problems.append(f"{name} must be text")
        return None
    text = value.strip()
    if len(text) > max_chars:
        problems.append(f"{name} is {len(text)} characters long: the limit is {max_chars}")
        return None
    return text


def is_http_url(text: str) -> bool:
    """An absolute http(s) URL with a host and no spaces: what a provider can fetch."""
    if len(text) > URL_MAX_CHARS or any(ch.isspace() for ch in text):
        return False
    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def parse_lora_arg(text: str) -> dict[str, Any]:
    """Parse one CLI or chat LoRA: `omninft=0.8` -> {"path": "omninft", "scale": 0.8}.

    Splits on the LAST '=' because LoRA URLs may carry '=' in their query string. The scale
    is only parsed as a number here; its range is the catalog's business.
    """
    problems: list[str] = []
    entry = _parse_lora_text(text, problems)
    if entry is None:
        raise InvalidParameters(problems)
    return entry


def _parse_lora_text(text: str, problems: list[str]) -> dict[str, Any] | None:
    path, sep, scale_text = text.strip().rpartition("=")
    path = path.strip()
    if not sep or not path or not scale_text.strip():
        problems.append(f"LoRA {text.strip()!r} is not in the form KEY=SCALE (e.g. omninft=0.8)")
        return None
    scale = as_float(f"LoRA {path!r} scale", scale_text, problems)
    if scale is None:
        return None
    return {"path": path, "scale": scale}


def lora_entries(field: str, value: Any, problems: list[str]) -> list[dict[str, Any]] | None:
    """Every accepted LoRA list shape -> [{"path", "scale"}] with scale parsed (not range-checked).

    Shapes: a list of {"path", "scale"} dicts, LoraSpec objects or "KEY=SCALE" strings; one
    "KEY=SCALE, KEY=SCALE" string (chat input); or the provider's map form {"key": scale}.
    """
    items: list[Any]
    if isinstance(value, str):
        items = [part for part in value.replace(",", " ").split() if part]
    elif isinstance(value, Mapping):
        items = [{"path": key, "scale": scale} for key, scale in value.items()]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        problems.append(f"{field} must be a list of LoRAs like omninft=0.8")
        return None
    out: list[dict[str, Any]] = []
    ok = True
    for item in items:
        entry: dict[str, Any] | None = None
        if isinstance(item, LoraSpec):
            entry = {"path": item.path, "scale": item.scale}
        elif isinstance(item, str):
            entry = _parse_lora_text(item, problems)
        elif isinstance(item, Mapping):
            entry = _lora_from_mapping(item, problems)
        else:
            problems.append(f"LoRA {_show(item)} is not a LoRA: use KEY=SCALE or {{path, scale}}")
        if entry is None:
            ok = False
        else:
            out.append(entry)
    return out if ok else None


def _lora_from_mapping(item: Mapping[str, Any], problems: list[str]) -> dict[str, Any] | None:
    extra = sorted(str(k) for k in item if k not in ("path", "scale"))
    path = item.get("path")
    if not isinstance(path, str) or not path.strip():
        problems.append("each LoRA needs a path (a LoRA key or URL) and a scale")
        return None
    path = path.strip()
    if extra:
        problems.append(f"LoRA {path!r} has unknown fields {', '.join(extra)}: use path and scale")
        return None
    if item.get("scale") is None:
        problems.append(f"LoRA {path!r} needs a scale from 0 to 4")
        return None
    scale = as_float(f"LoRA {path!r} scale", item["scale"], problems)
    return None if scale is None else {"path": path, "scale": scale}


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


__all__ = [
    "NOVITA_SEED_MAX",
    "PROMPT_MAX_CHARS",
    "WAVESPEED_SEED_MAX",
    "AnimateParams",
    "InvalidParameters",
    "LoraSpec",
    "OpenVideoLoraParams",
    "OpenVideoParams",
    "Sora2Params",
    "Wan21Params",
    "Wan22FastParams",
    "parse_lora_arg",
]
