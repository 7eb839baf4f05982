"""Time-based progression (driven by advance_clock, not sleeps), the concurrency cap, sync mode."""

from __future__ import annotations

import httpx
import pytest

from providers.simulator import Simulator, SimulatorConfig
from tests.fixtures_sim import SIM_API_KEY

SUBMIT = "/api/v3/wavespeed-ai/open-video/image-to-video"
BODY = {"image": "data:image/png;base64,iVBORw0KGgo=", "prompt": "p"}


def time_config(**changes: object) -> SimulatorConfig:
    base: dict[str, object] = {
        "api_keys": frozenset({SIM_API_KEY}),
        "progression": "time",
        "queue_s": 10.0,
        "render_s": (20.0, 20.0),
        "clip_mode": "static",
        "webhook_backoff_s": 0.0,
    }
    base.update(changes)
    return SimulatorConfig(**base)  # type: ignore[arg-type]


async def status_of(client: httpx.AsyncClient, task_id: str) -> str:
    reply = await client.get(f"/api/v3/predictions/{task_id}/result")
    return reply.json()["data"]["status"]


@pytest.mark.parametrize("sim_config", [time_config()])
async def test_time_progression_follows_the_clock(
    simulator: Simulator, sim_http: httpx.AsyncClient
) -> None:
    task_id = (await sim_http.post(SUBMIT, json=BODY)).json()["data"]["id"]
    assert await status_of(sim_http, task_id) == "created"
    simulator.advance_clock(10)
    assert await status_of(sim_http, task_id) == "processing"
    simulator.advance_clock(20)
    data = (await sim_http.get(f"/api/v3/predictions/{task_id}/result")).json()["data"]
    assert data["status"] == "completed"
    assert data["timings"]["inference"] == 20_000


@pytest.mark.parametrize("sim_config", [time_config(queue_s=0.0, concurrency_cap=2,
                                                    render_s=(100.0, 100.0))])
async def test_concurrency_cap_keeps_excess_tasks_created(
    simulator: Simulator, sim_http: httpx.AsyncClient
) -> None:
    ids = [(await sim_http.post(SUBMIT, json=BODY)).json()["data"]["id"] for _ in range(3)]
    simulator.advance_clock(50)
    assert [await status_of(sim_http, i) for i in ids] == ["processing", "processing", "created"]
    simulator.advance_clock(50)  # the first two finish; the third takes a freed slot
    assert [await status_of(sim_http, i) for i in ids] == ["completed", "completed", "processing"]
    simulator.advance_clock(100)
    assert await status_of(sim_http, ids[2]) == "completed"


@pytest.mark.parametrize("sim_config", [SimulatorConfig(
    api_keys=frozenset({SIM_API_KEY}), progression="polls", concurrency_cap=1, clip_mode="static")])
async def test_concurrency_cap_with_poll_progression(
    simulator: Simulator, sim_http: httpx.AsyncClient
) -> None:
    first, second = [(await sim_http.post(SUBMIT, json=BODY)).json()["data"]["id"]
                     for _ in range(2)]
    assert [await status_of(sim_http, second) for _ in range(3)] == ["created"] * 3
    assert [await status_of(sim_http, first) for _ in range(2)] == ["processing", "completed"]
    assert [await status_of(sim_http, second) for _ in range(2)] == ["processing", "completed"]


@pytest.mark.parametrize("sim_config", [time_config(queue_s=0.0, render_s=(0.0, 0.0))])
async def test_sync_mode_holds_until_terminal(sim_http: httpx.AsyncClient) -> None:
    reply = await sim_http.post(SUBMIT, json={**BODY, "enable_sync_mode": True})
    assert reply.status_code == 200
    data = reply.json()["data"]
    assert data["status"] == "completed" and len(data["outputs"]) == 1


