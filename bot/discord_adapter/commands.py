"""The application commands members use: /animate, "Animate this image", /usage, /models,
/jobs. Each binds Discord's options to a `DiscordFrontDoor` method and nothing more.

Choices and autocomplete are a convenience, not validation (Discord: "validation is
client-side only"); the service checks every value again.
"""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands

from bot.chat.options import duration_choices, model_choices, resolution_choices
from bot.discord_adapter.front import DiscordFrontDoor
from bot.discord_adapter.render import app_choices
from providers.catalog import CATALOG
from providers.params import PROMPT_MAX_CHARS

Prompt = app_commands.Range[str, 1, PROMPT_MAX_CHARS]
Seed = app_commands.Range[int, -1]
AppCommand = app_commands.Command[Any, ..., Any] | app_commands.ContextMenu


def member_commands(front: DiscordFrontDoor) -> list[AppCommand]:
    models = app_choices(model_choices(front.service))[:25]
    presets = [app_commands.Choice(name=p, value=p) for p in _presets()]

    def chosen(interaction: discord.Interaction[Any]) -> str:
        return getattr(interaction.namespace, "model", None) or front.default_model()

    async def durations(
        interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[int]]:
        spec = CATALOG.get(chosen(interaction))
        found = duration_choices(spec) if spec else []
        typed = str(current or "").strip()
        return [
            app_commands.Choice(name=c.name, value=int(c.value))
            for c in found
            if c.value.startswith(typed)
        ][:25]

    async def resolutions(
        interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        spec = CATALOG.get(chosen(interaction))
        found = resolution_choices(spec) if spec else []
        return app_choices([c for c in found if c.value.startswith(str(current or "").lower())])

    @app_commands.command(
        name="animate", description="Turn an image into a short video clip, priced before it starts"
    )
    @app_commands.guild_only()
    @app_commands.describe(
        image="The picture to animate (PNG, JPEG or WEBP, up to 10 MB)",
        prompt="What should happen in the clip",
        model="Which video model (see /models for options and prices)",
        duration="Length in seconds (the model's default when left out)",
        resolution="480p, 720p or 1080p, as the model offers",
        loras="LoRAs with strengths, e.g. omninft:0.5, better_motion:0.3 (or saved names)",
        preset="OpenVideo with LoRAs: tuned or original",
        seed="A seed to repeat a result; -1 for random",
        negative_prompt="What the clip should avoid (models that take one)",
        last_image="The picture the clip should end on (Wan 2.2 only)",
    )
    @app_commands.autocomplete(duration=durations)
    @app_commands.autocomplete(resolution=resolutions, loras=front.suggest_loras)
    async def animate(
        interaction: discord.Interaction[Any],
        image: discord.Attachment,
        prompt: Prompt,
        model: str | None = None,
        duration: int | None = None,
        resolution: str | None = None,
        loras: str | None = None,
        preset: str | None = None,
        seed: Seed | None = None,
        negative_prompt: str | None = None,
        last_image: discord.Attachment | None = None,
    ) -> None:
        options = {
            "duration": duration,
            "resolution": resolution,
            "preset": preset,
            "seed": seed,
            "negative_prompt": negative_prompt,
            "last_image": last_image.url if last_image else None,
        }
        await front.animate_command(
            interaction, image=image, prompt=prompt, model=model, options=options, loras=loras
        )

    if models:
        animate = app_commands.choices(model=models)(animate)
    if presets:
        animate = app_commands.choices(preset=presets)(animate)

    @app_commands.context_menu(name="Animate this image")
    @app_commands.guild_only()
    async def animate_this(interaction: discord.Interaction[Any], message: discord.Message) -> None:
        await front.open_form(interaction, message)

    @app_commands.command(
        name="usage", description="What you have spent, have held and have left, with a chart"
    )
    @app_commands.guild_only()
    async def usage(interaction: discord.Interaction[Any]) -> None:
        await front.usage(interaction)

    @app_commands.command(name="models", description="The video models you can use, and prices")
    @app_commands.guild_only()
    async def models_cmd(interaction: discord.Interaction[Any]) -> None:
        await front.models(interaction)

    @app_commands.command(name="jobs", description="Your recent clips, their state and links")
    @app_commands.guild_only()
    async def jobs(interaction: discord.Interaction[Any]) -> None:
        await front.jobs(interaction)

    return [animate, animate_this, usage, models_cmd, jobs]


def _presets() -> list[str]:
    seen: list[str] = []
    for spec in CATALOG.values():
        seen += [p for p in spec.presets if p not in seen]
    return seen
