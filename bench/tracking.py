"""How cheaply the bot follows many in-flight jobs, by polling and by provider callbacks.

    python bench/tracking.py [--jobs 2000] [--webhooks] [--reference-jobs 200] [--json]

Each part runs in a child process of its own, against a provider simulator of its own (so
counters, memory and CPU are the part's alone):

- polling: N jobs submitted through the real service and followed by one runner to delivery.
- webhooks (`--webhooks`): the same N jobs with PUBLIC_BASE_URL set: the simulator calls the
  bot's web endpoint (in the bench process) back with signed WaveSpeed callbacks.
- reference: the official WaveSpeed SDK's pattern on min(N, 200) jobs, once polling every
  1 s (the SDK's default) and once every 5 s (WaveSpeed's guidance for video tasks): upload
  ticket + upload (the same per-job upload as ours), submit, a GET at once and then one per
  interval until done, the clip download.

Every provider request of a job is counted: upload ticket, upload, submit, every poll, the
clip download, and the once-per-process webhook secret fetch (spread over the jobs). The
simulator's own request counters are the figure; the bot's count (its /metrics counter) or
the reference's client-side count is printed beside it as a cross-check.

Render times are drawn from 20-120 s; `--run-s` is the wall time of the longest render
(default 120: no time scaling, every time printed is real). Prints figures, not pass/fail;
`--json` puts one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.app import open_app  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.models import AnimateRequest, ImageSource  # noqa: E402
from bot.schedule import first_poll_delay  # noqa: E402
from bot.sinks import Clip, Progress, SinkRegistry  # noqa: E402
from providers.catalog import get_model  # noqa: E402

API_KEY = "bench-key"
MODEL = "openvideo"
ENDPOINT = "/api/v3/wavespeed-ai/open-video/image-to-video"
RENDER = (20.0, 120.0)
# The simulator routes a provider request can reach (the rest is /_sim bookkeeping, or the
# simulator fetching its own uploads as the provider does).
PROVIDER_ROUTES = {
    "POST /api/v3/media/uploads": "upload_ticket",
    "PUT /_sim/uploads/{token}": "upload",
    "POST /api/v3/{model}": "submit",
    "GET /api/v3/predictions/{task_id}/result": "poll",
    "GET /_sim/outputs/{task_id}.mp4": "download",
    "GET /api/v3/webhook/secret": "webhook_secret",
}


def start_simulator(time_scale: float) -> tuple[subprocess.Popen[str], str]:
    cmd = [
        sys.executable, "-m", "bot", "simulator", "--port", "0",
        "--render-s", f"{RENDER[0]}-{RENDER[1]}", "--time-scale", str(time_scale),
        "--clip-mode", "static", "--api-key", API_KEY,
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        proc.kill()
        raise SystemExit(f"simulator did not start: {line!r}")
    return proc, line.removeprefix("listening on ")


def sample_png() -> bytes:
    img = Image.new("RGB", (320, 240))
    for x in range(320):
        for y in range(0, 240, 8):
            img.putpixel((x, y), (x % 256, y, 128))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


class BenchSink:
    """Records when each clip reached its destination; keeps no clip bytes."""

    def __init__(self, expected: int) -> None:
        self.delivered_at: dict[str, float] = {}
        self.failed: dict[str, str] = {}
        self.expected = expected
        self.done = asyncio.Event()
        self.in_flight = 0
        self.peak_in_flight = 0

    def submitted(self) -> None:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    async def progress(self, job: Any, update: Progress) -> None:
        return None

    async def deliver(self, job: Any, clip: Clip) -> str:
        self.delivered_at[job.provider_task_id] = time.time()
        self._check()
        return f"bench:{job.id}"

    async def failed(self, job: Any, message: str) -> None:
        self.failed[job.id] = message
        self._check()

    def _check(self) -> None:
        self.in_flight -= 1
        if len(self.delivered_at) + len(self.failed) >= self.expected:
            self.done.set()


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def sim_requests(base_url: str) -> dict[str, int]:
    """Provider requests the simulator served, by kind (its own counters)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=60, trust_env=False) as http:
        stats = (await http.get("/_sim/stats")).json()["requests"]
    counts: dict[str, int] = {}
    for route, n in stats.items():
        kind = PROVIDER_ROUTES.get(route)
        if kind is not None:
            counts[kind] = counts.get(kind, 0) + int(n)
    return counts


async def task_facts(base_url: str, task_ids: list[str]) -> dict[str, dict[str, Any]]:
    facts: dict[str, dict[str, Any]] = {}
    sem = asyncio.Semaphore(32)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, trust_env=False) as http:

        async def one(task_id: str) -> None:
            async with sem:
                r = await http.get(f"/_sim/tasks/{task_id}")
                r.raise_for_status()
                facts[task_id] = r.json()

        await asyncio.gather(*(one(t) for t in task_ids))
    return facts


