"""The /animate modal: Block Kit out, form values and field errors in. Pure functions.

Blocks that depend on the model carry it in their id (`duration/sora-2`): Slack keeps what a
person entered across `views.update` only for the same block and action ids, so choosing
another model resets its options to that model's defaults instead of keeping a duration the
new model does not offer. Where the modal came from (channel, thread, the shortcut's image)
rides in `private_metadata`, because a view submission names no channel.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.chat.markup import SLACK
from bot.chat.options import duration_choices, parse_loras, resolution_choices
from bot.errors import RequestRefused
from bot.slack_adapter.blocks import context, plain, section
from bot.slack_adapter.files import IMAGE_FILETYPES, SlackFile, files_in
from providers.catalog import ModelSpec
from providers.params import PROMPT_MAX_CHARS
from storage import SavedLora

CALLBACK_ID = "animate_modal"
IMAGE, PROMPT, MODEL, PRICE = "image", "prompt", "model", "price"
# options whose block id carries the model, in display order after the model select
SELECTS = ("duration", "resolution", "preset")
TEXTS = ("seed", "negative_prompt")
MAX_OPTIONS = 100  # Block Kit's static_select limit
METADATA_MAX = 3000


@dataclass(frozen=True)
class ModalOrigin:
    """Where the modal was opened: the reply goes to this channel (and thread); a message
    shortcut also names its image."""

    channel_id: str
    thread_ts: str | None = None
    image: SlackFile | None = None

    def dump(self) -> str:
        data: dict[str, Any] = {"c": self.channel_id, "t": self.thread_ts}
        if self.image is not None:
            data["f"] = self.image.to_metadata()
        text = json.dumps(data, separators=(",", ":"))
        if len(text) > METADATA_MAX and self.image is not None:  # a huge file name or link
            data["f"] = {"id": self.image.id}
            text = json.dumps(data, separators=(",", ":"))
        return text

    @classmethod
    def load(cls, text: str | None) -> ModalOrigin:
        try:
            data = json.loads(text or "{}")
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        image = data.get("f")
        return cls(
            channel_id=str(data.get("c") or ""),
            thread_ts=str(data["t"]) if data.get("t") else None,
            image=SlackFile.from_metadata(image) if isinstance(image, dict) else None,
        )


@dataclass(frozen=True)
class ModalForm:
    """What the person has entered so far (strings as typed; None when left empty)."""

    model: str
    prompt: str = ""
    duration: str | None = None
    resolution: str | None = None
    preset: str | None = None
    seed: str | None = None
    negative_prompt: str | None = None
    loras: Mapping[str, str] = field(default_factory=dict)  # LoRA field -> text
    files: tuple[SlackFile, ...] = ()

    def options(self, spec: ModelSpec) -> dict[str, Any]:
        """The options for the service; a LoRA list that cannot be read raises
        RequestRefused naming its field."""
        out: dict[str, Any] = {}
        for name in SELECTS + TEXTS:
            value = getattr(self, name)
            if value not in (None, "") and name in spec.fields:
                out[name] = value
        problems: dict[str, list[str]] = {}
        for rule in spec.lora_rules:
            text = self.loras.get(rule.field, "").strip()
            if not text:
                continue
            try:
                out[rule.field] = parse_loras(text, field=rule.field)
            except RequestRefused as exc:
                problems.update(exc.fields)
        if problems:
            raise RequestRefused(
                "; ".join(p for ps in problems.values() for p in ps), fields=problems
            )
        return out


def block_id(name: str, model: str) -> str:
    return f"{name}/{model}"


def read_form(view: Mapping[str, Any], *, default_model: str) -> ModalForm:
    """The form as the view's state has it (a block action or a submission)."""
    values: Mapping[str, Any] = view.get("state", {}).get("values", {}) or {}

    def element(block: str) -> Mapping[str, Any]:
        actions = values.get(block) or {}
        return next(iter(actions.values()), {}) if isinstance(actions, Mapping) else {}

    def chosen(block: str) -> str | None:
        el = element(block)
        option = el.get("selected_option") or {}
        value = option.get("value") if isinstance(option, Mapping) else None
        if value is None:
            value = el.get("value")
        return str(value) if value not in (None, "") else None

    model = chosen(MODEL) or default_model
    loras = {
        name.split("/", 1)[0].removeprefix("lora:"): str(element(name).get("value"))
        for name in values
        if name.startswith("lora:") and name.endswith(f"/{model}") and element(name).get("value")
    }
    return ModalForm(
        model=model,
        prompt=str(element(PROMPT).get("value") or ""),
        duration=chosen(block_id("duration", model)),
        resolution=chosen(block_id("resolution", model)),
        preset=chosen(block_id("preset", model)),
        seed=chosen(block_id("seed", model)),
        negative_prompt=chosen(block_id("negative_prompt", model)),
        loras=loras,
        files=tuple(files_in(element(IMAGE).get("files"))),
    )


