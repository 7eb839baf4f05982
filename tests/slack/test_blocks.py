"""The pure Block Kit builders: within Slack's limits for every model, the form read back as
entered, errors placed on their fields, and where the modal came from kept."""

from __future__ import annotations

import json

import pytest

from bot.chat.actions import Action, button
from bot.errors import RequestRefused
from bot.slack_adapter.blocks import actions, refusal
from bot.slack_adapter.files import SlackFile
from bot.slack_adapter.modal import (
    METADATA_MAX,
    ModalForm,
    ModalOrigin,
    build_modal,
    field_errors,
    read_form,
)
from providers.catalog import CATALOG
from tests.slack.payloads import with_state

MODELS = list(CATALOG.values())


@pytest.mark.parametrize("model", [m.id for m in MODELS])
def test_the_modal_stays_within_slacks_limits(model: str) -> None:
    view = build_modal(
        models=MODELS, form=ModalForm(model=model, prompt="p" * 2000),
        origin=ModalOrigin("C1"), price="*Price: $0.10*",
    )  # fmt: skip
    assert len(view["title"]["text"]) <= 24 and len(view["submit"]["text"]) <= 24
    assert len(view["blocks"]) <= 100 and len(json.dumps(view)) < 250_000
    ids = [b["block_id"] for b in view["blocks"] if "block_id" in b]
    assert len(ids) == len(set(ids))
    for block in view["blocks"]:
        for option in block.get("element", {}).get("options", []):
            assert len(option["text"]["text"]) <= 75
        assert len(block.get("label", {}).get("text", "")) <= 2000


def test_the_form_reads_back_what_was_entered() -> None:
    form = ModalForm(
        model="wan-2.2-fast", prompt="a cat", duration="8", seed="42",
        negative_prompt="blur", loras={"loras": "wiggle:0.5", "low_noise_loras": "x"},
    )  # fmt: skip
    view = build_modal(models=MODELS, form=form, origin=ModalOrigin("C1"), price="")
    again = read_form(with_state(view), default_model="openvideo")
    assert again == form
    options = again.options(CATALOG["wan-2.2-fast"])
    assert options["loras"] == [{"path": "wiggle", "scale": 0.5}]
    assert options["low_noise_loras"] == [{"path": "x", "scale": None}]
    assert options["seed"] == "42" and "resolution" not in options


def test_a_lora_list_that_cannot_be_read_names_its_field() -> None:
    with pytest.raises(RequestRefused) as caught:
        ModalForm(model="openvideo-lora", loras={"loras": "omninft:lots"}).options(
            CATALOG["openvideo-lora"]
        )
    assert list(caught.value.fields) == ["loras"]


def test_errors_land_on_their_fields_and_the_rest_on_the_model() -> None:
    view = build_modal(models=MODELS, form=ModalForm(model="openvideo-lora"),
                       origin=ModalOrigin("C1"), price="")  # fmt: skip
    fields = {"duration": ["duration 30 is not offered"], "loras": ["unknown LoRA"],
              "image": ["too small"]}  # fmt: skip
    exc = RequestRefused("x", fields=fields)
    errors = field_errors(exc, view, "openvideo-lora")
    assert errors == {
        "duration/openvideo-lora": "Duration 30 is not offered",
        "lora:loras/openvideo-lora": "Unknown LoRA",
        "image": "Too small",
    }
    assert field_errors(RequestRefused("over the cap"), view, "openvideo-lora") == {
        "model": "Over the cap"
    }


def test_where_the_modal_came_from_round_trips_and_fits() -> None:
    image = SlackFile(id="F1", name="cat.png", url="https://files.slack.com/x/cat.png")
    origin = ModalOrigin("C1", "1.2", image)
    assert ModalOrigin.load(origin.dump()) == ModalOrigin(
        "C1", "1.2", SlackFile(id="F1", name="cat.png", url=image.url)
    )
    huge = ModalOrigin("C1", None, SlackFile(id="F2", name="n", url="https://x/" + "a" * 4000))
    assert len(huge.dump()) <= METADATA_MAX
    assert ModalOrigin.load(huge.dump()).image == SlackFile(id="F2", name="", needs_info=True)
    assert ModalOrigin.load("not json") == ModalOrigin("")


def test_buttons_carry_the_shared_ids_and_delete_asks_first() -> None:
    (block,) = actions([button(Action.REROLL, "abc123"), button(Action.DELETE, "abc123")])
    reroll, delete = block["elements"]
    assert reroll["action_id"] == "animate:reroll:abc123" and "style" not in reroll
    assert delete["style"] == "danger" and delete["confirm"]["confirm"]["text"] == "Delete"


def test_a_refusal_always_says_what_it_cost() -> None:
    assert refusal("The image is too small.") == "The image is too small. Nothing was charged."
    assert refusal("Paused; nothing was charged.") == "Paused; nothing was charged."
