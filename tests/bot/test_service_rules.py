"""Service rules the front doors rely on: one event id means one request; pause; role
caps; saved LoRAs; re-roll and retry; who may cancel."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from bot.cli.jobs import follow
from bot.errors import NotAllowed, Paused, QuotaRefused, RequestRefused
from bot.models import AnimateRequest, ImageSource
from bot.service import resolve_saved_loras
from providers.simulator import Outcome, Simulator
from storage import JobStatus, SavedLora
from tests.fixtures_sim import make_png


def req(png: Path, **changes: Any) -> AnimateRequest:
    base: dict[str, Any] = {
        "platform": "discord",
        "event_id": uuid.uuid4().hex,
        "user_id": "u1",
        "server_id": "g1",
        "image": ImageSource(path=str(png)),
        "prompt": "the sea breathes",
        "model": "openvideo",
        "options": {"duration": 5, "resolution": "480p"},
        "sink": {"kind": "file"},
    }
    base.update(changes)
    return AnimateRequest(**base)


async def entries(app: App) -> int:
    return len(await app.db.ledger.entries())


@pytest.mark.parametrize(
    "changes",
    [
        {"options": {"duration": 10, "resolution": "480p"}},  # another price
        {"user_id": "u2"},  # another person
        {"model": "sora-2", "options": {"duration": 4}},  # another model
        {"prompt": "something else"},
    ],
)
async def test_an_event_id_reused_for_another_request_is_refused(
    app: App, png_file: Path, changes: dict[str, Any]
) -> None:
    first = await app.service.animate(req(png_file, event_id="E1"))
    before = await entries(app)
    with pytest.raises(RequestRefused, match="already used for a different request") as refused:
        await app.service.animate(req(png_file, event_id="E1", **changes))
    assert refused.value.exit_code == 2
    assert await entries(app) == before
    again = await app.service.animate(req(png_file, event_id="E1"))
    assert again.duplicate and again.job.id == first.job.id


async def test_an_event_id_reused_with_another_image_is_refused(
    app: App, png_file: Path, tmp_path: Path
) -> None:
    await app.service.animate(req(png_file, event_id="E1", image=ImageSource(data=make_png())))
    with pytest.raises(RequestRefused, match="different request"):
        await app.service.animate(
            req(png_file, event_id="E1", image=ImageSource(data=make_png(400, 300)))
        )


async def test_a_refused_event_replayed_with_another_amount_is_a_sentence(
    make_app: Any, png_file: Path
) -> None:
    async with make_app(user_daily_cap_usd="0.15") as app:
        with pytest.raises(QuotaRefused):
            await app.service.animate(
                req(png_file, event_id="E2", options={"duration": 10, "resolution": "480p"})
            )
        with pytest.raises(RequestRefused, match="different request") as refused:
            await app.service.animate(
                req(png_file, event_id="E2", options={"duration": 20, "resolution": "480p"})
            )
        assert type(refused.value) is RequestRefused
        # the true repeat gets the same refusal again, still without a new ledger row
        before = await entries(app)
        with pytest.raises(QuotaRefused):
            await app.service.animate(
                req(png_file, event_id="E2", options={"duration": 10, "resolution": "480p"})
            )
        assert await entries(app) == before


async def test_a_paused_server_refuses_before_anything_is_read_or_held(
    app: App, png_file: Path, tmp_path: Path
) -> None:
    await app.db.servers.set_paused("discord:g1", True, by="discord:mod")
    missing = tmp_path / "never-read.png"  # would fail if it were read
    with pytest.raises(Paused, match="paused"):
        await app.service.animate(req(png_file, image=ImageSource(path=str(missing))))
    assert await entries(app) == 0
    await app.service.animate(req(png_file, server_id="g2"))  # other servers go on


async def test_the_preview_names_the_cap_the_reservation_would(
    make_app: Any, png_file: Path
) -> None:
    """A form's preview and the reservation give the same answer when several caps are full:
    the ledger's rule, in its order (clips at once before money per day)."""
    async with make_app(user_daily_cap_usd="0.15", user_concurrent_jobs=1) as app:
        await app.service.animate(req(png_file))  # $0.10, still rendering: both caps full
        with pytest.raises(QuotaRefused) as preview:
            await app.service.preflight(req(png_file))
        with pytest.raises(QuotaRefused) as reserved:
            await app.service.animate(req(png_file))
    assert preview.value.refusal.cap == reserved.value.refusal.cap == "concurrent_jobs"
    assert preview.value.user_message == reserved.value.user_message