def shown_spec(models: Sequence[ModelSpec], form: ModalForm) -> ModelSpec:
    """The model the modal shows for `form`: the chosen one, or the first when it is gone."""
    return next((s for s in models if s.id == form.model), models[0])


def lists_saved_loras(spec: ModelSpec) -> bool:
    """Whether the modal for `spec` lists the server's saved LoRAs (in a URL-LoRA hint)."""
    return any(not rule.keys for rule in spec.lora_rules)


def build_modal(
    *,
    models: Sequence[ModelSpec],
    form: ModalForm,
    origin: ModalOrigin,
    price: str,
    saved: Sequence[SavedLora] = (),
) -> dict[str, Any]:
    """The whole modal for `form` (initial values = what was entered), with `price`, a
    mrkdwn line computed by the caller from the service's quote; `saved`: the server's
    saved LoRAs, read only by the hint of a URL-LoRA field (see `lists_saved_loras`)."""
    spec = shown_spec(models, form)
    blocks: list[dict[str, Any]] = []
    if origin.image is not None:
        name = origin.image.name or "the message's image"
        blocks.append(context(f"Animating *{SLACK.escape(name)}* from the message."))
    else:
        blocks.append(
            {
                "type": "input",
                "block_id": IMAGE,
                "label": plain("Image"),
                "element": {
                    "type": "file_input",
                    "action_id": IMAGE,
                    "filetypes": sorted(IMAGE_FILETYPES),
                    "max_files": 1,
                },
                "hint": plain("One picture, at most 10 MB; it becomes the first frame."),
            }
        )
    blocks.append(
        _text_input(PROMPT, "Prompt", form.prompt, multiline=True,
                    placeholder="What should move, and how?", max_length=PROMPT_MAX_CHARS)
    )  # fmt: skip
    blocks.append(
        _select(MODEL, "Model", [(s.display_name, s.id) for s in models], spec.id,
                dispatch=True)
    )  # fmt: skip
    durations = [(c.name, c.value) for c in duration_choices(spec)]
    blocks.append(
        _select(block_id("duration", spec.id), "Duration", durations,
                form.duration or str(spec.default_duration), dispatch=True)
    )  # fmt: skip
    if len(spec.resolutions) > 1:
        resolutions = [(c.name, c.value) for c in resolution_choices(spec)]
        blocks.append(
            _select(block_id("resolution", spec.id), "Resolution", resolutions,
                    form.resolution or spec.default_resolution, dispatch=True)
        )  # fmt: skip
    if spec.presets:
        presets = [(p, p) for p in spec.presets]
        blocks.append(
            _select(block_id("preset", spec.id), "Preset", presets, form.preset or spec.presets[0],
                    dispatch=True)
        )  # fmt: skip
    for rule in spec.lora_rules:
        blocks.append(
            _text_input(
                block_id(f"lora:{rule.field}", spec.id), rule.label,
                form.loras.get(rule.field, ""), optional=True, dispatch=True,
                placeholder="name:strength, name:strength",
                hint=_lora_hint(spec, rule.keys, saved),
            )
        )  # fmt: skip
    if spec.seed_max is not None:
        blocks.append(
            _text_input(block_id("seed", spec.id), "Seed", form.seed or "", optional=True,
                        dispatch=True, placeholder=f"-1 (random) to {spec.seed_max}")
        )  # fmt: skip
    if "negative_prompt" in spec.texts:
        blocks.append(
            _text_input(block_id("negative_prompt", spec.id), "Negative prompt",
                        form.negative_prompt or "", optional=True, multiline=True,
                        placeholder="What the clip should avoid", max_length=PROMPT_MAX_CHARS)
        )  # fmt: skip
    blocks.append(section(price, PRICE))
    return {
        "type": "modal",
        "callback_id": CALLBACK_ID,
        "title": plain("Animate an image"),
        "submit": plain("Animate"),
        "close": plain("Cancel"),
        "private_metadata": origin.dump(),
        "blocks": blocks,
    }


