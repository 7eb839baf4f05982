"""`animate`, `jobs`, `job` and `run`: the whole /animate path from a terminal."""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.cli._output import CliError, add_json_flag, cli_settings, iso, print_json
from providers.money import format_usd, usd_string

FINAL_EXIT = {"delivered": 0, "failed": 1, "cancelled": 1, "expired": 1}
MAX_LIST = 10_000
RESOLVE_NOTES = {
    "settle": "operator resolved the hold: settle (the provider made and billed the clip)",
    "void": "operator resolved the hold: void (the provider did not bill the clip)",
}


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
    p.add_argument("--limit", default="50", help=f"at most this many, 1 to {MAX_LIST} (default 50)")
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


def _say_to(json_mode: bool) -> Callable[[str], None]:
    stream = sys.stderr if json_mode else sys.stdout
    return lambda line: print(line, file=stream, flush=True)


def job_summary(job: Any, reservation: Any | None) -> dict[str, Any]:
    """A job as scripts read it: `cost` is the quoted price, `charged` what was settled,
    `held` what is still reserved (money as micro-dollars and as a dollar string)."""
    charged = reservation.settled_micros if reservation and reservation.status == "settled" else 0
    held = reservation.amount_micros if reservation and reservation.status == "held" else 0
    return {
        "job_id": job.id,
        "status": job.status.value,
        "model": job.model,
        "provider": job.provider,
        "user": job.user_id,
        "server": job.server_id,
        "cost_micros": job.cost_micros,
        "cost_usd": usd_string(job.cost_micros),
        "charged_micros": charged,
        "charged_usd": usd_string(charged),
        "held_micros": held,
        "held_usd": usd_string(held),
        "cancel_requested": job.cancel_requested,
        "provider_task_id": job.provider_task_id,
        "output": job.delivered_ref,
        "reason": job.status_reason,
        "error_code": job.error_code,
        "created_at": iso(job.created_at),
        "updated_at": iso(job.updated_at),
    }


def money_line(summary: dict[str, Any]) -> str:
    """What the job cost, for people: charged, held, or nothing."""
    if summary["charged_micros"]:
        return f"charged {format_usd(summary['charged_micros'])}"
    if summary["held_micros"]:
        return f"held {format_usd(summary['held_micros'])}"
    return "not charged"


async def _animate(args: argparse.Namespace) -> int:
    from bot.app import open_app
    from bot.cli.ledger import scope_id
    from bot.cli.processes import add_chat_sinks, default_sinks
    from bot.errors import BotError
    from bot.models import AnimateRequest
    from providers.params import InvalidParameters
    from storage import ACTIVE

    settings = cli_settings()
    say = _say_to(args.json)
    source, out_dir = _cli_paths(args.image, args.out)
    user = scope_id(args.user, "--user")
    server = None if args.server is None else scope_id(args.server, "--server")
    try:
        options = model_options(args)
    except InvalidParameters as exc:
        raise CliError(str(exc)) from exc
    async with open_app(settings, sinks=default_sinks(settings, say)) as app:
        add_chat_sinks(app)
        req = AnimateRequest(
            platform="cli",
            event_id=args.event_id or uuid.uuid4().hex,
            user_id=user,
            server_id=server,
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


def _print_outcome(s: dict[str, Any], say: Callable[[str], None]) -> None:
    if s["status"] == "delivered":
        say(f"done: {s['output']} ({money_line(s)})")
    elif s["status"] in ("reserved", "submitted", "processing", "completed"):
        say(f"job {s['job_id']} is {s['status']}; `python -m bot run` follows it")
    else:
        say(f"job {s['job_id']} {s['status']} ({money_line(s)}): {s['reason']}")


async def _jobs(args: argparse.Namespace) -> int:
    from bot.cli.ledger import bounded_int, scope_id
    from bot.database import connect
    from storage import JobStatus

    status = None
    if args.status:
        try:
            status = JobStatus(args.status)
        except ValueError:
            allowed = ", ".join(s.value for s in JobStatus)
            raise CliError(f"unknown status {args.status!r}: choose {allowed}") from None
    limit = bounded_int(str(args.limit), "--limit", 1, MAX_LIST)
    user = None if args.user is None else scope_id(args.user, "--user")
    settings = cli_settings()
    async with await connect(settings) as db:
        jobs = await db.jobs.list_jobs(status=status, user_id=user, limit=limit)
        for job in jobs:
            summary = job_summary(job, await db.ledger.get(job.ledger_key))
            if args.json:
                print_json(summary)
            else:
                print(
                    f"{job.id}  {job.status.value:<10} {job.model:<15} "
                    f"{money_line(summary):<18} {job.user_id}  {summary['created_at']}"
                )
        if not jobs and not args.json:
            print("no jobs")
    return 0


async def _job(args: argparse.Namespace) -> int:
    from bot import messages
    from bot.database import connect
    from storage import NothingToResolve

    settings = cli_settings()
    if args.cancel:
        await _cancel(settings, args.job_id, _say_to(args.json))
    note = None
    async with await connect(settings) as db:
        job = await db.jobs.get(args.job_id)
        if job is None:
            raise CliError(f"there is no job {args.job_id}")
        if args.cancel:  # what the cancel did, as the job stands after it
            note = messages.cancel_recorded(job.status.value, job.cost_micros)
        if args.resolve:
            try:
                job = await db.jobs.resolve_hold(
                    job.id, args.resolve, note=RESOLVE_NOTES[args.resolve]
                )
            except NothingToResolve as exc:
                raise CliError(str(exc)) from None
        history = await db.jobs.history(job.id)
        summary = job_summary(job, await db.ledger.get(job.ledger_key))
        summary["history"] = [
            {"at": iso(e.at), "from": e.from_status, "to": e.to_status, "note": e.note}
            for e in history
        ]
    if args.json:
        print_json(summary)
        return 0
    if note:
        print(note)
    for key, value in summary.items():
        if key != "history" and value not in (None, "", False):
            print(f"{key:>16}: {value}")
    print("         history:")
    for e in summary["history"]:
        print(f"  {e['at']}  {e['from'] or '-'} -> {e['to']}  {e['note']}")
    return 0


async def _cancel(settings: Any, job_id: str, say: Callable[[str], None]) -> None:
    """Ask for the cancel, then let a runner pass act on it at once (a job not yet submitted
    is cancelled and refunded now)."""
    from bot.app import open_app
    from bot.cli.processes import add_chat_sinks, default_sinks
    from bot.errors import BotError

    async with open_app(settings, sinks=default_sinks(settings, say)) as app:
        add_chat_sinks(app)
        try:
            await app.service.cancel(job_id)
        except BotError as exc:
            raise CliError(exc.user_message, exc.exit_code) from exc
        await app.runner.run_once()


async def _run(args: argparse.Namespace) -> int:
    from bot.app import App, open_app
    from bot.cli.processes import add_chat_sinks, announce, default_sinks, run_services

    settings = cli_settings()
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
