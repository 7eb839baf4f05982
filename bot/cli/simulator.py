"""`python -m bot simulator`: the provider simulator as a standalone process.

The first stdout line is exactly `listening on http://HOST:PORT`, so a script or a test can
start it with `--port 0` and read where it landed. Script it over HTTP through /_sim/...
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import Any

from bot.cli._output import CliError
from providers.simulator import Simulator, SimulatorConfig


def _render_range(text: str) -> tuple[float, float]:
    low, sep, high = text.partition("-")
    try:
        values = (float(low), float(high) if sep else float(low))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--render-s takes seconds as A or A-B (e.g. 2-6), not {text!r}"
        ) from None
    if not 0 <= values[0] <= values[1]:
        raise argparse.ArgumentTypeError(f"--render-s needs 0 <= A <= B, not {text!r}")
    return values


def register(sub: Any) -> None:
    p = sub.add_parser(
        "simulator",
        help="run the WaveSpeed + Novita simulator on loopback",
        description="Serve both provider APIs on one port until SIGINT/SIGTERM. "
        "The first line of output is 'listening on http://HOST:PORT'.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    p.add_argument("--api-key", action="append", dest="api_keys", metavar="KEY",
                   help="accepted Bearer key; repeatable (default: sim-key)")
    p.add_argument("--render-s", type=_render_range, default=(2.0, 6.0), metavar="A[-B]",
                   help="render time drawn uniformly from A..B simulated seconds (default 2-6)")
    p.add_argument("--queue-s", type=float, default=0.5, help="time queued before processing")
    p.add_argument("--time-scale", type=float, default=1.0,
                   help="wall seconds per simulated second (0.01 = 100x faster)")
    p.add_argument("--progression", choices=("time", "polls"), default="time")
    p.add_argument("--failure-rate", type=float, default=0.0)
    p.add_argument("--nsfw-rate", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0, help="random seed for failures and timings")
    p.add_argument("--concurrency-cap", type=int, default=None,
                   help="WaveSpeed tier cap: excess tasks wait in 'created'")
    p.add_argument("--clip-mode", choices=("image", "static"), default="image")
    p.add_argument("--validation", choices=("http400", "task_failed"), default="http400")
    p.add_argument("--latency-s", type=float, default=0.0, help="added to every response")
    p.add_argument("--sync-wait-s", type=float, default=90.0)
    p.add_argument("--output-ttl-s", type=float, default=7 * 24 * 3600)
    p.add_argument("--novita-output-ttl-s", type=float, default=3600)
    p.add_argument("--webhook-secret", default=None, help="default: a random whsec_ secret")
    p.add_argument("--unknown-task-status", type=int, default=404)
    p.set_defaults(handler=run)


def _config(args: argparse.Namespace) -> SimulatorConfig:
    extra = {"webhook_secret": args.webhook_secret} if args.webhook_secret else {}
    try:
        return SimulatorConfig(
            api_keys=frozenset(args.api_keys or ["sim-key"]),
            render_s=args.render_s,
            queue_s=args.queue_s,
            time_scale=args.time_scale,
            progression=args.progression,
            failure_rate=args.failure_rate,
            nsfw_rate=args.nsfw_rate,
            seed=args.seed,
            concurrency_cap=args.concurrency_cap,
            clip_mode=args.clip_mode,
            validation=args.validation,
            latency_s=args.latency_s,
            sync_wait_s=args.sync_wait_s,
            output_ttl_s=args.output_ttl_s,
            novita_output_ttl_s=args.novita_output_ttl_s,
            unknown_task_status=args.unknown_task_status,
            **extra,
        )
    except ValueError as exc:
        raise CliError(f"bad simulator option: {exc}") from None


async def _serve(config: SimulatorConfig, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    sim = Simulator(config, host=host, port=port)
    try:
        await sim.start()
    except OSError as exc:
        await sim.stop()
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", 1) from None
    try:
        sys.stdout.write(f"listening on {sim.base_url}\n")
        sys.stdout.flush()
        await stop.wait()
    finally:
        await sim.stop()


def run(args: argparse.Namespace) -> int:
    asyncio.run(_serve(_config(args), args.host, args.port))
    return 0
