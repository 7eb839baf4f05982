"""Provider callbacks over real HTTP: the simulator calls the bot's endpoint back."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import bot.runner
from providers.simulator import Fault, Simulator
from providers.webhooks import sign_wavespeed_webhook
from storage import JobStatus
from tests.bot.conftest import Clock
from tests.bot.test_runner import SUBMIT_PATH
from tests.web.conftest import free_socket, requests_for, serve_endpoint


def callbacks_counted(ep: Any, provider: str, outcome: str) -> float:
    value = ep.app.metrics.registry.get_sample_value(
        "animatebot_webhooks_total", {"provider": provider, "outcome": outcome}
    )
    return value or 0.0


async def settles(ep: Any, key: str) -> int:
    entries = await ep.app.db.ledger.entries()
    return sum(1 for e in entries if e.key == key and e.kind == "settle")


async def test_a_signed_wavespeed_callback_delivers_the_clip_without_a_poll(
    endpoint: Callable[..., Any], simulator: Simulator, png_file: Path
) -> None:
    async with endpoint() as ep:
        job = await ep.animate(png_file)
        assert job.status is JobStatus.SUBMITTED and job.meta["callback"] is True
        task_id = job.provider_task_id
        assert simulator.tasks[task_id].webhook_url.startswith(f"{ep.url}/hooks/wavespeed/")
        simulator.complete_now(task_id)
        done = await ep.delivered(job.id)
        reservation = await ep.app.db.ledger.get(done.ledger_key)
    assert done.status is JobStatus.DELIVERED
    assert (ep.out / f"{job.id}.mp4").stat().st_size > 0
    assert reservation is not None and reservation.status == "settled"
    assert reservation.settled_micros == job.cost_micros
    assert simulator.stats.polls[task_id] == 0
    assert callbacks_counted(ep, "wavespeed", "applied") == 1
    # every provider request the job made: upload ticket, upload, submit, clip download
    assert ep.app.metrics.requests_sent() == 4
    assert requests_for(simulator, "POST /api/v3/media/uploads") == 1
    assert requests_for(simulator, "PUT /_sim/uploads/") == 1
    assert requests_for(simulator, "POST /api/v3/{model") == 1
    assert requests_for(simulator, "GET /_sim/outputs/") == 1


@pytest.mark.parametrize("knob", ["webhook_bad_signature", "webhook_stale_timestamp"])
async def test_forged_and_stale_callbacks_are_refused_and_the_poll_still_finds_the_job(
    endpoint: Callable[..., Any], simulator: Simulator, png_file: Path, knob: str
) -> None:
    simulator.config.update({knob: True})
    clock = Clock()
    async with endpoint(clock=clock) as ep:
        job = await ep.animate(png_file)
        sent_before = ep.app.metrics.requests_sent()
        simulator.complete_now(job.provider_task_id)
        await simulator.drain_webhooks()
        tries = 1 + simulator.config.webhook_retries
        assert [d.status for d in simulator.webhook_deliveries] == [401] * tries
        after = await ep.app.db.jobs.get(job.id)
        assert after is not None and after.status is JobStatus.SUBMITTED
        held = await ep.app.db.ledger.get(job.ledger_key)
        assert held is not None and held.status == "held"
        assert ep.app.metrics.requests_sent() == sent_before  # refusing cost no request
        assert callbacks_counted(ep, "wavespeed", "bad_signature") == tries
        # the safety net: the slow poll comes, finds the clip, delivers it
        clock.jump(3600)
        ep.app.runner.wake()
        done = await ep.delivered(job.id)
        assert await settles(ep, job.ledger_key) == 1
    assert done.status is JobStatus.DELIVERED
    assert simulator.stats.polls[job.provider_task_id] == 1


async def test_duplicate_callbacks_change_nothing(
    endpoint: Callable[..., Any], simulator: Simulator, png_file: Path
) -> None:
    simulator.config.update({"webhook_duplicate": True})
    async with endpoint() as ep:
        job = await ep.animate(png_file)
        simulator.complete_now(job.provider_task_id)
        done = await ep.delivered(job.id)
        await simulator.drain_webhooks()
        assert [d.status for d in simulator.webhook_deliveries] == [200, 200]
        assert await settles(ep, job.ledger_key) == 1
        history = [e.to_status for e in await ep.app.db.jobs.history(job.id)]
    assert done.status is JobStatus.DELIVERED
    assert history.count(JobStatus.COMPLETED) == 1 and history.count(JobStatus.DELIVERED) == 1
    assert simulator.stats.polls[job.provider_task_id] == 0
    assert ep.said.lines.count(f"job {job.id}: clip written to {ep.out / (job.id + '.mp4')}") == 1


async def test_a_signed_callback_about_another_task_is_ignored(
    endpoint: Callable[..., Any], simulator: Simulator, png_file: Path
) -> None:
    async with endpoint(runner=False) as ep:
        first = await ep.animate(png_file)
        second = await ep.animate(png_file)
        simulator.complete_now(first.provider_task_id)
        await simulator.drain_webhooks()
        # replay the first task's genuine, signed result at the second job's URL
        body = json.dumps({"id": first.provider_task_id, "status": "completed",
                           "outputs": ["http://127.0.0.1:1/x.mp4"]}).encode()  # fmt: skip
        ts = int(time.time())
        headers = {
            "webhook-id": first.provider_task_id,
            "webhook-timestamp": str(ts),
            "webhook-signature": sign_wavespeed_webhook(
                simulator.webhook_secret, first.provider_task_id, ts, body
            ),
        }
        hook = simulator.tasks[second.provider_task_id].webhook_url
        response = await ep.post(hook.removeprefix(ep.url), content=body, headers=headers)
        after = await ep.app.db.jobs.get(second.id)
    assert response.status_code == 200 and response.json()["outcome"] == "ignored"
    assert after is not None and after.status is JobStatus.SUBMITTED and after.output_url is None


async def test_urls_we_did_not_sign_are_404_and_read_nothing(
    endpoint: Callable[..., Any], simulator: Simulator, png_file: Path
) -> None:
    async with endpoint(runner=False) as ep:
        job = await ep.animate(png_file)
        links = ep.app.links
        assert links is not None
        good = links.token("hook", job.id, "wavespeed")
        tampered = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
        other_kind = links.token("clip", job.id, "wavespeed")
        other_provider = links.token("hook", job.id, "novita")
        statuses = [
            (await ep.post(f"/hooks/wavespeed/{token}", content=b"{}")).status_code
            for token in ("not-a-token", tampered, other_kind, other_provider)
        ]
        unrouted = await ep.post("/hooks/replicate/abc", content=b"{}")
        listing = await ep.get("/hooks/")
    assert statuses == [404, 404, 404, 404]
    assert unrouted.status_code == 404 and listing.status_code in (404, 405)
    assert callbacks_counted(ep, "wavespeed", "bad_token") == 4


async def test_the_webhook_secret_is_fetched_once_and_cached(
    endpoint: Callable[..., Any], simulator: Simulator, png_file: Path
) -> None:
    async with endpoint(wavespeed_webhook_secret=None) as ep:
        jobs = [await ep.animate(png_file) for _ in range(2)]
        for job in jobs:
            simulator.complete_now(job.provider_task_id)
        for job in jobs:
            assert (await ep.delivered(job.id)).status is JobStatus.DELIVERED
    assert requests_for(simulator, "GET /api/v3/webhook/secret") == 1
    assert all(simulator.stats.polls[j.provider_task_id] == 0 for j in jobs)


async def test_a_novita_callback_makes_the_runner_fetch_the_result(
    endpoint: Callable[..., Any], simulator: Simulator, png_file: Path
) -> None:
    async with endpoint() as ep:
        job = await ep.animate(png_file, model="wan-2.1", resolution="480p")
        assert job.status is JobStatus.SUBMITTED
        task = simulator.tasks[job.provider_task_id]
        assert task.webhook_url is not None and "/hooks/novita/" in task.webhook_url
        # Novita fetched the input from our signed /i/ URL: the stored image, byte for byte
        assert job.meta["image_url"].startswith(f"{ep.url}/i/")
        stored = await ep.app.db.jobs.get_input(job.id)
        await simulator.settle_fetch(task)
        assert stored is not None and task.image_bytes == stored.data
        simulator.complete_now(job.provider_task_id)
        done = await ep.delivered(job.id)
    assert done.status is JobStatus.DELIVERED
    assert simulator.stats.polls[job.provider_task_id] == 1  # the fetch the callback asked for
    assert callbacks_counted(ep, "novita", "woken") == 1


async def test_an_unsigned_novita_body_is_never_believed(
    endpoint: Callable[..., Any], simulator: Simulator, png_file: Path
) -> None:
    async with endpoint(runner=False) as ep:
        job = await ep.animate(png_file, model="wan-2.1", resolution="480p")
        hook = simulator.tasks[job.provider_task_id].webhook_url
        assert hook is not None
        lie = {"event_type": "ASYNC_TASK_RESULT", "payload": {
            "task": {"task_id": job.provider_task_id, "status": "TASK_STATUS_SUCCEED"},
            "videos": [{"video_url": "http://127.0.0.1:1/fake.mp4"}]}}  # fmt: skip
        response = await ep.post(hook.removeprefix(ep.url), json=lie)
        assert response.json()["outcome"] == "woken"
        assert await ep.app.runner.run_once() == 1  # the runner asks Novita itself
        after = await ep.app.db.jobs.get(job.id)
        held = await ep.app.db.ledger.get(job.ledger_key)
    assert simulator.stats.polls[job.provider_task_id] == 1
    assert after is not None and after.status in (JobStatus.SUBMITTED, JobStatus.PROCESSING)
    assert after.output_url is None
    assert held is not None and held.status == "held"


async def test_a_callback_nobody_receives_is_not_lost(
    simulator: Simulator, database_url: str, tmp_path: Path, png_file: Path
) -> None:
    simulator.config.update({"webhook_retries": 0})
    dead = free_socket()  # bound, never listening: the callback is refused
    clock = Clock()
    async with serve_endpoint(
        simulator, database_url, tmp_path, runner=False, clock=clock,
        public_base_url=f"http://127.0.0.1:{dead.getsockname()[1]}",
        wavespeed_webhook_secret=simulator.webhook_secret,
    ) as ep:  # fmt: skip
        job = await ep.animate(png_file)
        simulator.complete_now(job.provider_task_id)
        await simulator.drain_webhooks()
        assert simulator.sender.gave_up == 1
        clock.jump(3600)  # the safety-net poll falls due
        assert await ep.app.runner.run_once() == 1
        done = await ep.app.db.jobs.get(job.id)
    dead.close()
    assert done is not None and done.status is JobStatus.DELIVERED


async def test_a_callback_received_while_no_runner_runs_waits_for_one(
    endpoint: Callable[..., Any], simulator: Simulator, png_file: Path
) -> None:
    async with endpoint(runner=False) as ep:
        job = await ep.animate(png_file)
        simulator.complete_now(job.provider_task_id)
        await simulator.drain_webhooks()
        recorded = await ep.app.db.jobs.get(job.id)
        assert recorded is not None and recorded.status is JobStatus.COMPLETED
        assert await ep.app.runner.run_once() == 1  # due now: a runner that starts delivers
        done = await ep.app.db.jobs.get(job.id)
    assert done is not None and done.status is JobStatus.DELIVERED
    assert simulator.stats.polls[job.provider_task_id] == 0


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_on_postgres_a_callback_to_one_process_wakes_the_runner_of_another(
    simulator: Simulator,
    database_url: str,
    tmp_path: Path,
    png_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Without a wake-up from the database the runner would sleep for an hour here.
    monkeypatch.setattr(bot.runner, "IDLE_LOOK_S", 3600.0)
    secret = {"wavespeed_webhook_secret": simulator.webhook_secret}
    async with serve_endpoint(
        simulator, database_url, tmp_path / "web", runner=False, owner="web-process", **secret
    ) as web_process, serve_endpoint(
        simulator, database_url, tmp_path / "worker", owner="worker-process",
        public_base_url=web_process.url, **secret,
    ) as worker:  # fmt: skip
        job = await worker.animate(png_file)
        assert simulator.tasks[job.provider_task_id].webhook_url.startswith(web_process.url)
        simulator.complete_now(job.provider_task_id)
        done = await worker.delivered(job.id)
    assert done.status is JobStatus.DELIVERED
    assert callbacks_counted(web_process, "wavespeed", "applied") == 1
    assert (worker.out / f"{job.id}.mp4").exists()  # the worker's own sink delivered it
    assert simulator.stats.polls[job.provider_task_id] == 0


async def test_a_signed_callback_answers_a_submit_whose_reply_was_lost(
    endpoint: Callable[..., Any], simulator: Simulator, png_file: Path
) -> None:
    """The provider created the task but its reply never arrived: the job is given up as an
    unknown outcome with its hold kept. WaveSpeed's signed callback to the job's own URL then
    names the task: it is recorded, the clip delivered and the hold settled once - no one has
    to resolve it by hand."""
    simulator.add_fault(
        Fault(method="POST", path_prefix=SUBMIT_PATH, after_handler=True, drop_connection=True)
    )
    async with endpoint() as ep:
        job = await ep.animate(png_file)
        assert job.status is JobStatus.EXPIRED and job.provider_task_id is None
        (task_id,) = simulator.tasks  # the provider did create it
        held = await ep.app.db.ledger.get(job.ledger_key)
        assert held is not None and held.status == "held"
        simulator.complete_now(task_id)
        await simulator.drain_webhooks()  # the callback was answered: the job is ours again
        done = await ep.delivered(job.id)
        assert await settles(ep, job.ledger_key) == 1
        history = [e.to_status for e in await ep.app.db.jobs.history(job.id)]
    assert done.status is JobStatus.DELIVERED and done.provider_task_id == task_id
    assert history[-4:] == [
        JobStatus.EXPIRED, JobStatus.SUBMITTED, JobStatus.COMPLETED, JobStatus.DELIVERED
    ]
    assert (ep.out / f"{job.id}.mp4").stat().st_size > 0
    assert simulator.stats.polls[task_id] == 0  # the callback carried the result


async def test_a_callback_for_a_job_already_resolved_only_records_the_task(
    endpoint: Callable[..., Any], simulator: Simulator, png_file: Path
) -> None:
    """The operator voided the unknown outcome before the callback came: the task id is kept
    for them to check, and nothing else changes - no charge, no delivery."""
    simulator.add_fault(
        Fault(method="POST", path_prefix=SUBMIT_PATH, after_handler=True, drop_connection=True)
    )
    async with endpoint() as ep:
        job = await ep.animate(png_file)
        await ep.app.db.jobs.resolve_hold(job.id, "void", note="checked: looked lost")
        (task_id,) = simulator.tasks
        simulator.complete_now(task_id)
        await simulator.drain_webhooks()
        after = await ep.app.db.jobs.get(job.id)
        voided = await ep.app.db.ledger.get(job.ledger_key)
        assert await settles(ep, job.ledger_key) == 0
    assert after is not None and after.status is JobStatus.EXPIRED
    assert after.provider_task_id == task_id
    assert voided is not None and voided.status == "voided"
    assert not (ep.out / f"{job.id}.mp4").exists()
