"""`animate`, `jobs`, `job` and `run`: the whole /animate path from a terminal."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import uuid
from pathlib import Path
from typing import Any

from bot.cli._output import CliError, add_json_flag, print_json
from bot.config import Settings
from providers.money import format_usd

FINAL_EXIT = {"delivered": 0, "failed": 1, "cancelled": 1, "expired": 1}


def register(sub: Any) -> None:
    p = sub.add_parser(
        "animate",
        help="animate an image: validate, quote, reserve, submit, follow, settle, write the clip",
        description="Runs the whole /animate path. The clip is written to --out as JOB_ID.mp4.",
    )
    p.add_argument("image", help="a local image file or an http(s) URL")
    p.add_argument("--prompt", required=True, help="what should happen in the clip")
    p.add_argument("--user", required=True, help="who pays: an id (cli:ID) or platform:id")
    p.add_argument("--server", help="the server (guild/workspace) whose caps also apply")
    add_model_options(p)
    p.add_argument(
        "--out", default="animate-out", help="where to write the clip (default: %(default)s)"
    )
    p.add_argument(
        "--no-wait", action="store_true", help="submit and return; `run` follows the job"
    )
    p.add_argument("--event-id", help="idempotency key: the same id twice makes one job")
    add_json_flag(p)
    p.set_defaults(handler=lambda a: asyncio.run(_animate(a)))

    p = sub.add_parser("jobs", help="list jobs, newest first")
    p.add_argument("--status", help="only jobs in this status (e.g. processing, failed, expired)")
    p.add_argument("--user", help="only this user's jobs")
    p.add_argument("--limit", type=int, default=50)
    add_json_flag(p)
    p.set_defaults(handler=lambda a: asyncio.run(_jobs(a)))

    p = sub.add_parser("job", help="one job and its history; cancel it or resolve its hold")
    p.add_argument("job_id")
    action = p.add_mutually_exclusive_group()
    action.add_argument("--cancel", action="store_true", help="cancel the job")
    action.add_argument(
        "--resolve",
        choices=["settle", "void"],
        help="operator: end the hold of an expired job whose outcome was unknown, after "
        "checking with the provider (settle = it was charged, void = it was not)",
    )
    add_json_flag(p)
    p.set_defaults(handler=lambda a: asyncio.run(_job(a)))

    p = sub.add_parser("run", help="the job runner alone: resume and follow jobs until stopped")
    p.add_argument("--once", action="store_true", help="handle what is due now, then exit")
    p.set_defaults(handler=lambda a: asyncio.run(_run(a)))


def add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", default="openvideo", help="model id (see `models`; default %(default)s)"
    )
    p.add_argument("--duration", help="seconds")
    p.add_argument("--resolution", help="480p, 720p or 1080p, as the model offers")
    p.add_argument("--lora", action="append", default=[], metavar="KEY=SCALE")
    p.add_argument("--high-noise-lora", action="append", default=[], metavar="URL=SCALE")
    p.add_argument("--low-noise-lora", action="append", default=[], metavar="URL=SCALE")
    p.add_argument("--preset", help="openvideo-lora: tuned or original")
    p.add_argument("--seed", help="-1 for random")
    p.add_argument("--negative-prompt")
    p.add_argument("--last-image", help="wan-2.2-fast: URL of the final frame")
    p.add_argument("--steps")
    p.add_argument("--guidance-scale")
    p.add_argument("--flow-shift")


def model_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options a person gave, as the catalog's validate() takes them."""
    from bot.cli.catalog import parse_lora_arg

    opts: dict[str, Any] = {}
    for name in (
        "duration",
        "resolution",
        "preset",
        "seed",
        "negative_prompt",
        "last_image",
        "steps",
        "guidance_scale",
        "flow_shift",
    ):
        value = getattr(args, name, None)
        if value is not None:
            opts[name] = value
    for name in ("lora", "high_noise_lora", "low_noise_lora"):
        values = getattr(args, name, [])
        if values:
            opts[f"{name}s"] = [parse_lora_arg(v) for v in values]
    return opts


