"""The /animate modal: the exact price as the choices change (no money moves), and every
refusal shown on its field (`response_action: errors`) with nothing reserved. What can only
be learnt after the ack (the image's bytes, a cap filled meanwhile) is told privately."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.models import AnimateRequest, ImageSource
from tests.fixtures_sim import make_png
from tests.slack import payloads
from tests.slack.conftest import SlackHarness


def price_of(view: dict[str, Any]) -> str:
    block = next(b for b in view["blocks"] if b.get("block_id") == "price")
    return str(block["text"]["text"])


def block_ids(view: dict[str, Any]) -> list[str]:
    return [b["block_id"] for b in view["blocks"] if b.get("type") == "input"]


async def assert_nothing_reserved(slack: SlackHarness) -> None:
    assert await slack.app.db.jobs.list_jobs(limit=5) == []
    assert await slack.app.db.ledger.entries() == []
    assert slack.fake.calls_to("chat.postMessage") == []


async def test_the_price_follows_the_choices_and_holds_nothing(slack: SlackHarness) -> None:
    fake = slack.fake
    view = await slack.open_modal("waves")
    assert "$0.10" in price_of(view)

    await slack.interact(payloads.field_change(view, "resolution", resolution="1080p"))
    view = fake.views[view["id"]]
    assert "*Price: $0.30*" in price_of(view)  # 5 s x $0.06
    (update,) = fake.calls_to("views.update")
    assert update.args["view_id"] == view["id"]

    await slack.interact(payloads.field_change(view, "model", model="sora-2"))
    view = fake.views[view["id"]]
    assert "duration/sora-2" in block_ids(view) and "duration/openvideo" not in block_ids(view)
    assert "*Price: $0.40*" in price_of(view)  # sora-2's default 4 s x $0.10

    await slack.interact(payloads.field_change(view, "model", model="openvideo-lora"))
    view = fake.views[view["id"]]
    lora = next(b for b in view["blocks"] if b.get("block_id") == "lora:loras/openvideo-lora")
    assert "omninft" in lora["hint"]["text"]
    await slack.interact(payloads.field_change(view, "lora:loras", **{"lora:loras": "omnift:0.5"}))
    view = fake.views[view["id"]]
    assert "did you mean 'omninft'" in price_of(view)
    await slack.interact(
        payloads.field_change(view, "duration", duration="8", **{"lora:loras": "omninft:0.5"})
    )
    assert "*Price: $0.24*" in price_of(fake.views[view["id"]])  # 8 s x $0.03
    await assert_nothing_reserved(slack)


async def test_the_prompt_and_the_image_survive_a_price_update(slack: SlackHarness) -> None:
    view = await slack.open_modal("the sea breathes")
    await slack.interact(payloads.field_change(view, "model", model="sora-2"))
    view = slack.fake.views[view["id"]]
    blocks = {b.get("block_id"): b for b in view["blocks"]}
    assert blocks["prompt"]["element"]["initial_value"] == "the sea breathes"
    assert blocks["image"]["element"]["type"] == "file_input"  # same block: Slack keeps the file


def _pdf(slack: SlackHarness) -> list[dict[str, Any]]:
    return [slack.fake.add_file("notes.pdf", b"%PDF-1.4 ...", "application/pdf")]


def _huge(slack: SlackHarness) -> list[dict[str, Any]]:
    return [{**slack.image(), "size": 11 * 1024 * 1024}]


REFUSALS = [
    pytest.param({"image": lambda s: []}, "image", "Attach one picture", id="no-image"),
    pytest.param({"image": _pdf}, "image", "notes.pdf is a PDF, not a picture", id="a-pdf"),
    pytest.param({"image": _huge}, "image", "the limit is 10 MB", id="too-large"),
    pytest.param({"prompt": ""}, "prompt", "prompt is empty", id="no-prompt"),
    pytest.param(
        {"duration": "30"}, "duration/openvideo", "Duration 30 is not offered", id="duration"
    ),
    pytest.param(
        {"model": "openvideo-lora", "lora:loras": "omnift:0.5"},
        "lora:loras/openvideo-lora",
        "did you mean 'omninft'",
        id="lora-key",
    ),
    pytest.param(
        {"model": "openvideo-lora", "lora:loras": "omninft:lots"},
        "lora:loras/openvideo-lora",
        "is not a number",
        id="lora-strength",
    ),
    pytest.param(
        {"model": "openvideo-lora", "lora:loras": "omninft:9"},
        "lora:loras/openvideo-lora",
        "4",
        id="lora-range",
    ),
    pytest.param(
        {"model": "wan-2.2-fast", "seed": "12345678901234"},
        "seed/wan-2.2-fast",
        "out of range",
        id="seed",
    ),
    pytest.param({"model": "nope"}, "model", "nope", id="unknown-model"),
]


@pytest.mark.parametrize(("choices", "block", "words"), REFUSALS)
async def test_a_refusal_is_shown_on_its_field_and_reserves_nothing(
    slack: SlackHarness, choices: dict[str, Any], block: str, words: str
) -> None:
    view = await slack.open_modal("waves")
    if choices.get("model") not in (None, "openvideo", "nope"):  # the form redraws per model
        await slack.interact(payloads.field_change(view, "model", model=choices["model"]))
        view = slack.fake.views[view["id"]]
    made = {k: (v(slack) if callable(v) else v) for k, v in choices.items()}
    made.setdefault("image", [slack.image()])
    answer = await slack.submit(view, **made)
    assert answer["response_action"] == "errors", answer
    assert words in answer["errors"][block], answer["errors"]
    await assert_nothing_reserved(slack)
    assert slack.fake.file_requests == []  # the image was not even read


async def test_over_a_cap_is_shown_in_the_modal_with_what_is_left(slack: SlackHarness) -> None:
    await slack.app.db.ledger.set_limits("user", "slack:U1", daily_micros=50_000)
    view = await slack.open_modal("waves")
    answer = await slack.submit(view, image=[slack.image()])
    assert answer["response_action"] == "errors"
    assert "This clip costs $0.10, but only $0.05 is left" in answer["errors"]["model"]
    await assert_nothing_reserved(slack)


async def test_a_paused_workspace_is_shown_in_the_modal(slack: SlackHarness) -> None:
    await slack.app.db.servers.set_paused("slack:T0TEAM", True, by="slack:UADMIN")
    view = await slack.open_modal("waves")
    answer = await slack.submit(view, image=[slack.image()])
    assert "paused" in answer["errors"]["model"]
    await assert_nothing_reserved(slack)


def _told(slack: SlackHarness) -> str:
    (said,) = slack.fake.ephemerals
    assert said["channel"] == "C1" and said["user"] == "U1"
    return str(said["text"])


async def test_an_image_that_is_not_a_picture_is_told_privately_and_costs_nothing(
    slack: SlackHarness,
) -> None:
    view = await slack.open_modal("waves")
    fake_png = slack.fake.add_file("cat.png", b"this is text, not a picture", "image/png")
    assert await slack.submit(view, image=[fake_png]) == {}  # Slack's description looked fine
    text = _told(slack)
    assert "Nothing was charged" in text
    await assert_nothing_reserved(slack)


async def test_a_tiny_image_is_told_privately(slack: SlackHarness) -> None:
    view = await slack.open_modal("waves")
    tiny = slack.image("tiny.png", make_png(64, 64))
    assert await slack.submit(view, image=[tiny]) == {}
    assert "128" in _told(slack)
    await assert_nothing_reserved(slack)


async def test_a_login_page_instead_of_the_file_is_refused(slack: SlackHarness) -> None:
    view = await slack.open_modal("waves")
    image = slack.image()
    slack.fake.login_only.add(image["id"])
    assert await slack.submit(view, image=[image]) == {}
    assert "a web page, not an image" in _told(slack)
    await assert_nothing_reserved(slack)


async def test_the_token_never_goes_to_a_host_that_is_not_slacks(slack: SlackHarness) -> None:
    seen: list[str | None] = []

    async def elsewhere(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.Response(body=make_png(), content_type="image/png")

    server = web.Application()
    server.router.add_get("/{tail:.*}", elsewhere)
    runner = web.AppRunner(server, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        port = runner.addresses[0][1]
        image = {**slack.image(), "url_private_download": f"http://127.0.0.1:{port}/cat.png"}
        view = await slack.open_modal("waves")
        assert await slack.submit(view, image=[image]) == {}
    finally:
        await runner.cleanup()
    assert seen == []
    assert "not on Slack's file host" in _told(slack)
    await assert_nothing_reserved(slack)


async def test_a_cap_filled_after_the_ack_is_told_privately(
    slack: SlackHarness, png_file: Path
) -> None:
    await slack.app.db.ledger.set_limits("user", "slack:U1", daily_micros=100_000)  # one clip
    view = await slack.open_modal("waves")
    image = slack.image()
    release = slack.fake.hold_file(image["id"])
    status, body = await slack.post(payloads.interaction(payloads.submission(view, image=[image])))
    assert (status, body) == (200, "")  # the modal closed: the checks passed
    other = AnimateRequest(
        platform="slack", event_id=uuid.uuid4().hex, user_id="U1", server_id="T0TEAM",
        image=ImageSource(path=str(png_file)), prompt="meanwhile", model="openvideo",
        sink={"kind": "slack"},
    )  # fmt: skip
    await slack.app.service.reserve(other)  # the last cent, taken while the image downloads
    release.set()
    await slack.settle()
    assert "only $0.00 is left" in _told(slack)
    assert await slack.app.db.jobs.get_by_event("slack", view["id"]) is None