async def test_role_caps_are_the_members_default(make_app: Any, png_file: Path) -> None:
    async with make_app(user_daily_cap_usd="0.10") as app:
        await app.db.servers.set_role_limits("discord:g1", "artists", daily_micros=1_000_000)
        # $0.10 per clip: the default cap allows one, the role allows ten
        for _ in range(3):
            await app.service.animate(req(png_file, role_ids=("everyone", "artists")))
        await app.service.animate(req(png_file, user_id="u2", role_ids=("everyone",)))
        with pytest.raises(QuotaRefused, match=r"daily limit of \$0.10"):
            await app.service.animate(req(png_file, user_id="u2", role_ids=("everyone",)))


async def test_saved_loras_are_usable_by_name(app: App, png_file: Path) -> None:
    url = "https://loras.example/wobble.safetensors"
    await app.db.servers.save_lora("discord:g1", "wobble", url, 0.6, by="discord:mod")
    sub = await app.service.animate(
        req(
            png_file,
            model="wan-2.2-fast",
            options={"duration": 5, "loras": [{"path": "Wobble", "scale": None}]},
        )
    )
    assert sub.job.params["loras"] == [{"path": url, "scale": 0.6}]
    # on another server the name means nothing: refused as not a URL, before any charge
    with pytest.raises(RequestRefused, match="not a LoRA URL") as refused:
        await app.service.quote(
            model="wan-2.2-fast",
            prompt="p",
            options={"loras": [{"path": "wobble", "scale": 1}]},
            server_id="discord:g2",
        )
    assert "loras" in refused.value.fields


def test_resolve_saved_loras_keeps_what_it_does_not_know() -> None:
    saved = {"a": SavedLora("s", "a", "https://x/a", 0.5, "m")}
    value = [{"path": "A", "scale": 2}, "a", "b=1", {"path": "https://y/b", "scale": 1}]
    assert resolve_saved_loras(value, saved) == [
        {"path": "https://x/a", "scale": 2},
        {"path": "https://x/a", "scale": 0.5},
        "b=1",
        {"path": "https://y/b", "scale": 1},
    ]


async def test_reroll_uses_the_stored_image_with_a_new_seed_and_a_new_charge(
    app: App, png_file: Path, simulator: Simulator
) -> None:
    first = await app.service.animate(req(png_file, options={"duration": 5, "seed": 7}))
    await follow(app, first.job.id)
    png_file.unlink()  # the original file is gone: the re-roll must not need it
    press = req(png_file, event_id="press-1")
    again = await app.service.animate_again(first.job.id, press, reroll=True)
    assert again.job.id != first.job.id
    assert again.job.params["seed"] != 7 and again.job.prompt == first.job.prompt
    assert again.job.meta["again_of"] == first.job.id
    repeat = await app.service.animate_again(first.job.id, press, reroll=True)
    assert repeat.duplicate and repeat.job.id == again.job.id
    done = await follow(app, again.job.id)
    assert done is not None and done.status is JobStatus.DELIVERED
    with pytest.raises(NotAllowed):
        await app.service.animate_again(first.job.id, req(png_file, user_id="u2"), reroll=True)


async def test_retry_only_after_a_failure_and_keeps_the_seed(
    app: App, png_file: Path, simulator: Simulator
) -> None:
    simulator.next_outcome(Outcome(status="failed", code=5000, error="GPU fell over"))
    first = await app.service.animate(req(png_file, options={"duration": 5, "seed": 7}))
    failed = await follow(app, first.job.id)
    assert failed is not None and failed.status is JobStatus.FAILED
    retry = await app.service.animate_again(first.job.id, req(png_file), reroll=False)
    assert retry.job.params["seed"] == 7
    done = await follow(app, retry.job.id)
    assert done is not None and done.status is JobStatus.DELIVERED
    with pytest.raises(RequestRefused, match="Only a clip that failed"):
        await app.service.animate_again(retry.job.id, req(png_file), reroll=False)


async def test_a_moderator_may_cancel_another_members_job(app: App, png_file: Path) -> None:
    sub = await app.service.animate(req(png_file))
    with pytest.raises(NotAllowed, match="or a moderator"):
        await app.service.cancel(sub.job.id, by_user="discord:u2")
    job = await app.service.cancel(sub.job.id, by_user="discord:u2", moderator=True)
    assert job.cancel_requested