def latency_figures(
    done_at: dict[str, float], facts: dict[str, dict[str, Any]], time_scale: float
) -> dict[str, Any]:
    """Completion-to-delivery in the seconds a person sees, overall and for short renders
    (those that finish before the first scheduled poll)."""
    first_poll = first_poll_delay(get_model(MODEL).typical_render_s, "wavespeed")
    latency, short, renders = [], [], []
    for task_id, at in done_at.items():
        f = facts[task_id]
        seconds = (at - f["finished_at_unix"]) / time_scale
        latency.append(seconds)
        renders.append(f["render_s"])
        if f["render_s"] < first_poll:
            short.append(seconds)
    return {
        "p50_delivery_s": round(statistics.median(latency), 2),
        "p99_delivery_s": round(_pct(latency, 99), 2),
        "median_render_s": round(statistics.median(renders), 1),
        "first_poll_s": first_poll,
        "short_renders": len(short),
        "short_p50_delivery_s": round(statistics.median(short), 2) if short else None,
    }


async def run_ours(n: int, base_url: str, time_scale: float, webhooks: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-tracking-") as tmp:
        return await _run_ours(n, base_url, time_scale, webhooks, tmp)


async def _run_ours(
    n: int, base_url: str, time_scale: float, webhooks: bool, tmp: str
) -> dict[str, Any]:
    from aiohttp import web

    from bot.web import build_web_app

    sock, public = None, None
    if webhooks:  # the callbacks' listening socket, bound now for its public URL
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        public = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = Settings(
        _env_file=None,
        database_url=f"sqlite:///{tmp}/bench.db",
        wavespeed_api_key=API_KEY,
        wavespeed_base_url=base_url,
        allow_private_image_urls=True,
        user_daily_cap_usd=None,
        user_monthly_cap_usd=None,
        server_daily_cap_usd=None,
        server_monthly_cap_usd=None,
        user_concurrent_jobs=None,
        server_concurrent_jobs=None,
        user_jobs_per_hour=None,
        runner_concurrency=64,
        time_scale=time_scale,
        job_deadline_s=3600,
        public_base_url=public,
        clip_dir=f"{tmp}/clips",
    )
    sink = BenchSink(n)
    png = sample_png()
    cpu0 = cpu_s()
    async with open_app(settings, sinks=SinkRegistry({"bench": sink})) as app:
        web_runner = None
        if sock is not None:
            web_runner = web.AppRunner(build_web_app(app), handle_signals=False)
            await web_runner.setup()
            await web.SockSite(web_runner, sock, backlog=1024).start()
        stop = asyncio.Event()
        runner = asyncio.create_task(app.runner.run(stop))
        sem = asyncio.Semaphore(16)

        async def submit(i: int) -> None:
            async with sem:
                sub = await app.service.animate(
                    AnimateRequest(
                        platform="cli",
                        event_id=f"bench-{i}",
                        user_id=f"user{i % 500}",
                        image=ImageSource(data=png),
                        prompt="bench",
                        model=MODEL,
                        options={"duration": 5},
                        sink={"kind": "bench"},
                    )
                )
                if sub.job.provider_task_id:
                    sink.submitted()

        t0 = time.time()
        await asyncio.gather(*(submit(i) for i in range(n)))
        submitted_s = time.time() - t0
        cpu_submitted = cpu_s()
        await sink.done.wait()
        stop.set()
        await runner
        bot_count = app.metrics.requests_sent()
        if web_runner is not None:
            await web_runner.cleanup()
    cpu_tracking = cpu_s() - cpu_submitted
    counted = await sim_requests(base_url)
    facts = await task_facts(base_url, list(sink.delivered_at))
    total = sum(counted.values())
    return {
        "mode": "webhooks" if webhooks else "polling",
        "jobs": n,
        "delivered": len(sink.delivered_at),
        "failed": len(sink.failed),
        "submit_wall_s": round(submitted_s, 1),
        "peak_in_flight": sink.peak_in_flight,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "cpu_s": round(cpu_s() - cpu0, 1),
        "cpu_tracking_s": round(cpu_tracking, 1),
        "requests_per_job": round(total / n, 3),
        "requests_by_kind": counted,
        "bot_counted_requests": bot_count,
        "simulator_counted_requests": total,
        **latency_figures(sink.delivered_at, facts, time_scale),
    }


async def run_reference(
    n: int, base_url: str, time_scale: float, interval_s: float
) -> dict[str, Any]:
    """The official SDK's loop, with the same per-job upload as ours."""
    png = sample_png()
    headers = {"Authorization": f"Bearer {API_KEY}"}
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    counts: list[int] = []
    seen_done: dict[str, float] = {}
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, timeout=60, limits=limits, trust_env=False
    ) as http:

        async def one(i: int) -> None:
            ticket = (
                await http.post(
                    "/api/v3/media/uploads",
                    json={"filename": f"r{i}.png", "size": len(png), "content_type": "image/png"},
                )
            ).json()["data"]
            await http.put(
                ticket["upload"]["url"], content=png, headers=ticket["upload"]["headers"]
            )
            r = await http.post(
                ENDPOINT, json={"image": ticket["download_url"], "prompt": "bench", "duration": 5}
            )
            task_id = r.json()["data"]["id"]
            requests = 3
            while True:
                data = (await http.get(f"/api/v3/predictions/{task_id}/result")).json()["data"]
                requests += 1
                if data["status"] in ("completed", "failed"):
                    break
                await asyncio.sleep(interval_s * time_scale)
            seen_done[task_id] = time.time()
            if data["outputs"]:
                await http.get(data["outputs"][0])
                requests += 1
            counts.append(requests)

        await asyncio.gather(*(one(i) for i in range(n)))
    counted = await sim_requests(base_url)
    facts = await task_facts(base_url, list(seen_done))
    return {
        "mode": f"reference {interval_s:g} s",
        "jobs": n,
        "requests_per_job": round(sum(counted.values()) / n, 3),
        "requests_by_kind": counted,
        "client_counted_requests": sum(counts),
        "simulator_counted_requests": sum(counted.values()),
        **latency_figures(seen_done, facts, time_scale),
    }


