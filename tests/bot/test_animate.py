"""The /animate path end to end: service, ledger, runner and simulator, no mocks."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import av
import pytest

from bot.app import App
from bot.cli.jobs import follow
from bot.errors import ModelDisabled, QuotaRefused, RequestRefused
from bot.models import AnimateRequest, ImageSource
from providers.simulator import Outcome, Simulator
from storage import JobStatus, Scopes
from tests.bot.conftest import Said

PROMPT = "the clouds drift and the light warms"
MODEL_OPTIONS: dict[str, dict[str, Any]] = {
    "openvideo": {"duration": 5, "resolution": "720p"},
    "openvideo-lora": {
        "duration": 6,
        "resolution": "480p",
        "loras": [{"path": "omninft", "scale": 0.8}],
    },
    "sora-2": {"duration": 8},
    "wan-2.2-fast": {
        "duration": 8,
        "loras": [{"path": "https://example.com/a.safetensors", "scale": 1.0}],
    },
    "wan-2.1": {"resolution": "720p", "steps": 20},
}
PRICES = {  # the published prices; wan-2.1 from the test's PRICE_OVERRIDES
    "openvideo": 200_000,  # $0.04/s x 5 s at 720p
    "openvideo-lora": 180_000,  # $0.03/s x 6 s at 480p
    "sora-2": 800_000,  # $0.10/s x 8 s
    "wan-2.2-fast": 160_000,  # 8 s flat
    "wan-2.1": 450_000,  # operator's 720p price
}


def request(
    png: Path,
    *,
    model: str = "openvideo",
    event_id: str | None = None,
    user: str = "alice",
    server: str | None = None,
    **options: Any,
) -> AnimateRequest:
    return AnimateRequest(
        platform="cli",
        event_id=event_id or uuid.uuid4().hex,
        user_id=user,
        server_id=server,
        image=ImageSource(path=str(png)),
        prompt=PROMPT,
        model=model,
        options=options or dict(MODEL_OPTIONS.get(model, {})),
        sink={"kind": "file"},
    )


async def used(app: App, user: str = "cli:alice") -> int:
    rows = await app.db.ledger.usage(Scopes(user_id=user))
    daily = [r for r in rows if r.scope_kind == "user" and r.cap == "daily"]
    return daily[0].used


@pytest.mark.parametrize("model", list(MODEL_OPTIONS))
async def test_every_model_makes_a_clip_and_charges_its_price(
    app: App, simulator: Simulator, png_file: Path, model: str
) -> None:
    submission = await app.service.animate(request(png_file, model=model))
    job = await follow(app, submission.job.id)

    assert job.status is JobStatus.DELIVERED, job.status_reason
    reservation = await app.db.ledger.get(job.ledger_key)
    assert reservation is not None and reservation.status == "settled"
    assert reservation.settled_micros == PRICES[model] == job.cost_micros
    with av.open(job.delivered_ref) as clip:
        assert clip.streams.video[0].frames > 0 or clip.duration
    task = simulator.tasks[job.provider_task_id]
    assert task.input["prompt"] == PROMPT
    assert [h.to_status for h in await app.db.jobs.history(job.id)] == [
        "reserved",
        "submitted",
        "processing",
        "completed",
        "delivered",
    ]


async def test_same_event_twice_makes_one_job_and_one_hold(
    app: App, simulator: Simulator, png_file: Path
) -> None:
    first = await app.service.animate(request(png_file, event_id="evt-1"))
    again = await app.service.animate(request(png_file, event_id="evt-1"))

    assert again.duplicate and again.job.id == first.job.id
    assert len(simulator.tasks) == 1
    assert await used(app) == first.job.cost_micros
    assert len(await app.db.jobs.list_jobs()) == 1


async def test_concurrent_repeats_of_one_event_make_one_job(
    app: App, simulator: Simulator, png_file: Path
) -> None:
    results = await asyncio.gather(
        *(app.service.animate(request(png_file, event_id="evt-dup")) for _ in range(10))
    )
    assert len({r.job.id for r in results}) == 1
    assert len(simulator.tasks) == 1
    assert await used(app) == results[0].job.cost_micros


async def test_provider_failure_refunds(
    app: App, simulator: Simulator, png_file: Path, said: Said
) -> None:
    simulator.next_outcome(Outcome(status="failed", code=5000, error="GPU fell over"))
    submission = await app.service.animate(request(png_file))
    job = await follow(app, submission.job.id)

    assert job.status is JobStatus.FAILED
    reservation = await app.db.ledger.get(job.ledger_key)
    assert reservation is not None and reservation.status == "voided"
    assert await used(app) == 0
    assert "GPU fell over" in job.status_reason and "not charged" in job.status_reason
    assert any("not charged" in line for line in said.lines)


async def test_moderation_failure_says_so_plainly(
    app: App, simulator: Simulator, png_file: Path
) -> None:
    simulator.next_outcome(Outcome(status="failed", code=1200))
    job = await follow(app, (await app.service.animate(request(png_file))).job.id)

    assert job.status is JobStatus.FAILED and job.error_code == 1200
    assert "content filter" in job.status_reason
    assert await used(app) == 0


@pytest.mark.parametrize(
    ("model", "options", "expected"),
    [
        ("sora-2", {"duration": 7}, "duration 7 is not offered by sora-2"),
        ("openvideo-lora", {"loras": [{"path": "omnift", "scale": 1}]}, "did you mean 'omninft'"),
        ("openvideo-lora", {"loras": [{"path": "omninft", "scale": 5}]}, "scale"),
        (
            "wan-2.2-fast",
            {"loras": [{"path": f"https://x.test/{i}", "scale": 1} for i in range(4)]},
            "3",
        ),
        ("openvideo", {"seed": 2147483648}, "seed"),
        ("openvideo", {"resolution": "4k"}, "4k"),
        ("sora-2", {"resolution": "720p"}, "sora-2"),
        ("nope", {}, "unknown model"),
    ],
)
async def test_bad_options_are_refused_before_money_moves(
    app: App,
    simulator: Simulator,
    png_file: Path,
    model: str,
    options: dict[str, Any],
    expected: str,
) -> None:
    with pytest.raises(RequestRefused) as caught:
        await app.service.animate(request(png_file, model=model, **options))
    assert expected in caught.value.user_message
    assert await app.db.jobs.list_jobs() == []
    assert await used(app) == 0
    assert simulator.tasks == {}


async def test_too_long_prompt_is_refused(app: App, png_file: Path) -> None:
    req = request(png_file).model_copy(update={"prompt": "x" * 2001})
    with pytest.raises(RequestRefused, match="2000"):
        await app.service.animate(req)
    assert await used(app) == 0


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"%PDF-1.7\n" + b"0" * 200, "PDF"),
        (b"", "empty"),
        ("tiny", "at least 128 pixels"),
    ],
)
async def test_bad_images_are_refused_before_any_reservation(
    app: App, simulator: Simulator, tmp_path: Path, content: Any, expected: str
) -> None:
    from tests.fixtures_sim import make_png

    path = tmp_path / "bad.png"
    path.write_bytes(make_png(16, 16) if content == "tiny" else content)
    with pytest.raises(RequestRefused) as caught:
        await app.service.animate(request(path))
    assert expected.lower() in caught.value.user_message.lower()
    assert caught.value.fields == {"image": [caught.value.user_message]}
    # read and refused before any reservation: no job, no hold, no ledger row, no counter
    assert await app.db.jobs.list_jobs() == []
    assert await app.db.ledger.entries() == []
    assert await used(app) == 0
    assert simulator.tasks == {}


async def test_webp_is_converted_before_it_reaches_the_provider(
    app: App, simulator: Simulator, tmp_path: Path
) -> None:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (400, 300), (10, 120, 200)).save(buf, "WEBP")
    path = tmp_path / "in.webp"
    path.write_bytes(buf.getvalue())
    job = await follow(app, (await app.service.animate(request(path))).job.id)
    assert job.status is JobStatus.DELIVERED
    sent = simulator.tasks[job.provider_task_id].image_bytes
    assert sent is not None and Image.open(io.BytesIO(sent)).format in {"PNG", "JPEG"}


async def test_unpriced_model_is_disabled_with_a_reason(make_app: Any, png_file: Path) -> None:
    async with make_app(price_overrides={}) as app:
        with pytest.raises(ModelDisabled, match="PRICE_OVERRIDES"):
            await app.service.animate(request(png_file, model="wan-2.1"))
        assert await app.db.jobs.list_jobs() == []


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
async def test_fifty_concurrent_requests_against_a_cap_that_fits_three(
    make_app: Any, simulator: Simulator, png_file: Path
) -> None:
    # openvideo 5 s at 480p costs $0.10: a $0.30 daily cap fits exactly three.
    async with make_app(user_daily_cap_usd=Decimal("0.30")) as app:
        reqs = [
            request(png_file, model="openvideo", duration=5, resolution="480p") for _ in range(50)
        ]
        results = await asyncio.gather(
            *(app.service.animate(r) for r in reqs), return_exceptions=True
        )
        accepted = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, QuotaRefused)]

        assert len(accepted) == 3
        assert len(refused) == 47
        assert all("daily" in r.user_message and "$0.30" in r.user_message for r in refused)
        assert len(simulator.tasks) == 3
        assert await used(app) == 300_000
        assert len(await app.db.jobs.list_jobs()) == 3


async def test_refusal_names_the_cap_and_when_it_resets(make_app: Any, png_file: Path) -> None:
    async with make_app(user_daily_cap_usd=Decimal("0.15")) as app:
        await app.service.animate(
            request(png_file, model="openvideo", duration=5, resolution="480p")
        )
        with pytest.raises(QuotaRefused) as caught:
            await app.service.animate(
                request(png_file, model="openvideo", duration=5, resolution="480p")
            )
    message = caught.value.user_message
    assert "$0.15" in message and "$0.05" in message and "resets" in message
