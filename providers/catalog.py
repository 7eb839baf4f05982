"""The model catalog: the five video models, what each accepts, and the JSON body each needs.

Rules come from the providers' model pages (WaveSpeed: https://wavespeed.ai/docs/docs-api/,
one page per model; Novita: https://novita.ai/docs/api-reference/model-apis-wan-i2v).
Validation is ours, stricter than the providers': a
request the API would refuse, or would silently change (OpenVideo drops unknown LoRA keys),
must be refused here, before money is reserved, with every problem listed at once.

LoRA count for openvideo-lora: the provider's LoRA map has 13 keys and we refuse a key
listed twice, so at most 13 entries (one per key) can ever be valid; that is the cap.
`typical_render_s` values are rough guesses used only to time the first poll.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, Literal

from pydantic import ValidationError

from providers.params import (
    LORA_SCALE_MAX,
    LORA_SCALE_MIN,
    NOVITA_SEED_MAX,
    PROMPT_MAX_CHARS,
    WAVESPEED_SEED_MAX,
    AnimateParams,
    InvalidParameters,
    LoraSpec,
    OpenVideoLoraParams,
    OpenVideoParams,
    Sora2Params,
    Wan21Params,
    Wan22FastParams,
    as_bool,
    as_float,
    as_int,
    as_text,
    is_http_url,
    lora_entries,
)

OPENVIDEO_LORA_KEYS: Final = (
    "sulphur", "sulphur_v1", "vbvr", "dreamly", "synth", "plora", "singularity",
    "omninft", "omninft_bf16", "better_motion", "physics_v2", "hardcut", "transition",
)  # fmt: skip

NOVITA_MODEL_NAME: Final = "wan2.1-i2v"
# Novita takes fixed width x height pairs; (landscape or square, portrait) per resolution.
NOVITA_SIZES: Final = MappingProxyType(
    {"480p": ((832, 480), (480, 832)), "720p": ((1280, 720), (720, 1280))}
)


@dataclass(frozen=True)
class LoraRule:
    """One LoRA list a model takes. `keys` None means each path must be an http(s) URL."""

    field: str
    label: str  # how people call the list: "LoRAs", "high-noise LoRAs"
    max_count: int
    keys: tuple[str, ...] | None = None


@dataclass(frozen=True)
class NumberRule:
    """A numeric option with an inclusive range (steps, guidance_scale, flow_shift)."""

    field: str
    low: float
    high: float
    integer: bool = False


# How each field is named in "X takes no ..." messages, and why some are missing.
_FIELD_LABELS: Final = {
    "resolution": "resolution",
    "seed": "seed",
    "preset": "preset",
    "loras": "LoRAs",
    "high_noise_loras": "high-noise LoRAs",
    "low_noise_loras": "low-noise LoRAs",
    "negative_prompt": "negative prompt",
    "last_image": "last image",
    "steps": "steps",
    "guidance_scale": "guidance scale",
    "flow_shift": "flow shift",
    "enable_safety_checker": "safety-checker switch",
}
_WHY_ABSENT: Final = {
    "resolution": "the model decides the size",
    "seed": "it always picks its own",
}


@dataclass(frozen=True)
class ModelSpec:
    """One model: where to send it, what it accepts, and how to build its request body."""

    id: str
    display_name: str
    provider: Literal["wavespeed", "novita"]
    endpoint: str  # path under the provider's base URL
    durations: tuple[int, ...]
    resolutions: tuple[str, ...]
    default_duration: int
    default_resolution: str | None
    typical_render_s: float
    params_cls: type[AnimateParams]
    seed_max: int | None = None  # None: the model takes no seed
    presets: tuple[str, ...] = ()  # first one is the default
    lora_rules: tuple[LoraRule, ...] = ()
    numbers: tuple[NumberRule, ...] = ()
    texts: tuple[str, ...] = ()  # optional text fields: negative_prompt, last_image
    flags: tuple[str, ...] = ()  # optional booleans: enable_safety_checker
    send_resolution: bool = True  # False when the endpoint itself fixes the resolution
    notes: tuple[str, ...] = ()  # extra lines for `python -m bot models`

    @property
    def fields(self) -> tuple[str, ...]:
        """Every input field this model accepts, in display order."""
        out = ["prompt", "duration"]
        out += ["resolution"] if len(self.resolutions) > 1 else []
        out += ["seed"] if self.seed_max is not None else []
        out += ["preset"] if self.presets else []
        out += [rule.field for rule in self.lora_rules]
        out += list(self.texts) + [rule.field for rule in self.numbers] + list(self.flags)
        return tuple(out)

    def validate(self, raw: Mapping[str, Any]) -> AnimateParams:
        """Loose input (chat, CLI, stored JSON) -> typed params; raises InvalidParameters."""
        if not isinstance(raw, Mapping):
            raise InvalidParameters("parameters must be a mapping of option names to values")
        by_field: dict[str, list[str]] = {}

        def on(name: str) -> list[str]:
            return by_field.setdefault(name, [])

        given = {str(k): v for k, v in raw.items() if v is not None}
        values: dict[str, Any] = {"model": self.id}
        values["prompt"] = self._prompt(given.get("prompt"), on("prompt"))
        values["duration"] = self._duration(given.get("duration"), on("duration"))
        if self.resolutions:
            values["resolution"] = self._resolution(given.get("resolution"), on("resolution"))
        if self.seed_max is not None and "seed" in given:
            values["seed"] = self._seed(given["seed"], on("seed"))
        if self.presets and "preset" in given:
            values["preset"] = self._preset(given["preset"], on("preset"))
        for rule in self.lora_rules:
            if rule.field in given:
                values[rule.field] = self._loras(rule, given[rule.field], on(rule.field))
        for name in self.texts:
            if name in given:
                values[name] = self._text_option(name, given[name], on(name))
        for number in self.numbers:
            if number.field in given:
                values[number.field] = self._number(number, given[number.field], on(number.field))
        for flag in self.flags:
            if flag in given:
                values[flag] = as_bool(flag.replace("_", " "), given[flag], on(flag))
        self._check_fields(given, by_field)
        problems = [p for found in by_field.values() for p in found]
        if problems:
            raise InvalidParameters(problems, fields=by_field)
        try:
            return self.params_cls(**{k: v for k, v in values.items() if v is not None})
        except ValidationError as exc:  # the checks above should make this unreachable
            raise InvalidParameters(
                [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
            ) from None

    # --- field checks, each appending sentences to `problems` ---

    def _check_fields(self, given: Mapping[str, Any], by_field: dict[str, list[str]]) -> None:
        allowed = set(self.fields)
        for name in given:
            if name in allowed:
                continue
            problems = by_field.setdefault(name, [])
            if name == "model":
                if given[name] != self.id:
                    problems.append(f"these options are for {self.id}, not {given[name]!r}")
            elif name == "seed" and self.seed_max is None and _is_random_seed(given[name]):
                continue  # -1 ("random") is what this model does anyway
            elif name == "resolution" and len(self.resolutions) == 1:
                continue  # checked against the one resolution offered
            elif name in _FIELD_LABELS:
                why = _WHY_ABSENT.get(name)
                problems.append(
                    f"{self.id} takes no {_FIELD_LABELS[name]}" + (f": {why}" if why else "")
                )
            else:
                problems.append(
                    f"unknown option {name!r}: {self.id} takes {_or_list(self.fields, 'and')}"
                )

    def _prompt(self, value: Any, problems: list[str]) -> str | None:
        if value is None:
            problems.append("a prompt is required: describe the motion you want")
            return None
        text = as_text("prompt", value, problems, max_chars=PROMPT_MAX_CHARS)
        if text == "":
            problems.append("the prompt is empty: describe the motion you want")
            return None
        return text

    def _duration(self, value: Any, problems: list[str]) -> int | None:
        if value is None:
            return self.default_duration
        seconds = as_int("duration", value, problems)
        if seconds is not None and seconds not in self.durations:
            problems.append(
                f"duration {seconds} is not offered by {self.id}: {_duration_choices(self)}"
            )
            return None
        return seconds

    def _resolution(self, value: Any, problems: list[str]) -> str | None:
        if value is None:
            return self.default_resolution
        text = str(value).strip().lower()
        text = text + "p" if text.isdigit() else text
        if text in self.resolutions:
            return text
        if len(self.resolutions) == 1:
            choice = f"it renders {self.resolutions[0]} only"
        else:
            choice = f"choose {_or_list(self.resolutions)}"
        problems.append(f"resolution {value!s} is not offered by {self.id}: {choice}")
        return None

    def _seed(self, value: Any, problems: list[str]) -> int | None:
        seed = as_int("seed", value, problems)
        assert self.seed_max is not None
        if seed is not None and not -1 <= seed <= self.seed_max:
            problems.append(
                f"seed {seed} is out of range for {self.id}: use -1 (random) to {self.seed_max}"
            )
            return None
        return seed

    def _preset(self, value: Any, problems: list[str]) -> str | None:
        text = str(value).strip().lower()
        if text in self.presets:
            return text
        problems.append(
            f"preset {value!s} is not offered by {self.id}: choose {_or_list(self.presets)}"
        )
        return None

    def _loras(self, rule: LoraRule, value: Any, problems: list[str]) -> tuple[LoraSpec, ...]:
        entries = lora_entries(rule.field, value, problems)
        if entries is None:
            return ()
        if len(entries) > rule.max_count:
            problems.append(
                f"too many {rule.label} ({len(entries)}): {self.id} takes at most {rule.max_count}"
            )
        out: list[LoraSpec] = []
        seen: set[str] = set()
        for entry in entries:
            path = self._lora_path(rule, entry["path"], problems)
            scale = entry["scale"]
            shown = entry["path"] if path is None else path
            if not LORA_SCALE_MIN <= scale <= LORA_SCALE_MAX:
                problems.append(f"LoRA {shown!r} scale {scale:g} is out of range: use 0 to 4")
                continue
            if path is None:
                continue
            if path in seen:
                problems.append(f"LoRA {path!r} is listed twice in {rule.label}: give it once")
                continue
            seen.add(path)
            out.append(LoraSpec(path=path, scale=scale))
        return tuple(out)

    def _lora_path(self, rule: LoraRule, path: str, problems: list[str]) -> str | None:
        if rule.keys is None:
            if is_http_url(path):
                return path
            problems.append(
                f"LoRA {path!r} is not a LoRA URL: {self.id} takes http(s) links to LoRA weights"
            )
            return None
        key = path.lower()
        if key in rule.keys:
            return key
        valid = ", ".join(rule.keys)
        close = difflib.get_close_matches(key, rule.keys, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        problems.append(f"unknown LoRA {path!r}: {hint}valid keys: {valid}")
        return None

    def _text_option(self, name: str, value: Any, problems: list[str]) -> str | None:
        label = _FIELD_LABELS.get(name, name)
        text = as_text(label, value, problems, max_chars=PROMPT_MAX_CHARS)
        if not text:
            return None
        if name == "last_image" and not is_http_url(text):
            problems.append("last image must be an http(s) URL of a picture")
            return None
        return text

    def _number(self, rule: NumberRule, value: Any, problems: list[str]) -> float | int | None:
        label = _FIELD_LABELS.get(rule.field, rule.field)
        number: float | int | None
        if rule.integer:
            number = as_int(label, value, problems)
        else:
            number = as_float(label, value, problems)
        if number is not None and not rule.low <= number <= rule.high:
            problems.append(
                f"{label} {number:g} is out of range for {self.id}: use {rule.low:g} to "
                f"{rule.high:g}"
            )
            return None
        return number

    # --- request body ---

    def build_payload(
        self,
        params: AnimateParams,
        *,
        image_url: str,
        image_size: tuple[int, int],
        last_image_url: str | None = None,
    ) -> dict[str, Any]:
        """The provider's JSON body for validated `params`.

        `image_url` is where the provider fetches the (re-hosted) input; `image_size` is its
        (width, height), which sets Novita's orientation. `last_image_url`, when given,
        replaces `params.last_image` (the service re-hosts that picture like the first one).
        """
        if params.model != self.id:
            raise ValueError(f"params for {params.model} given to {self.id}")
        if last_image_url is not None and "last_image" not in self.texts:
            raise ValueError(f"{self.id} takes no last image")
        if self.provider == "novita":
            return self._novita_payload(params, image_url=image_url, image_size=image_size)
        body: dict[str, Any] = {"image": image_url, "prompt": params.prompt}
        body["duration"] = params.duration
        if self.send_resolution and params.resolution is not None:
            body["resolution"] = params.resolution
        if self.seed_max is not None:
            body["seed"] = params.seed
        if self.presets:
            body["preset"] = getattr(params, "preset", self.presets[0])
        for rule in self.lora_rules:
            _put_loras(body, rule.field, getattr(params, rule.field, ()))
        negative = getattr(params, "negative_prompt", None)
        if negative:
            body["negative_prompt"] = negative
        last_image = last_image_url or getattr(params, "last_image", None)
        if last_image:
            body["last_image"] = last_image
        return body

    def _novita_payload(
        self, params: AnimateParams, *, image_url: str, image_size: tuple[int, int]
    ) -> dict[str, Any]:
        assert isinstance(params, Wan21Params)
        width, height = image_size
        if width <= 0 or height <= 0:
            raise ValueError(f"image size {width}x{height} is not a picture size")
        landscape, portrait = NOVITA_SIZES[params.resolution]
        out_width, out_height = portrait if height > width else landscape
        body: dict[str, Any] = {
            "model_name": NOVITA_MODEL_NAME,
            "image_url": image_url,
            "prompt": params.prompt,
            "width": out_width,
            "height": out_height,
            "seed": params.seed,
            "steps": params.steps,
            "guidance_scale": params.guidance_scale,
            "flow_shift": params.flow_shift,
        }
        if params.negative_prompt:
            body["negative_prompt"] = params.negative_prompt
        _put_loras(body, "loras", params.loras)
        if params.enable_safety_checker is not None:
            body["enable_safety_checker"] = params.enable_safety_checker
        return body


def _put_loras(body: dict[str, Any], name: str, loras: tuple[LoraSpec, ...]) -> None:
    # An empty list is omitted: the provider's default (a preset's own LoRAs) then applies.
    if loras:
        body[name] = [{"path": lora.path, "scale": lora.scale} for lora in loras]


def _is_random_seed(value: Any) -> bool:
    return as_int("seed", value, []) == -1


def _or_list(items: tuple[str, ...] | list[str], word: str = "or") -> str:
    words = [str(i) for i in items]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {word} {words[-1]}"


def _duration_choices(spec: ModelSpec) -> str:
    durations = spec.durations
    if len(durations) == 1:
        return f"it is fixed at {durations[0]} seconds"
    if durations == tuple(range(durations[0], durations[-1] + 1)):
        return f"choose {durations[0]} to {durations[-1]} seconds"
    return f"choose {_or_list([str(d) for d in durations])}"


def describe_options(spec: ModelSpec) -> list[str]:
    """Human lines about a model's options (for `python -m bot models`)."""
    lines = [f"durations: {_span(spec.durations)} s (default {spec.default_duration})"]
    if len(spec.resolutions) == 1:
        lines.append(f"resolution: {spec.resolutions[0]} only")
    elif spec.resolutions:
        lines.append(
            f"resolutions: {', '.join(spec.resolutions)} (default {spec.default_resolution})"
        )
    else:
        lines.append("resolution: none to choose (the model decides)")
    if spec.seed_max is not None:
        lines.append(f"seed: -1 (random) to {spec.seed_max}")
    if spec.presets:
        lines.append(f"preset: {', '.join(spec.presets)} (default {spec.presets[0]})")
    for lora in spec.lora_rules:
        what = (
            "these keys: " + ", ".join(lora.keys) if lora.keys else "http(s) URLs to LoRA weights"
        )
        lines.append(
            f"{lora.field}: at most {lora.max_count}, each PATH=SCALE with scale 0 to 4; "
            f"paths are {what}"
        )
    if not spec.lora_rules:
        lines.append("LoRAs: none")
    for number in spec.numbers:
        lines.append(f"{number.field}: {number.low:g} to {number.high:g}")
    extras = list(spec.texts) + list(spec.flags)
    if extras:
        lines.append("also: " + ", ".join(extras))
    return lines + list(spec.notes)