def _pct(values: list[float], pct: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def run_part(part: str, jobs: int, time_scale: float) -> dict[str, Any]:
    """One part against its own simulator (called in a child process)."""
    proc, base_url = start_simulator(time_scale)
    try:
        if part in ("polling", "webhooks"):
            return asyncio.run(run_ours(jobs, base_url, time_scale, part == "webhooks"))
        interval = float(part.removeprefix("reference-"))
        return asyncio.run(run_reference(jobs, base_url, time_scale, interval))
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def child(part: str, jobs: int, run_s: float) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--part", part, "--jobs", str(jobs), "--run-s", str(run_s)]
    out = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def ratio(value: float, reference: float) -> str:
    return f"{value:g} / {reference:g} ({value / reference:.2f})" if reference else f"{value:g}"


def report(results: list[dict[str, Any]], out: Any) -> None:
    ref = {r["mode"]: r for r in results if r["mode"].startswith("reference")}
    sdk = ref.get("reference 1 s")
    for r in results:
        print(f"--- {r['mode']}: {r['jobs']} jobs", file=out)
        for key, value in r.items():
            if key not in ("mode", "jobs"):
                print(f"{key:>28}: {value}", file=out)
    print("--- side by side (ours / reference, ratio)", file=out)
    for r in results:
        if r["mode"].startswith("reference"):
            continue
        for name, base in ref.items():
            print(
                f"{r['mode']:>9} vs {name}: requests/job {ratio(r['requests_per_job'], base['requests_per_job'])}"  # noqa: E501
                f"; p50 delivery s {ratio(r['p50_delivery_s'], base['p50_delivery_s'])}"
                f"; p99 delivery s {ratio(r['p99_delivery_s'], base['p99_delivery_s'])}",
                file=out,
            )
    if sdk is None:
        print("(no reference run)", file=out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--webhooks", action="store_true", help="also the run with callbacks")
    parser.add_argument("--reference-jobs", type=int, help="default: min(jobs, 200); 0 skips it")
    parser.add_argument(
        "--run-s", type=float, default=120.0,
        help="wall seconds of the longest render (120 = real time)",
    )  # fmt: skip
    parser.add_argument("--part", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    time_scale = args.run_s / RENDER[1]
    if args.part:
        print(json.dumps(run_part(args.part, args.jobs, time_scale)))
        return 0
    ref_jobs = min(args.jobs, 200) if args.reference_jobs is None else args.reference_jobs
    parts = [("polling", args.jobs)]
    if args.webhooks:
        parts.append(("webhooks", args.jobs))
    if ref_jobs:
        parts += [("reference-1", ref_jobs), ("reference-5", ref_jobs)]
    results = [child(part, jobs, args.run_s) for part, jobs in parts]
    report(results, sys.stderr if args.json else sys.stdout)
    if time_scale != 1.0:
        print(f"(time scale {time_scale:g}: seconds above are divided by it)", file=sys.stderr)
    if args.json:
        print(json.dumps({"time_scale": time_scale, "results": results}))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
