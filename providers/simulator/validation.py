"""The seed models' request schemas, checked the way the providers check them.

Each check returns None (accepted) or a `Problem`: WaveSpeed's in-task codes distinguish a
missing parameter (1400) from an invalid one (1401). Unknown model paths are accepted as-is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

WS_SEED_MAX = 2_147_483_647
NOVITA_SEED_MAX = 9_999_999_999
RESOLUTIONS = ("480p", "720p", "1080p")
PRESETS = ("tuned", "original")
NOVITA_SIZES = ((480, 832), (832, 480), (720, 1280), (1280, 720))
PROMPT_MAX = 2000


@dataclass(frozen=True)
class Problem:
    code: int  # 1400 missing, 1401 invalid
    message: str


def _missing(name: str) -> Problem:
    return Problem(1400, f"missing required parameter '{name}'")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _int_range(body: dict[str, Any], name: str, low: int, high: int) -> Problem | None:
    if name not in body:
        return None
    value = body[name]
    if not _is_int(value) or not low <= value <= high:
        return Problem(1401, f"'{name}' must be an integer from {low} to {high}, got {value!r}")
    return None


def _number_range(body: dict[str, Any], name: str, low: float, high: float) -> Problem | None:
    if name not in body:
        return None
    value = body[name]
    if not _is_number(value) or not low <= value <= high:
        return Problem(1401, f"'{name}' must be a number from {low:g} to {high:g}, got {value!r}")
    return None


def _choice(body: dict[str, Any], name: str, allowed: tuple[Any, ...]) -> Problem | None:
    if name in body and (body[name] not in allowed or isinstance(body[name], bool)):
        shown = ", ".join(str(a) for a in allowed)
        return Problem(1401, f"'{name}' must be one of {shown}, got {body[name]!r}")
    return None


def _text(body: dict[str, Any], name: str, *, required: bool) -> Problem | None:
    if name not in body or body[name] is None:
        return _missing(name) if required else None
    value = body[name]
    if not isinstance(value, str):
        return Problem(1401, f"'{name}' must be a string")
    if required and not value.strip():
        return _missing(name)
    if len(value) > PROMPT_MAX:
        return Problem(1401, f"'{name}' is {len(value)} characters; at most {PROMPT_MAX} allowed")
    return None


def _loras(body: dict[str, Any], name: str, *, max_items: int | None) -> Problem | None:
    if name not in body:
        return None
    loras = body[name]
    if not isinstance(loras, list):
        return Problem(1401, f"'{name}' must be a list of {{path, scale}} objects")
    if max_items is not None and len(loras) > max_items:
        return Problem(1401, f"'{name}' has {len(loras)} entries; at most {max_items} allowed")
    for i, lora in enumerate(loras):
        if not isinstance(lora, dict) or not isinstance(lora.get("path"), str) or not lora["path"]:
            return Problem(1401, f"'{name}[{i}]' must be an object with a non-empty 'path'")
        scale = lora.get("scale", 1.0)
        if not _is_number(scale) or not 0 <= scale <= 4:
            return Problem(1401, f"'{name}[{i}].scale' must be a number from 0 to 4, got {scale!r}")
    return None


def _first(*problems: Problem | None) -> Problem | None:
    return next((p for p in problems if p is not None), None)


def _common(body: dict[str, Any]) -> Problem | None:
    return _first(_text(body, "image", required=True), _text(body, "prompt", required=True))


def _open_video(body: dict[str, Any], *, lora: bool) -> Problem | None:
    # Unknown LoRA paths are accepted: the provider silently drops them (§4.1).
    return _first(
        _common(body),
        _int_range(body, "duration", 3, 20),
        _choice(body, "resolution", RESOLUTIONS),
        _int_range(body, "seed", -1, WS_SEED_MAX),
        _choice(body, "preset", PRESETS) if lora else None,
        _loras(body, "loras", max_items=None) if lora else None,
    )


def _sora(body: dict[str, Any]) -> Problem | None:
    return _first(_common(body), _choice(body, "duration", (4, 8, 12, 16, 20)))


def _wan22(body: dict[str, Any]) -> Problem | None:
    return _first(
        _common(body),
        _text(body, "negative_prompt", required=False),
        _choice(body, "duration", (5, 8)),
        _int_range(body, "seed", -1, WS_SEED_MAX),
        _loras(body, "loras", max_items=3),
        _loras(body, "high_noise_loras", max_items=3),
        _loras(body, "low_noise_loras", max_items=3),
    )


WAVESPEED_MODELS = {
    "wavespeed-ai/open-video/image-to-video": lambda b: _open_video(b, lora=False),
    "wavespeed-ai/open-video/image-to-video-lora": lambda b: _open_video(b, lora=True),
    "openai/sora-2/image-to-video": _sora,
    "wavespeed-ai/wan-2.2/i2v-480p-lora-ultra-fast": _wan22,
}


def validate_wavespeed(model: str, body: dict[str, Any]) -> Problem | None:
    check = WAVESPEED_MODELS.get(model)
    return check(body) if check else None


def validate_novita(body: dict[str, Any]) -> Problem | None:
    problem = _first(
        _text(body, "image_url", required=True),
        _text(body, "prompt", required=True),
        _text(body, "negative_prompt", required=False),
        _int_range(body, "steps", 1, 40),
        _number_range(body, "guidance_scale", 0, 10),
        _number_range(body, "flow_shift", 1, 10),
        _int_range(body, "seed", -1, NOVITA_SEED_MAX),
        _loras(body, "loras", max_items=3),
    )
    if problem:
        return problem
    if "width" in body or "height" in body:
        pair = (body.get("width"), body.get("height"))
        if pair not in NOVITA_SIZES or not all(_is_int(v) for v in pair):
            shown = ", ".join(f"{w}x{h}" for w, h in NOVITA_SIZES)
            return Problem(1401, f"width x height must be one of {shown}, got {pair[0]}x{pair[1]}")
    return None
