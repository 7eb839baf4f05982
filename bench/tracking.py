"""How cheaply the runner follows many in-flight jobs.

    python bench/tracking.py --jobs N [--json]

Starts the provider simulator as a separate process (so its memory and CPU are not counted),
submits N jobs through the real service, and lets one runner follow them to delivery. Render
times are drawn from 20-120 s and time-scaled so that the run takes about a minute; every
time printed is in the unscaled seconds a person would see. It then runs the official
WaveSpeed SDK's polling pattern (first poll at once, then every 1.0 s) on the same workload as
the reference, on min(N, 200) jobs: its requests per job do not depend on N as long as the simulator
keeps up, and a thousand jobs polling every second would saturate it and understate them.

Prints figures, not pass/fail. `--json`: one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import resource
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
from bot.sinks import Clip, Progress, SinkRegistry  # noqa: E402

API_KEY = "bench-key"
MODEL = "openvideo"
ENDPOINT = "/api/v3/wavespeed-ai/open-video/image-to-video"


def start_simulator(
    render: tuple[float, float], time_scale: float
) -> tuple[subprocess.Popen[str], str]:
    cmd = [
        sys.executable,
        "-m",
        "bot",
        "simulator",
        "--port",
        "0",
        "--render-s",
        f"{render[0]}-{render[1]}",
        "--time-scale",
        str(time_scale),
        "--clip-mode",
        "static",
        "--api-key",
        API_KEY,
    ]
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


async def task_facts(base_url: str, task_ids: list[str]) -> dict[str, dict[str, Any]]:
    facts: dict[str, dict[str, Any]] = {}
    sem = asyncio.Semaphore(32)
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:

        async def one(task_id: str) -> None:
            async with sem:
                r = await http.get(f"/_sim/tasks/{task_id}")
                r.raise_for_status()
                facts[task_id] = r.json()

        await asyncio.gather(*(one(t) for t in task_ids))
    return facts


async def run_ours(n: int, base_url: str, time_scale: float, db_dir: str) -> dict[str, Any]:
    settings = Settings(
        _env_file=None,
        database_url=f"sqlite:///{db_dir}/bench.db",
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
    )
    sink = BenchSink(n)
    png = sample_png()
    cpu0 = cpu_s()
    async with open_app(settings, sinks=SinkRegistry({"bench": sink})) as app:
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
    cpu_tracking = cpu_s() - cpu_submitted
    facts = await task_facts(base_url, list(sink.delivered_at))
    latency, renders, polls = [], [], []
    for task_id, delivered in sink.delivered_at.items():
        f = facts[task_id]
        latency.append((delivered - f["finished_at_unix"]) / time_scale)
        renders.append(f["render_s"])
        polls.append(f["polls"])
    # Per job: submit + polls + clip download (the upload is reported apart: the SDK's
    # users upload too, and it is not part of following a job).
    per_job = [1 + p + 1 for p in polls]
    return {
        "jobs": n,
        "delivered": len(sink.delivered_at),
        "failed": len(sink.failed),
        "submit_wall_s": round(submitted_s, 1),
        "peak_in_flight": sink.peak_in_flight,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "cpu_s": round(cpu_s() - cpu0, 1),
        "cpu_tracking_s": round(cpu_tracking, 1),
        "requests_per_job": round(statistics.mean(per_job), 2),
        "polls_per_job": round(statistics.mean(polls), 2),
        "p50_delivery_s": round(statistics.median(latency), 1),
        "p99_delivery_s": round(_pct(latency, 99), 1),
        "median_render_s": round(statistics.median(renders), 1),
    }


async def run_reference(n: int, base_url: str, time_scale: float, png: bytes) -> dict[str, Any]:
    """The official SDK's loop: submit once, GET at once, then every 1.0 s until terminal."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    counts: list[int] = []
    seen_done: dict[str, float] = {}
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, timeout=60, limits=limits
    ) as http:
        ticket = (
            await http.post(
                "/api/v3/media/uploads",
                json={"filename": "bench.png", "size": len(png), "content_type": "image/png"},
            )
        ).json()["data"]
        await http.put(ticket["upload"]["url"], content=png, headers=ticket["upload"]["headers"])
        image_url = ticket["download_url"]

        async def one(i: int) -> None:
            r = await http.post(
                ENDPOINT, json={"image": image_url, "prompt": "bench", "duration": 5}
            )
            task_id = r.json()["data"]["id"]
            requests = 1
            while True:
                data = (await http.get(f"/api/v3/predictions/{task_id}/result")).json()["data"]
                requests += 1
                if data["status"] in ("completed", "failed"):
                    break
                await asyncio.sleep(1.0 * time_scale)
            seen_done[task_id] = time.time()
            if data["outputs"]:
                await http.get(data["outputs"][0])
                requests += 1
            counts.append(requests)

        await asyncio.gather(*(one(i) for i in range(n)))
    facts = await task_facts(base_url, list(seen_done))
    latency = [(seen_done[t] - f["finished_at_unix"]) / time_scale for t, f in facts.items()]
    return {
        "reference_jobs": n,
        "reference_requests_per_job": round(statistics.mean(counts), 2),
        "reference_p50_delivery_s": round(statistics.median(latency), 1),
    }


def _pct(values: list[float], pct: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--reference-jobs", type=int, help="default: min(jobs, 200); 0 skips it")
    parser.add_argument(
        "--run-s", type=float, default=60.0, help="wall seconds for the longest render"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    render = (20.0, 120.0)
    time_scale = args.run_s / render[1]
    ref_jobs = min(args.jobs, 200) if args.reference_jobs is None else args.reference_jobs
    proc, base_url = start_simulator(render, time_scale)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            ours = asyncio.run(run_ours(args.jobs, base_url, time_scale, tmp))
        result: dict[str, Any] = {**ours, "time_scale": time_scale}
        if ref_jobs:
            httpx.post(f"{base_url}/_sim/reset", timeout=30)
            result.update(asyncio.run(run_reference(ref_jobs, base_url, time_scale, sample_png())))
            result["requests_ratio"] = round(
                result["requests_per_job"] / result["reference_requests_per_job"], 3
            )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    for key, value in result.items():
        print(f"{key:>28}: {value}", file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