def _span(values: tuple[int, ...]) -> str:
    if len(values) > 2 and values == tuple(range(values[0], values[-1] + 1)):
        return f"{values[0]}-{values[-1]}"
    return ", ".join(str(v) for v in values)


_OPENVIDEO_COMMON: Final[dict[str, Any]] = {
    "provider": "wavespeed",
    "durations": tuple(range(3, 21)),
    "resolutions": ("480p", "720p", "1080p"),
    "default_duration": 5,
    "default_resolution": "480p",
    "seed_max": WAVESPEED_SEED_MAX,
}

_MODELS: Final = (
    ModelSpec(
        id="openvideo",
        display_name="OpenVideo",
        endpoint="/api/v3/wavespeed-ai/open-video/image-to-video",
        typical_render_s=60.0,
        params_cls=OpenVideoParams,
        **_OPENVIDEO_COMMON,
    ),
    ModelSpec(
        id="openvideo-lora",
        display_name="OpenVideo with LoRAs",
        endpoint="/api/v3/wavespeed-ai/open-video/image-to-video-lora",
        typical_render_s=75.0,
        params_cls=OpenVideoLoraParams,
        presets=("tuned", "original"),
        lora_rules=(LoraRule("loras", "LoRAs", len(OPENVIDEO_LORA_KEYS), OPENVIDEO_LORA_KEYS),),
        notes=("a scale of 0 turns off a LoRA the preset would apply",),
        **_OPENVIDEO_COMMON,
    ),
    ModelSpec(
        id="sora-2",
        display_name="Sora 2",
        provider="wavespeed",
        endpoint="/api/v3/openai/sora-2/image-to-video",
        durations=(4, 8, 12, 16, 20),
        resolutions=(),
        default_duration=4,
        default_resolution=None,
        typical_render_s=120.0,
        params_cls=Sora2Params,
    ),
    ModelSpec(
        id="wan-2.2-fast",
        display_name="Wan 2.2 ultra-fast (480p, LoRAs)",
        provider="wavespeed",
        endpoint="/api/v3/wavespeed-ai/wan-2.2/i2v-480p-lora-ultra-fast",
        durations=(5, 8),
        resolutions=("480p",),
        default_duration=5,
        default_resolution="480p",
        typical_render_s=30.0,
        params_cls=Wan22FastParams,
        seed_max=WAVESPEED_SEED_MAX,
        lora_rules=(
            LoraRule("loras", "LoRAs", 3),
            LoraRule("high_noise_loras", "high-noise LoRAs", 3),
            LoraRule("low_noise_loras", "low-noise LoRAs", 3),
        ),
        texts=("negative_prompt", "last_image"),
        send_resolution=False,  # the endpoint path fixes 480p
    ),
    ModelSpec(
        id="wan-2.1",
        display_name="Wan 2.1 (Novita)",
        provider="novita",
        endpoint="/v3/async/wan-i2v",
        durations=(5,),
        resolutions=("480p", "720p"),
        default_duration=5,
        default_resolution="480p",
        typical_render_s=180.0,
        params_cls=Wan21Params,
        seed_max=NOVITA_SEED_MAX,
        lora_rules=(LoraRule("loras", "LoRAs", 3),),
        numbers=(
            NumberRule("steps", 1, 40, integer=True),
            NumberRule("guidance_scale", 0, 10),
            NumberRule("flow_shift", 1, 10),
        ),
        texts=("negative_prompt",),
        flags=("enable_safety_checker",),
        notes=("width x height follow the input image: 832x480/480x832 or 1280x720/720x1280",),
    ),
)

CATALOG: Final[Mapping[str, ModelSpec]] = MappingProxyType({m.id: m for m in _MODELS})


def get_model(model_id: str) -> ModelSpec:
    """The spec for `model_id` (case-insensitive); InvalidParameters names the choices."""
    spec = CATALOG.get(str(model_id).strip().lower())
    if spec is None:
        close = difflib.get_close_matches(str(model_id).lower(), list(CATALOG), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise InvalidParameters(
            f"unknown model {model_id!r}: {hint}choose {_or_list(list(CATALOG))}"
        )
    return spec


__all__ = [
    "CATALOG",
    "NOVITA_SIZES",
    "OPENVIDEO_LORA_KEYS",
    "LoraRule",
    "ModelSpec",
    "NumberRule",
    "describe_options",
    "get_model",
]