@pytest.mark.parametrize("sim_config", [time_config(sync_wait_s=0.05, render_s=(1e6, 1e6))])
async def test_sync_mode_times_out_with_5004(
    simulator: Simulator, sim_http: httpx.AsyncClient
) -> None:
    reply = await sim_http.post(SUBMIT, json={**BODY, "enable_sync_mode": True})
    assert reply.status_code == 200
    data = reply.json()["data"]
    assert data["status"] == "processing" and data["code"] == 5004
    assert "Sync mode timed out" in data["error"]
    assert data["urls"]["get"].endswith(f"/api/v3/predictions/{data['id']}/result")
    simulator.config.sync_timeout_504 = True
    gateway = await sim_http.post(SUBMIT, json={**BODY, "enable_sync_mode": True})
    assert gateway.status_code == 504
    assert len(simulator.tasks) == 2  # both tasks exist and keep running


@pytest.mark.parametrize("sim_config", [time_config(queue_s=0.0, render_s=(0.0, 0.0),
                                                    failure_rate=1.0)])
async def test_failure_rate_fails_with_5000(sim_http: httpx.AsyncClient) -> None:
    data = (await sim_http.post(SUBMIT, json={**BODY, "enable_sync_mode": True})).json()["data"]
    assert data["status"] == "failed" and data["code"] == 5000 and data["error"]


@pytest.mark.parametrize("sim_config", [time_config(queue_s=0.0, render_s=(0.0, 0.0),
                                                    nsfw_rate=1.0)])
async def test_nsfw_rate_flags_outputs(sim_http: httpx.AsyncClient) -> None:
    data = (await sim_http.post(SUBMIT, json={**BODY, "enable_sync_mode": True})).json()["data"]
    assert data["status"] == "completed" and data["has_nsfw_contents"] == [True]


@pytest.mark.parametrize("sim_config", [time_config(queue_s=5.0, render_s=(10.0, 10.0))])
async def test_novita_queued_then_processing_with_eta(
    simulator: Simulator, sim_http: httpx.AsyncClient
) -> None:
    task_id = (await sim_http.post("/v3/async/wan-i2v", json={
        "image_url": BODY["image"], "prompt": "p"})).json()["task_id"]

    async def task_block() -> dict:
        reply = await sim_http.get("/v3/async/task-result", params={"task_id": task_id})
        return reply.json()["task"]

    queued = await task_block()
    assert queued["status"] == "TASK_STATUS_QUEUED" and queued["eta"] > 0
    simulator.advance_clock(10)
    processing = await task_block()
    assert processing["status"] == "TASK_STATUS_PROCESSING"
    assert 0 < processing["progress_percent"] < 100
    simulator.advance_clock(5)
    assert (await task_block())["status"] == "TASK_STATUS_SUCCEED"


async def test_control_api_stats_config_and_reset(
    simulator: Simulator, sim_http: httpx.AsyncClient
) -> None:
    task_id = (await sim_http.post(SUBMIT, json=BODY)).json()["data"]["id"]
    await status_of(sim_http, task_id)
    stats = (await sim_http.get("/_sim/stats")).json()
    assert stats["submits"] == {"wavespeed": 1}
    assert stats["polls_total"] == 1 and stats["tasks"] == 1
    assert stats["requests"]["POST /api/v3/{model}"] == 1
    shown = (await sim_http.get(f"/_sim/tasks/{task_id}")).json()
    assert shown["status"] == "processing" and shown["input"]["prompt"] == "p"
    done = (await sim_http.post(f"/_sim/tasks/{task_id}/complete")).json()
    assert done["status"] == "completed"
    assert (await sim_http.post("/_sim/config", json={"balance": 7.5})).status_code == 200
    assert (await sim_http.get("/api/v3/balance")).json()["data"]["balance"] == 7.5
    refused = await sim_http.post("/_sim/config", json={"progression": "sideways"})
    assert refused.status_code == 400 and "progression" in refused.json()["error"]
    outcome = await sim_http.post("/_sim/next_outcome", json={"status": "failed", "code": 1200})
    assert outcome.status_code == 200 and len(simulator.engine.next_outcomes) == 1
    assert (await sim_http.post("/_sim/reset")).status_code == 200
    assert simulator.tasks == {} and not simulator.engine.next_outcomes
    assert (await sim_http.get("/_sim/stats")).json()["tasks"] == 0
    assert len(simulator.request_log) >= 1
