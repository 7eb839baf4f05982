"""`python -m bot demo`: the whole /animate path offline, as a person would see it.

It starts the provider simulator on loopback, a fresh SQLite ledger with a small daily
budget, and runs the real service, ledger and runner: one clip made and paid for, then one
request refused by the cap and one refused as invalid, each costing nothing.
"""

from __future__ import annotations

import asyncio
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from bot.config import Settings
from providers.money import format_usd

SAMPLE = Path(__file__).resolve().parent.parent / "assets" / "sample.png"
DEMO_USER = "demo"
TIME_SCALE = 0.1  # the simulator renders and the runner waits 10x faster than real time


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="an offline end-to-end run against the provider simulator")
    p.add_argument(
        "--out", default="demo-out", help="where to write the clip (default: %(default)s)"
    )
    p.set_defaults(handler=lambda a: asyncio.run(_demo(str(Path(a.out).resolve()))))


def say(line: str = "") -> None:
    print(line, flush=True)


async def _demo(out_dir: str) -> int:
    from providers.simulator import Simulator, SimulatorConfig

    sim_config = SimulatorConfig(
        api_keys=frozenset({"demo-key"}),
        render_s=(60.0, 70.0),
        queue_s=3.0,
        time_scale=TIME_SCALE,
        progression="time",
        clip_mode="image",
    )
    with tempfile.TemporaryDirectory(prefix="animatebot-demo-") as tmp:
        async with Simulator(sim_config, host="127.0.0.1", port=0) as sim:
            settings = Settings(
                _env_file=None,  # a local .env (real keys, caps) must not leak into the demo
                database_url=f"sqlite:///{tmp}/demo.db",
                wavespeed_api_key=SecretStr("demo-key"),
                wavespeed_base_url=sim.base_url,
                novita_api_key=SecretStr("demo-key"),
                novita_base_url=sim.base_url,
                allow_private_image_urls=True,
                user_daily_cap_usd=Decimal("1.00"),
                user_monthly_cap_usd=Decimal("10.00"),
                time_scale=TIME_SCALE,
            )
            say(
                "animatebot demo — offline: a provider simulator on "
                f"{sim.base_url} stands in for WaveSpeed and Novita."
            )
            say(f"Time runs {1 / TIME_SCALE:.0f}x faster than a real render. No keys, no network.")
            say()
            return await _story(settings, out_dir)


async def _story(settings: Settings, out_dir: str) -> int:
    from bot.app import open_app
    from bot.cli.jobs import follow
    from bot.errors import BotError
    from bot.models import AnimateRequest, ImageSource
    from bot.sinks import FileSink, SinkRegistry

    sinks = SinkRegistry({"file": FileSink(lambda line: say("  " + line))})
    async with open_app(settings, sinks=sinks) as app:

        def request(n: int, model: str, options: dict[str, Any], prompt: str) -> AnimateRequest:
            return AnimateRequest(
                platform="cli",
                event_id=f"demo-{n}",
                user_id=DEMO_USER,
                server_id=None,
                image=ImageSource(path=str(SAMPLE)),
                prompt=prompt,
                model=model,
                options=options,
                sink={"kind": "file", "dir": out_dir},
            )

        await _show_budget(app, "Budget before")
        options = {
            "duration": 5,
            "resolution": "720p",
            "loras": [{"path": "omninft", "scale": 0.8}],
        }
        _, _, quote = app.service.check("openvideo-lora", "x", options)
        say(f"1) /animate {SAMPLE.name} with openvideo-lora, 5 s at 720p, LoRA omninft=0.8")
        say(f"   price: {format_usd(quote.cost_micros)} ({quote.basis})")
        submission = await app.service.animate(
            request(1, "openvideo-lora", options, "the sun rises slowly, clouds drift, warm light")
        )
        job = await follow(app, submission.job.id)
        reservation = await app.db.ledger.get(job.ledger_key)
        if job.status.value != "delivered" or reservation is None:
            say(f"   the clip did not arrive: {job.status.value}: {job.status_reason}")
            return 1
        say(
            f"   charged {format_usd(reservation.settled_micros)}; "
            f"your clip: {job.delivered_ref}"
        )
        await _show_budget(app, "Budget after")

        say("2) /animate with sora-2 for 8 s — more than what is left today")
        await _refused(app, request(2, "sora-2", {"duration": 8}, "a slow dolly zoom"), BotError)
        say("3) /animate with sora-2 for 7 s — a duration the model does not offer")
        await _refused(app, request(3, "sora-2", {"duration": 7}, "a slow dolly zoom"), BotError)
        await _show_budget(app, "Budget at the end (unchanged by the two refusals)")
        say(f"Watch the clip: {job.delivered_ref}")
    return 0


async def _refused(app: Any, req: Any, error: type[Exception]) -> None:
    try:
        submission = await app.service.animate(req)
    except error as exc:
        say(f"   refused: {exc.user_message}")  # type: ignore[attr-defined]
        say("   charged nothing.")
        say()
        return
    say(f"   unexpectedly accepted as job {submission.job.id}")


async def _show_budget(app: Any, title: str) -> None:
    from storage import Scopes

    rows = await app.db.ledger.usage(Scopes(user_id=f"cli:{DEMO_USER}"))
    daily = next((r for r in rows if r.scope_kind == "user" and r.cap == "daily"), None)
    if daily is not None and daily.limit is not None:
        say(
            f"   {title}: {format_usd(daily.used)} used of your "
            f"{format_usd(daily.limit)} daily limit, {format_usd(daily.remaining)} left."
        )
    say()
