"""How fast the Slack front door acknowledges `/animate` (Slack allows 3 seconds).

    python bench/ack_slack.py [--requests 200] [--rounds 5] [--json]

Runs on its own; `run(args)` is the Slack mode of the chat benchmark `bench/ack.py`
(`--platform slack`) when that file is beside it.

Runs the real front door (bolt `AsyncApp` with its signature check, the replay guard and the
listeners, behind aiohttp on loopback, with a SQLite database) against a small fake Slack Web
API, and sends `--requests` correctly signed `/animate` slash commands at once, `--rounds`
times. Each is timed inside the server, from the request reaching the handler to its HTTP 200
being ready (the ack); the lazy `views.open` each one starts runs meanwhile, as in production.
The round trip (client send to answer) is printed too: it adds the wait behind the other
requests of the burst, which is what Slack's 3-second clock sees.

The reference, measured in the same run the same way: a bare aiohttp handler that reads the
body, checks the signature with slack_sdk's `SignatureVerifier` and answers 200 - the least
any Slack app must do. The client runs in the same process (it costs both sides alike).

Prints figures, not pass/fail. `--json`: one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from slack_sdk.signature import SignatureVerifier

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from bot.app import open_app  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.slack_adapter.process import open_door  # noqa: E402

SECRET = "bench-signing-secret"  # noqa: S105 (a made-up secret for loopback)
TOKEN = "xoxb-bench-token"  # noqa: S105 (a made-up token for loopback)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Timings:
    """Handler entry to response ready, per request, in seconds."""

    def __init__(self) -> None:
        self.samples: list[float] = []

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        t0 = time.perf_counter()
        response = await handler(request)
        self.samples.append(time.perf_counter() - t0)
        return response


async def serve_fake_slack() -> None:
    """The Web API methods the front door calls on /animate (auth.test, views.open), in its
    own process so its work is not counted; prints its base URL, then counts on request."""
    counts = {"views.open": 0}

    async def api(request: web.Request) -> web.Response:
        method = request.match_info["method"]
        await request.read()
        if method == "auth.test":
            return web.json_response(
                {"ok": True, "team_id": "TBENCH", "user_id": "UBOT", "bot_id": "BBOT"}
            )
        if method == "views.open":
            counts["views.open"] += 1
            return web.json_response({"ok": True, "view": {"id": f"V{counts['views.open']}"}})
        return web.json_response({"ok": True})

    async def count(request: web.Request) -> web.Response:
        return web.json_response(counts)

    app = web.Application()
    app.router.add_post("/api/{method}", api)
    app.router.add_get("/count", count)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    print(f"http://127.0.0.1:{runner.addresses[0][1]}", flush=True)
    await asyncio.Event().wait()


def start_fake_slack() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve-fake-slack"], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


async def modals_opened(http: aiohttp.ClientSession, base: str) -> int:
    async with http.get(f"{base}/count") as resp:
        return int((await resp.json())["views.open"])


@contextlib.asynccontextmanager
async def serve(handler: Handler, timings: Timings) -> AsyncIterator[str]:
    app = web.Application(middlewares=[timings.middleware])
    app.router.add_post("/slack/events", handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    finally:
        await runner.cleanup()


def command_body(i: int) -> str:
    return urlencode({
        "token": "legacy", "team_id": "TBENCH", "channel_id": "C1", "user_id": f"U{i % 50}",
        "command": "/animate", "text": "the sea breathes", "api_app_id": "A1",
        "response_url": "", "trigger_id": f"{i}.1.bench{i}",
    })  # fmt: skip


async def burst(
    http: aiohttp.ClientSession, url: str, n: int, offset: int, trips: list[float] | None = None
) -> list[int]:
    """`n` signed commands at once; `trips` gets each one's send-to-answer time."""
    verifier = SignatureVerifier(SECRET)

    async def one(i: int) -> int:
        body = command_body(offset + i)
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": verifier.generate_signature(timestamp=ts, body=body) or "",
        }
        t0 = time.perf_counter()
        async with http.post(url, data=body.encode(), headers=headers) as resp:
            await resp.read()
        if trips is not None:
            trips.append(time.perf_counter() - t0)
        return resp.status

    return list(await asyncio.gather(*(one(i) for i in range(n))))


def reference_handler() -> Handler:
    verifier = SignatureVerifier(SECRET)

    async def handle(request: web.Request) -> web.Response:
        body = await request.text()
        ts = request.headers.get("X-Slack-Request-Timestamp", "0")
        if not verifier.is_valid(body, ts, request.headers.get("X-Slack-Signature", "")):
            return web.json_response({"error": "invalid request"}, status=401)
        return web.Response(status=200)

    return handle


