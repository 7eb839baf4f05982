"""The buttons on status and result messages, as discord.py `DynamicItem`s.

A button's whole state is its custom id (`animate:<action>:<job id>`, see
`bot.chat.actions`), so discord.py rebuilds the button from the id alone on any process and
after any restart (discord.py docs: "DynamicItem"). Pressing it hands the interaction to
the client's `PressHandler`: who may press what is decided in `bot.chat`, not here.
"""

from __future__ import annotations

import re
from typing import Any, Protocol, cast

import discord

from bot.chat.actions import CUSTOM_ID, Action, Button, button, parse_custom_id

STYLE = {
    "primary": discord.ButtonStyle.primary,
    "secondary": discord.ButtonStyle.secondary,
    "danger": discord.ButtonStyle.danger,
}


class PressHandler(Protocol):
    async def press(
        self, interaction: discord.Interaction[Any], action: Action | None, job_id: str
    ) -> None: ...


class HasPresses(Protocol):
    presses: PressHandler


class AnimateButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]], template=CUSTOM_ID.pattern
):
    def __init__(self, button: Button) -> None:
        super().__init__(
            discord.ui.Button(
                label=button.label, style=STYLE[button.style], custom_id=button.custom_id
            )
        )
        self.action: Action | None = button.action
        self.job_id = button.job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any],
        match: re.Match[str], /,
    ) -> AnimateButton:  # fmt: skip
        parsed = parse_custom_id(match.group(0))
        if parsed is None:  # an action an older or newer version of the bot made
            made = cls(Button(Action.CANCEL, match["job"], "?", "secondary"))
            made.action = None
            return made
        action, job_id = parsed
        return cls(button(action, job_id))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        client = cast(HasPresses, interaction.client)
        await client.presses.press(interaction, self.action, self.job_id)


def buttons_view(buttons: list[Button]) -> discord.ui.View | None:
    """A view holding `buttons` (None when there are none). It has no timeout and is never
    stored per message: the dynamic items answer presses on any process."""
    if not buttons:
        return None
    view = discord.ui.View(timeout=None)
    for b in buttons[:25]:
        view.add_item(AnimateButton(b))
    return view


# The "Animate this image" form: its id names the message whose image it animates, so a
# submit is understood on any process, after a restart too (it is not a stored view).
FORM_ID = re.compile(r"^animate-form:(?P<channel>\d{1,20}):(?P<message>\d{1,20})$")


def form_id(channel_id: int, message_id: int) -> str:
    return f"animate-form:{channel_id}:{message_id}"


class AnimateForm(discord.ui.Modal):
    """The prompt and options for a message's image (a modal holds at most five inputs:
    seed, preset and the negative prompt stay with /animate)."""

    def __init__(self, channel_id: int, message_id: int, *, model: str, models: str) -> None:
        super().__init__(title="Animate this image", custom_id=form_id(channel_id, message_id))
        self.add_item(
            discord.ui.TextInput(
                label="Prompt", custom_id="prompt", style=discord.TextStyle.paragraph,
                placeholder="What should happen in the clip?", max_length=2000,
            )
        )  # fmt: skip
        self.add_item(
            discord.ui.TextInput(
                label="Model", custom_id="model", default=model, max_length=40,
                placeholder=models[:100],
            )
        )  # fmt: skip
        self.add_item(
            discord.ui.TextInput(
                label="Duration (seconds)", custom_id="duration", required=False,
                max_length=3, placeholder="the model's default",
            )
        )  # fmt: skip
        self.add_item(
            discord.ui.TextInput(
                label="Resolution", custom_id="resolution", required=False, max_length=10,
                placeholder="480p, 720p or 1080p, as the model offers",
            )
        )  # fmt: skip
        self.add_item(
            discord.ui.TextInput(
                label="LoRAs", custom_id="loras", required=False, max_length=400,
                placeholder="e.g. omninft:0.5, better_motion:0.3",
            )
        )  # fmt: skip