def _say_to(json_mode: bool) -> Any:
    stream = sys.stderr if json_mode else sys.stdout
    return lambda line: print(line, file=stream, flush=True)


def job_summary(job: Any, reservation: Any | None) -> dict[str, Any]:
    charged = reservation.settled_micros if reservation and reservation.status == "settled" else 0
    held = reservation.amount_micros if reservation and reservation.status == "held" else 0
    return {
        "job_id": job.id,
        "status": job.status.value,
        "model": job.model,
        "user": job.user_id,
        "server": job.server_id,
        "cost_micros": job.cost_micros,
        "cost_usd": format_usd(job.cost_micros),
        "charged_micros": charged,
        "held_micros": held,
        "provider_task_id": job.provider_task_id,
        "output": job.delivered_ref,
        "reason": job.status_reason,
        "error_code": job.error_code,
        "created_at": _iso(job.created_at),
    }


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")


async def _animate(args: argparse.Namespace) -> int:
    from bot.app import open_app
    from bot.errors import BotError
    from bot.models import AnimateRequest
    from bot.sinks import FileSink, SinkRegistry
    from providers.params import InvalidParameters
    from storage import ACTIVE

    settings = Settings()
    say = _say_to(args.json)
    source, out_dir = _cli_paths(args.image, args.out)
    try:
        options = model_options(args)
    except InvalidParameters as exc:
        raise CliError(str(exc)) from exc
    sinks = SinkRegistry({"file": FileSink(say, default_dir=Path(out_dir))})
    async with open_app(settings, sinks=sinks) as app:
        req = AnimateRequest(
            platform="cli",
            event_id=args.event_id or uuid.uuid4().hex,
            user_id=args.user,
            server_id=args.server,
            image=source,
            prompt=args.prompt,
            model=args.model,
            options=options,
            sink={"kind": "file", "dir": out_dir},
        )
        try:
            submission = await app.service.animate(req)
        except BotError as exc:
            raise CliError(exc.user_message, exc.exit_code) from exc
        job = submission.job
        if submission.duplicate:
            say(
                f"job {job.id}: this event was already handled ({job.status.value}); "
                "nothing new was reserved"
            )
        if not args.no_wait and job.status in ACTIVE:
            job = await follow(app, job.id)
        reservation = await app.db.ledger.get(job.ledger_key)
        summary = job_summary(job, reservation)
    if args.json:
        print_json(summary)
    else:
        _print_outcome(summary, say)
    if args.no_wait and job.status in ACTIVE:
        return 0
    return FINAL_EXIT.get(job.status.value, 0) if job.error_code != 1200 else 2


def _cli_paths(image: str, out: str) -> tuple[Any, str]:
    """The image source and the absolute output folder (the runner may run elsewhere)."""
    from bot.models import ImageSource

    if image.lower().startswith(("http://", "https://")):
        return ImageSource(url=image), str(Path(out).resolve())
    path = Path(image)
    if not path.is_file():
        raise CliError(f"{image} is not a file or an http(s) URL.")
    return ImageSource(path=str(path.resolve())), str(Path(out).resolve())


async def follow(app: Any, job_id: str) -> Any:
    """Run the runner in this process until the job reaches a final state."""
    from storage import ACTIVE

    done = asyncio.Event()

    def on_final(job: Any) -> None:
        if job.id == job_id:
            done.set()

    app.runner.on_final = on_final
    stop = asyncio.Event()
    runner = asyncio.create_task(app.runner.run(stop))
    try:
        current = await app.db.jobs.get(job_id)
        if current is not None and current.status in ACTIVE:
            app.runner.wake()
            await _until(done, runner)
    finally:
        stop.set()
        await runner
    return await app.db.jobs.get(job_id)