def summary(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    return {
        "p50_ms": round(statistics.median(ms), 3),
        "p99_ms": round(ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))], 3),
        "max_ms": round(ms[-1], 3),
    }


async def measure(requests: int, rounds: int) -> dict[str, Any]:
    fake, base = start_fake_slack()
    api_url = f"{base}/api/"
    ours, reference = Timings(), Timings()
    trips: list[float] = []
    ref_trips: list[float] = []
    statuses: list[int] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(
                _env_file=None,
                database_url=f"sqlite:///{tmp}/bench.db",
                wavespeed_api_key="bench",  # models are listed; no provider is called
                wavespeed_base_url=api_url,
                slack_bot_token=TOKEN,
                slack_signing_secret=SECRET,
                slack_api_url=api_url,
            )
            client = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
            async with open_app(settings) as app, client as http:
                door = open_door(app)
                async with serve(door.handle, ours) as url, serve(
                    reference_handler(), reference
                ) as ref_url:
                    # warm-up: bolt's one auth.test, imports, and `requests` open connections
                    # each (connection set-up is not what is measured)
                    await burst(http, url, requests, 10_000_000)
                    await door.drain()
                    await burst(http, ref_url, requests, 0)
                    ours.samples.clear()
                    reference.samples.clear()
                    opened_before = await modals_opened(http, base)
                    t0 = time.perf_counter()
                    for r in range(rounds):
                        statuses += await burst(http, url, requests, r * requests, trips)
                        await door.drain()
                        await burst(http, ref_url, requests, r * requests, ref_trips)
                    wall = time.perf_counter() - t0
                    opened = await modals_opened(http, base) - opened_before
    finally:
        fake.terminate()
        fake.wait(timeout=30)
    ok, ref = summary(ours.samples), summary(reference.samples)
    trip, ref_trip = summary(trips), summary(ref_trips)
    return {
        "requests_at_once": requests,
        "rounds": rounds,
        "acks_200": statuses.count(200),
        "modals_opened": opened,
        "ack_p50_ms": ok["p50_ms"],
        "ack_p99_ms": ok["p99_ms"],
        "ack_max_ms": ok["max_ms"],
        "reference_p50_ms": ref["p50_ms"],
        "reference_p99_ms": ref["p99_ms"],
        "p50_ratio": _ratio(ok["p50_ms"], ref["p50_ms"]),
        "p99_ratio": _ratio(ok["p99_ms"], ref["p99_ms"]),
        "round_trip_p50_ms": trip["p50_ms"],
        "round_trip_p99_ms": trip["p99_ms"],
        "reference_round_trip_p50_ms": ref_trip["p50_ms"],
        "reference_round_trip_p99_ms": ref_trip["p99_ms"],
        "round_trip_p50_ratio": _ratio(trip["p50_ms"], ref_trip["p50_ms"]),
        "round_trip_p99_ratio": _ratio(trip["p99_ms"], ref_trip["p99_ms"]),
        "wall_s": round(wall, 2),
    }


async def run(args: argparse.Namespace) -> Any:
    """`bench/ack.py --platform slack` (the chat benchmark, when present beside this file):
    the same measurement, reported as that bench's `Report` (`--n`, `--rounds`)."""
    sys.path.insert(0, str(BENCH))
    import ack  # type: ignore[import-not-found]  # bench/ack.py: its Report and Figure

    r = await measure(args.n, args.rounds)
    figures = [
        ("ack p50 (in the server)", "ack_p50_ms", "reference_p50_ms"),
        ("ack p99 (in the server)", "ack_p99_ms", "reference_p99_ms"),
        ("round trip p50 (send to 200)", "round_trip_p50_ms", "reference_round_trip_p50_ms"),
        ("round trip p99 (send to 200)", "round_trip_p99_ms", "reference_round_trip_p99_ms"),
    ]
    return ack.Report(
        platform="slack",
        setup=(
            f"{args.n} signed /animate at once x {args.rounds} rounds into the real front door "
            f"(bolt, HTTP mode, SQLite) on loopback; {r['acks_200']} acks, "
            f"{r['modals_opened']} modals opened"
        ),
        reference="a bare aiohttp handler that checks the signature and answers 200",
        figures=[ack.Figure(what, r[ours], "ms", r[ref]) for what, ours, ref in figures],
    )


def _ratio(ours: float, reference: float) -> float | None:
    return round(ours / reference, 1) if reference else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="signed /animate at once")
    parser.add_argument("--rounds", type=int, default=5, help="bursts of --requests each")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve-fake-slack", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_fake_slack:
        asyncio.run(serve_fake_slack())
        return 0
    result = asyncio.run(measure(args.requests, args.rounds))
    for key, value in result.items():
        print(f"{key:>20}: {value}", file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