def field_errors(exc: RequestRefused, view: Mapping[str, Any], model: str) -> dict[str, str]:
    """A refusal as `response_action: errors` wants it: a sentence under each field it is
    about; what is about no field in the form (a cap, a pause) goes under the model."""
    present = {b.get("block_id") for b in view.get("blocks", []) if b.get("type") == "input"}
    out: dict[str, list[str]] = {}
    for name, problems in (exc.fields or {"": [exc.user_message]}).items():
        target = next(
            (b for b in (name, block_id(name, model), block_id(f"lora:{name}", model))
             if b in present),
            MODEL,
        )  # fmt: skip
        out.setdefault(target, []).extend(problems)
    return {block: _sentence("; ".join(problems)) for block, problems in out.items()}


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] if text else text


def _lora_hint(spec: ModelSpec, keys: tuple[str, ...] | None, saved: Sequence[SavedLora]) -> str:
    if keys:
        return f"Keys: {', '.join(keys)}. Write key:strength (0 to 4), e.g. {keys[0]}:0.8."
    if saved:
        names = ", ".join(f"{s.name} ({s.scale:g})" for s in saved[:20])
        return f"Saved here: {names}. Or a LoRA link; write name:strength (0 to 4)."
    return "LoRA links, each with :strength (0 to 4). Admins can save LoRAs by name."


def _select(
    block: str, label: str, options: Sequence[tuple[str, str]], initial: str | None,
    *, dispatch: bool = False,
) -> dict[str, Any]:  # fmt: skip
    opts = [{"text": plain(name[:75]), "value": value} for name, value in options][:MAX_OPTIONS]
    element: dict[str, Any] = {
        "type": "static_select",
        "action_id": block.split("/", 1)[0],
        "options": opts,
    }
    chosen = next((o for o in opts if o["value"] == initial), opts[0] if opts else None)
    if chosen is not None:
        element["initial_option"] = chosen
    return {
        "type": "input",
        "block_id": block,
        "label": plain(label),
        "element": element,
        "dispatch_action": dispatch,
    }


def _text_input(
    block: str, label: str, initial: str, *, optional: bool = False, multiline: bool = False,
    dispatch: bool = False, placeholder: str = "", hint: str = "", max_length: int = 0,
) -> dict[str, Any]:  # fmt: skip
    element: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": block.split("/", 1)[0],
        "multiline": multiline,
    }
    if initial:
        element["initial_value"] = initial
    if placeholder:
        element["placeholder"] = plain(placeholder)
    if max_length:
        element["max_length"] = max_length
    if dispatch:
        element["dispatch_action_config"] = {"trigger_actions_on": ["on_enter_pressed"]}
    out: dict[str, Any] = {
        "type": "input",
        "block_id": block,
        "label": plain(label),
        "element": element,
        "optional": optional,
        "dispatch_action": dispatch,
    }
    if hint:
        out["hint"] = plain(hint[:2000])
    return out

