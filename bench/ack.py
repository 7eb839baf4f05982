"""How fast a chat front door acknowledges a burst of commands.

    python bench/ack.py [--platform discord] [--n 200] [--rounds 3] [--json]

Prints figures, not pass/fail; beside each its reference, measured in the same run on the same
machine, and the ratio (ours / reference: 1.0 is the machine's ceiling for that work).

--platform discord (this file): N `/animate` interactions handed to one bot process at once,
each exactly as the gateway hands it to discord.py (`parse_interaction_create`), the real front
door on a real App (SQLite, the provider simulator in its own process), against the fake
Discord REST API in its own process (tests/discord/fake_discord.py). Per interaction:

- ack: from handing the interaction to discord.py to the fake receiving its defer callback
  (p50 / p99). Discord's deadline is 3 s; our target is p99 under 10 ms.
- first reply: from the same start to the fake receiving the public reply with the price
  (the image read, checked and the money held before it); throughput = N / time until the
  last reply.

Reference: discord.py alone, on the same burst and the same fake: a client whose `/animate`
only defers (ack) and then edits its answer (first reply), no bot code at all.

--platform slack: `bench/ack_slack.py` (beside this file) provides `run(args) -> Report`;
it is listed here when present.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import discord  # noqa: E402
from discord import app_commands  # noqa: E402

from bot.app import open_app  # noqa: E402
from bot.chat.delivery import ChatSink  # noqa: E402
from bot.cli.processes import add_chat_sinks, default_sinks  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.discord_adapter.client import http_connector, make_client  # noqa: E402
from bot.discord_adapter.front import DiscordFrontDoor  # noqa: E402
from bot.discord_adapter.gateway import no_voice, use_api_base  # noqa: E402
from tests.discord.fake_discord import TOKEN, snowflake_at  # noqa: E402
from tests.discord.payloads import Payloads  # noqa: E402

API_KEY = "bench-key"
NO_CAPS = {
    name: "none"
    for name in (
        "user_daily_cap_usd", "user_monthly_cap_usd", "server_daily_cap_usd",
        "server_monthly_cap_usd", "user_concurrent_jobs", "server_concurrent_jobs",
        "user_jobs_per_hour",
    )
}  # fmt: skip


# --- what every platform reports (bench/ack_slack.py uses these too) ---


@dataclass(frozen=True)
class Figure:
    what: str
    value: float
    unit: str
    reference: float  # the same figure for the reference, measured in the same run
    lower_is_better: bool = True

    @property
    def ratio(self) -> float:
        return self.value / self.reference if self.reference else float("nan")


@dataclass
class Report:
    platform: str
    setup: str
    reference: str
    figures: list[Figure] = field(default_factory=list)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = max(0, min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1))))
    return ordered[k]


def print_report(report: Report, *, as_json: bool) -> None:
    if as_json:
        out = asdict(report)
        out["figures"] = [{**asdict(f), "ratio": round(f.ratio, 3)} for f in report.figures]
        print(json.dumps(out))
        return
    print(f"{report.platform}: {report.setup}")
    print(f"reference: {report.reference}")
    print(f"{'figure':<44} {'ours':>12} {'reference':>12} {'ratio':>7}")
    for f in report.figures:
        ours, ref = f"{f.value:.2f} {f.unit}", f"{f.reference:.2f} {f.unit}"
        print(f"{f.what:<44} {ours:>12} {ref:>12} {f.ratio:>7.2f}")


# --- processes the bench talks to ---


@contextlib.contextmanager
def process(cmd: list[str]) -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        yield proc, proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(10)


def sample_png() -> bytes:
    img = Image.new("RGB", (320, 240), (90, 120, 200))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


class RemoteFake:
    """What `Payloads` needs of a fake Discord that runs in another process."""

    def __init__(self, info: dict[str, Any], image_url: str) -> None:
        channel = info["channel"]
        self.channels = {int(channel["id"]): channel}
        self.channel_id = channel["id"]
        self.guild_id = int(info["guild_id"])
        self.app_id = int(info["app_id"])
        self.image_url = image_url
        self._n = 0

    def now(self) -> float:
        return time.time()

    def snowflake(self, at: float | None = None) -> int:
        self._n += 1
        return snowflake_at(time.time() if at is None else at, self._n)

    def expect_interaction(self, *args: Any) -> None:
        pass  # the fake runs with accept_any_token

    def serve_file(self, data: bytes, *, name: str = "", kind: str = "") -> str:
        return self.image_url


# --- Discord ---


class Burst:
    """N interactions handed to a client at once; when each was handed over, and when its
    defer callback and its first reply were sent (aiohttp's request tracing, in process)."""

    def __init__(self, payloads: list[dict[str, Any]]) -> None:
        self.payloads = payloads
        self.started: dict[str, float] = {}
        self.acked: dict[str, float] = {}
        self.replied: dict[str, float] = {}
        self.done = asyncio.Event()
        self.wants_reply = True

    def fire(self, client: discord.Client) -> None:
        parse = client._connection.parse_interaction_create
        for payload in self.payloads:
            self.started[payload["token"]] = time.monotonic()
            parse(payload)  # type: ignore[arg-type]

    def sent(self, method: str, path: str) -> None:
        """A request's headers went out (called from the trace)."""
        at = time.monotonic()
        parts = path.strip("/").split("/")
        if len(parts) < 4:
            return
        token = parts[-2] if parts[-1] == "callback" else parts[-3]
        if token not in self.started:
            return
        if method == "POST" and parts[-1] == "callback":
            self.acked.setdefault(token, at)
        elif method == "PATCH" and parts[-1] == "@original":
            self.replied.setdefault(token, at)
        if len(self.acked) == len(self.started) and (
            len(self.replied) == len(self.started) or not self.wants_reply
        ):
            self.done.set()

    def figures(self) -> dict[str, float]:
        ack = [(self.acked[t] - s) * 1000 for t, s in self.started.items()]
        reply = [(self.replied[t] - s) * 1000 for t, s in self.started.items()
                 if t in self.replied] or [float("nan")]  # fmt: skip
        span = max(self.replied.values(), default=float("nan")) - min(self.started.values())
        return {
            "ack_p50": percentile(ack, 50),
            "ack_p99": percentile(ack, 99),
            "ack_max": max(ack),
            "reply_p50": percentile(reply, 50),
            "reply_per_s": len(reply) / span,
        }


class Tracer:
    """Hands every request the client sends to the burst being measured."""

    def __init__(self) -> None:
        self.burst: Burst | None = None
        self.config = aiohttp.TraceConfig()
        self.config.on_request_headers_sent.append(self._sent)

    async def _sent(self, session: Any, ctx: Any, params: Any) -> None:
        if self.burst is not None:
            self.burst.sent(params.method, params.url.path)


def payloads_for(p: Payloads, n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        att = p.attachment(b"")
        name, opts, resolved = p.animate(att, f"bench clip {i}", duration=5, resolution="480p")
        out.append(p.command(name, opts, resolved, user_id=str(1000 + i)))
    return out


def bare_client(*, reply: bool, **options: Any) -> discord.Client:
    """The reference: discord.py with an /animate that defers (and, with `reply`, then edits
    its answer); nothing else."""
    client = discord.Client(intents=discord.Intents(guilds=True), **options)
    tree = app_commands.CommandTree(client)

    @tree.command(name="animate", description="reference")
    async def animate(  # the same options as the bot's /animate
        interaction: discord.Interaction[Any],
        image: discord.Attachment,
        prompt: str,
        model: str | None = None,
        duration: int | None = None,
        resolution: str | None = None,
        loras: str | None = None,
        preset: str | None = None,
        seed: int | None = None,
        negative_prompt: str | None = None,
        last_image: discord.Attachment | None = None,
    ) -> None:
        busy.busy += 1
        try:
            await interaction.response.defer(thinking=True)
            if reply:
                await interaction.edit_original_response(content="reply")
        finally:
            busy.done()

    busy = Busy()
    client.replies = reply  # type: ignore[attr-defined]
    client.idle = busy.idle  # type: ignore[attr-defined]
    return client


class Busy:
    """How many interactions the reference client has in hand (to wait for none)."""

    def __init__(self) -> None:
        self.busy = 0
        self._idle = asyncio.Event()

    def done(self) -> None:
        self.busy -= 1
        if self.busy == 0:
            self._idle.set()

    async def idle(self) -> None:
        while self.busy:
            self._idle.clear()
            await self._idle.wait()


async def run_burst(
    client: discord.Client, tracer: Tracer, p: Payloads, n: int,
    idle: Callable[[], Awaitable[None]],
) -> dict[str, float]:  # fmt: skip
    """A burst of n after a first, unmeasured one of n: a running bot keeps its connections
    to Discord open (the first burst pays for opening them)."""
    wants_reply = _replies(client)
    for _ in range(2):
        burst = Burst(payloads_for(p, n))
        burst.wants_reply = wants_reply
        tracer.burst = burst
        burst.fire(client)
        await asyncio.wait_for(burst.done.wait(), 300)
        await idle()  # the work after the reply (thread, submit) is not left to the next
    return burst.figures()


async def run_one_by_one(
    client: discord.Client, tracer: Tracer, p: Payloads, n: int,
    idle: Callable[[], Awaitable[None]],
) -> dict[str, float]:  # fmt: skip
    """n interactions, each handed over when the previous one was answered."""
    acks: list[float] = []
    for _ in range(n):
        burst = Burst(payloads_for(p, 1))
        burst.wants_reply = _replies(client)
        tracer.burst = burst
        burst.fire(client)
        await asyncio.wait_for(burst.done.wait(), 60)
        await idle()
        acks.append(burst.figures()["ack_p50"])
    return {"one_p50": percentile(acks, 50), "one_p99": percentile(acks, 99)}


async def discord_run(args: argparse.Namespace) -> Report:
    no_voice()
    sim_cmd = [sys.executable, "-m", "bot", "simulator", "--port", "0", "--api-key", API_KEY,
               "--clip-mode", "static"]  # fmt: skip
    fake_cmd = [sys.executable, "-m", "tests.discord.fake_discord"]
    with process(sim_cmd) as (_, sim_line), process(fake_cmd) as (_, fake_line), \
            tempfile.TemporaryDirectory() as tmp:  # fmt: skip
        sim_url = sim_line.removeprefix("listening on ")
        info = json.loads(fake_line)
        base = info["base_url"]
        root = base.removesuffix("/api/v10")
        async with httpx.AsyncClient(base_url=root, trust_env=False, timeout=60) as http:
            image_url = (await http.post("/_control/file", content=sample_png())).json()["url"]
            p = Payloads(RemoteFake(info, image_url))  # type: ignore[arg-type]
            use_api_base(base)
            ours: list[dict[str, float]] = []
            ref: list[dict[str, float]] = []
            settings = Settings(
                _env_file=None, database_url=f"sqlite:///{tmp}/bench.db",
                wavespeed_api_key=API_KEY, wavespeed_base_url=sim_url,
                allow_private_image_urls=True, discord_token=TOKEN, discord_api_base_url=base,
                **NO_CAPS,
            )  # fmt: skip
            async with open_app(settings, sinks=default_sinks(settings), owner="bench") as app:
                add_chat_sinks(app)
                sink = app.sinks.get("discord")
                assert isinstance(sink, ChatSink)
                front = DiscordFrontDoor(app, sink)
                ours_trace, ref_trace = Tracer(), Tracer()
                bot = make_client(front, api_base=base, http_trace=ours_trace.config)
                async with bot:
                    await bot.login(TOKEN)
                    # The same connection pool as the bot's (bot/discord_adapter/client.py).
                    defer_only = bare_client(
                        reply=False, http_trace=ref_trace.config, connector=http_connector()
                    )
                    defer_reply = bare_client(
                        reply=True, http_trace=ref_trace.config, connector=http_connector()
                    )
                    async with defer_only, defer_reply:
                        await defer_only.login(TOKEN)
                        await defer_reply.login(TOKEN)
                        for _ in range(args.rounds):  # alternate, so drift hits both alike
                            replies = await run_burst(
                                defer_reply, ref_trace, p, args.n, defer_reply.idle)
                            ref.append({
                                **await run_burst(
                                    defer_only, ref_trace, p, args.n, defer_only.idle),
                                **await run_one_by_one(
                                    defer_only, ref_trace, p, args.n, defer_only.idle),
                                "reply_per_s": replies["reply_per_s"],
                                "reply_p50": replies["reply_p50"],
                            })  # fmt: skip
                            ours.append({
                                **await run_burst(bot, ours_trace, p, args.n, front.idle),
                                **await run_one_by_one(bot, ours_trace, p, args.n, front.idle),
                            })

    def med(runs: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    report = Report(
        platform="discord",
        setup=f"{args.n} /animate interactions at once into one bot process (real front door, "
        f"SQLite, simulator); fake Discord REST in its own process; median of {args.rounds} "
        "rounds",
        reference="discord.py alone on the same interactions and fake: an /animate that only "
        "defers (ack figures), or defers and then edits its answer (reply figures)",
    )
    report.figures = [
        Figure(f"ack p50, {args.n} at once (-> defer sent)", med(ours, "ack_p50"), "ms",
               med(ref, "ack_p50")),
        Figure(f"ack p99, {args.n} at once", med(ours, "ack_p99"), "ms", med(ref, "ack_p99")),
        Figure(f"ack max, {args.n} at once", med(ours, "ack_max"), "ms", med(ref, "ack_max")),
        Figure("ack p50, one at a time", med(ours, "one_p50"), "ms", med(ref, "one_p50")),
        Figure("ack p99, one at a time", med(ours, "one_p99"), "ms", med(ref, "one_p99")),
        Figure("first reply p50 (price shown)", med(ours, "reply_p50"), "ms",
               med(ref, "reply_p50")),
        Figure("throughput to the first reply", med(ours, "reply_per_s"), "/s",
               med(ref, "reply_per_s"), lower_is_better=False),
    ]  # fmt: skip
    return report


def _replies(client: discord.Client) -> bool:
    return bool(getattr(client, "replies", True))


# --- platforms ---

PlatformRun = Callable[[argparse.Namespace], Awaitable[Report]]


def platforms() -> dict[str, PlatformRun]:
    """Discord here; Slack from bench/ack_slack.py (`run(args) -> Report`) when present."""
    found: dict[str, PlatformRun] = {"discord": discord_run}
    with contextlib.suppress(ImportError):
        found["slack"] = importlib.import_module("ack_slack").run
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    available = platforms()
    parser.add_argument("--platform", choices=sorted(available), default="discord")
    parser.add_argument("--n", type=int, default=200, help="interactions at once")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = asyncio.run(available[args.platform](args))
    print_report(report, as_json=args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