async def _until(done: asyncio.Event, runner: asyncio.Task[None]) -> None:
    waiter = asyncio.ensure_future(done.wait())
    try:
        await asyncio.wait({waiter, runner}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if runner.done():
        runner.result()  # re-raise a runner crash


def _print_outcome(s: dict[str, Any], say: Any) -> None:
    if s["status"] == "delivered":
        say(f"done: {s['output']} (charged {format_usd(s['charged_micros'])})")
    elif s["status"] in ("reserved", "submitted", "processing", "completed"):
        say(f"job {s['job_id']} is {s['status']}; `python -m bot run` follows it")
    else:
        say(f"job {s['job_id']} {s['status']}: {s['reason']}")


async def _jobs(args: argparse.Namespace) -> int:
    from bot.cli.ledger import scope_id
    from storage import JobStatus, open_database

    status = None
    if args.status:
        try:
            status = JobStatus(args.status)
        except ValueError:
            allowed = ", ".join(s.value for s in JobStatus)
            raise CliError(f"unknown status {args.status!r}: choose {allowed}") from None
    settings = Settings()
    async with await open_database(settings.database_url) as db:
        jobs = await db.jobs.list_jobs(
            status=status, user_id=scope_id(args.user) if args.user else None, limit=args.limit
        )
        for job in jobs:
            if args.json:
                print_json(job_summary(job, await db.ledger.get(job.ledger_key)))
            else:
                print(
                    f"{job.id}  {job.status.value:<10} {job.model:<15} "
                    f"{format_usd(job.cost_micros):>8}  {job.user_id}  {_iso(job.created_at)}"
                )
        if not jobs and not args.json:
            print("no jobs")
    return 0


async def _job(args: argparse.Namespace) -> int:
    from bot.errors import BotError
    from storage import JobStatus, open_database

    settings = Settings()
    if args.cancel:
        from bot.app import open_app

        async with open_app(settings) as app:
            try:
                await app.service.cancel(args.job_id)
            except BotError as exc:
                raise CliError(exc.user_message, exc.exit_code) from exc
            await app.runner.run_once()
    async with await open_database(settings.database_url) as db:
        job = await db.jobs.get(args.job_id)
        if job is None:
            raise CliError(f"there is no job {args.job_id}")
        if args.resolve:
            reservation = await db.ledger.get(job.ledger_key)
            if (
                job.status is not JobStatus.EXPIRED
                or reservation is None
                or reservation.status != "held"
            ):
                raise CliError(
                    f"job {job.id} has no unresolved hold (status {job.status.value}); "
                    "only an expired job whose hold is still held can be resolved"
                )
            job = await db.jobs.transition(
                job.id,
                JobStatus.EXPIRED,
                expect={JobStatus.EXPIRED},
                reason=f"operator resolved the hold: {args.resolve}",
                ledger=args.resolve,
            )
        history = await db.jobs.history(job.id)
        summary = job_summary(job, await db.ledger.get(job.ledger_key))
        summary["history"] = [
            {"at": _iso(e.at), "from": e.from_status, "to": e.to_status, "note": e.note}
            for e in history
        ]
    if args.json:
        print_json(summary)
    else:
        for key, value in summary.items():
            if key != "history" and value not in (None, ""):
                print(f"{key:>16}: {value}")
        print("         history:")
        for e in summary["history"]:
            print(f"  {e['at']}  {e['from'] or '-'} -> {e['to']}  {e['note']}")
    return 0


async def _run(args: argparse.Namespace) -> int:
    from bot.app import App, open_app
    from bot.cli.processes import add_chat_sinks, announce, default_sinks, run_services

    settings = Settings()
    if args.once:
        async with open_app(settings, sinks=default_sinks(settings)) as app:
            add_chat_sinks(app)
            count = await app.runner.run_once()
        print(f"handled {count} due job(s)")
        return 0

    async def ready(app: App, stop: asyncio.Event) -> None:
        announce(f"runner {app.runner.owner} following jobs; Ctrl-C to stop")
        await stop.wait()

    await run_services(settings, {"announce": ready}, runner=True)
    return 0
