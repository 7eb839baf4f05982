"""The sentences people read in a chat, written once for Discord and Slack."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.chat.markup import Markup
from providers.catalog import CATALOG
from providers.money import format_usd
from storage import Job, Reservation


def model_name(model_id: str) -> str:
    spec = CATALOG.get(model_id)
    return spec.display_name if spec else model_id


def option_words(model_id: str, params: Mapping[str, Any]) -> list[str]:
    """'720p', '5 s', 'LoRAs omninft 0.8', 'seed 42' - the options a person chose, short."""
    words: list[str] = []
    if params.get("resolution"):
        words.append(str(params["resolution"]))
    if params.get("duration"):
        words.append(f"{params['duration']} s")
    if params.get("preset") and params.get("preset") != "tuned":
        words.append(f"preset {params['preset']}")
    for field, label in (
        ("loras", "LoRAs"),
        ("high_noise_loras", "high-noise LoRAs"),
        ("low_noise_loras", "low-noise LoRAs"),
    ):
        loras = params.get(field) or []
        if loras:
            shown = ", ".join(f"{_lora_name(lo['path'])} {lo['scale']:g}" for lo in loras)
            words.append(f"{label} {shown}")
    seed = params.get("seed")
    if seed is not None and CATALOG.get(model_id) and CATALOG[model_id].seed_max is not None:
        words.append("random seed" if seed == -1 else f"seed {seed}")
    if params.get("negative_prompt"):
        words.append("with a negative prompt")
    if params.get("last_image"):
        words.append("with a last frame")
    return words


def _lora_name(path: str) -> str:
    """A LoRA URL shown by its file name; a key as it is."""
    if "://" in path:
        return path.rstrip("/").rsplit("/", 1)[-1]
    return path


def request_summary(job: Job, m: Markup) -> str:
    """The public reply to /animate: who asked, what, and the exact price held."""
    words = " · ".join([m.bold(model_name(job.model)), *option_words(job.model, job.params)])
    return (
        f"{words}\n{m.quote(job.prompt)}\n"
        f"{m.mention(job.user_id)} · {m.bold(format_usd(job.cost_micros))} held · "
        f"job {m.code(job.id)}"
    )


def job_line(
    job: Job, reservation: Reservation | None, m: Markup, *, link: str | None = None
) -> str:
    """One line of /jobs: state, model, what it cost (from the ledger), a link to the clip."""
    from bot.chat.status import STATE_WORDS, cost_words

    state = STATE_WORDS.get(job.status.value, job.status.value)
    clip = f" · {m.link('clip', link)}" if link else ""
    return (
        f"{m.code(job.id)} {state} · {model_name(job.model)} · "
        f"{cost_words(job, reservation)}{clip}"
    )


def confirm_again(cost_micros: int, *, reroll: bool, m: Markup) -> str:
    what = "A re-roll (same options, a new seed)" if reroll else "A retry (same options)"
    return (
        f"{what} is a new clip and costs {m.bold(format_usd(cost_micros))}, held now and "
        "charged when it is made. Press Confirm to start it."
    )


def started_again(job: Job, *, reroll: bool, m: Markup) -> str:
    what = "Re-roll" if reroll else "Retry"
    return (
        f"{what} started as job {m.code(job.id)}: {format_usd(job.cost_micros)} held. "
        "Its status and clip will appear in the thread."
    )


def cancel_recorded(job: Job) -> str:
    """What a Cancel press did, in words (issue: cancel must not look like nothing happened)."""
    if job.provider_task_id is None:
        return "Cancelled before it reached the provider: you will not be charged."
    return (
        "Cancel requested. The provider has already started, so it will still charge "
        f"{format_usd(job.cost_micros)}; the clip will be discarded."
    )


def refused(message: str) -> str:
    """A refusal as a person reads it: one sentence, capitalised, saying that it cost
    nothing (refusals always happen before any money is held)."""
    text = " ".join(message.split())
    text = text[:1].upper() + text[1:]
    if text and not text.endswith((".", "!", "?")):
        text += "."
    if "charged" not in text.lower():
        text += " Nothing was charged."
    return text


def missing_permissions(missing: list[str]) -> str:
    listed = ", ".join(missing)
    return (
        f"I can't work in this channel: I'm missing the {listed} permission"
        f"{'s' if len(missing) > 1 else ''}. Ask a moderator to grant it, or use another "
        "channel. Nothing was charged."
    )
