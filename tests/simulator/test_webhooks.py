"""Outgoing webhooks: WaveSpeed signed bare predictions, Novita events, retries and knobs."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from providers.base import TaskStatus
from providers.errors import WebhookVerificationError
from providers.simulator import Outcome, Simulator, SimulatorConfig
from providers.webhooks import verify_wavespeed_webhook
from tests.fixtures_sim import SIM_API_KEY, WebhookReceiver

SUBMIT = "/api/v3/wavespeed-ai/open-video/image-to-video"
BODY = {"image": "data:image/png;base64,iVBORw0KGgo=", "prompt": "p"}


async def submit_with_hook(client: httpx.AsyncClient, url: str, *, in_body: bool = False) -> str:
    if in_body:
        reply = await client.post(SUBMIT, json={**BODY, "webhook_url": url})
    else:
        reply = await client.post(SUBMIT, params={"webhook": url}, json=BODY)
    assert reply.status_code == 200, reply.text
    return reply.json()["data"]["id"]


async def test_completion_webhook_is_signed_bare_prediction(
    simulator: Simulator, sim_http: httpx.AsyncClient, webhook_receiver: WebhookReceiver
) -> None:
    task_id = await submit_with_hook(sim_http, f"{webhook_receiver.url}/hooks/ws?token=abc")
    simulator.complete_now(task_id)
    (hook,) = await webhook_receiver.wait_for(1)
    assert hook.path == "/hooks/ws?token=abc"  # the ?webhook= value arrived URL-decoded
    assert hook.headers["webhook-id"] == task_id
    assert hook.headers["webhook-signature"].startswith("v3,")
    assert hook.headers["Content-Type"] == "application/json"
    body = hook.json()
    assert "data" not in body and body["id"] == task_id  # no envelope
    assert body["status"] == "completed" and len(body["outputs"]) == 1
    assert body["urls"]["get"].endswith(f"/api/v3/predictions/{task_id}/result")
    task = verify_wavespeed_webhook(hook.headers, hook.body, simulator.webhook_secret)
    assert task.task_id == task_id and task.status == TaskStatus.COMPLETED


async def test_failure_webhook_from_body_webhook_url(
    simulator: Simulator, sim_http: httpx.AsyncClient, webhook_receiver: WebhookReceiver
) -> None:
    simulator.next_outcome(Outcome(status="failed", code=1200, error="flagged"))
    task_id = await submit_with_hook(sim_http, webhook_receiver.url + "/h", in_body=True)
    await sim_http.get(f"/api/v3/predictions/{task_id}/result")
    await sim_http.get(f"/api/v3/predictions/{task_id}/result")  # 2nd poll: terminal
    (hook,) = await webhook_receiver.wait_for(1)
    body = hook.json()
    assert body["status"] == "failed" and body["code"] == 1200 and body["error"] == "flagged"
    assert body["outputs"] == []
    verify_wavespeed_webhook(hook.headers, hook.body, simulator.webhook_secret)


async def test_retries_on_non_2xx_until_success(
    simulator: Simulator, sim_http: httpx.AsyncClient, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.statuses = [500, 503]
    task_id = await submit_with_hook(sim_http, webhook_receiver.url)
    simulator.complete_now(task_id)
    await simulator.drain_webhooks()
    assert len(webhook_receiver.received) == 3
    assert [d.status for d in simulator.webhook_deliveries] == [500, 503, 200]
    assert [d.attempt for d in simulator.webhook_deliveries] == [1, 2, 3]
    bodies = {h.body for h in webhook_receiver.received}
    assert len(bodies) == 1  # the same bytes each time, re-signed per attempt
    for hook in webhook_receiver.received:
        verify_wavespeed_webhook(hook.headers, hook.body, simulator.webhook_secret)


async def test_gives_up_after_configured_retries(
    simulator: Simulator, sim_http: httpx.AsyncClient, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.statuses = [500] * 10
    task_id = await submit_with_hook(sim_http, webhook_receiver.url)
    simulator.complete_now(task_id)
    await simulator.drain_webhooks()
    assert len(webhook_receiver.received) == 1 + simulator.config.webhook_retries == 4
    assert simulator.sender.gave_up == 1


async def test_no_webhook_again_when_forcing_a_terminal_task(
    simulator: Simulator, sim_http: httpx.AsyncClient, webhook_receiver: WebhookReceiver
) -> None:
    task_id = await submit_with_hook(sim_http, webhook_receiver.url)
    simulator.complete_now(task_id)
    simulator.force(task_id, Outcome(status="deleted"))
    await simulator.drain_webhooks()
    assert len(webhook_receiver.received) == 1
    assert simulator.tasks[task_id].status == "deleted"


@pytest.mark.parametrize("knob", ["webhook_stale_timestamp", "webhook_bad_signature"])
async def test_untrustworthy_delivery_knobs(
    simulator: Simulator,
    sim_http: httpx.AsyncClient,
    webhook_receiver: WebhookReceiver,
    knob: str,
) -> None:
    setattr(simulator.config, knob, True)
    task_id = await submit_with_hook(sim_http, webhook_receiver.url)
    simulator.complete_now(task_id)
    (hook,) = await webhook_receiver.wait_for(1)
    with pytest.raises(WebhookVerificationError):
        verify_wavespeed_webhook(hook.headers, hook.body, simulator.webhook_secret)


async def test_duplicate_delivery_knob(
    simulator: Simulator, sim_http: httpx.AsyncClient, webhook_receiver: WebhookReceiver
) -> None:
    simulator.config.webhook_duplicate = True
    task_id = await submit_with_hook(sim_http, webhook_receiver.url)
    simulator.complete_now(task_id)
    await simulator.drain_webhooks()
    first, second = webhook_receiver.received
    assert first.body == second.body and first.headers["webhook-id"] == task_id


@pytest.mark.parametrize("sim_config", [SimulatorConfig(
    api_keys=frozenset({SIM_API_KEY}), progression="time", render_s=(30.0, 30.0),
    clip_mode="static", webhook_backoff_s=0.0)])
async def test_time_progression_fires_webhook_without_any_poll(
    simulator: Simulator, sim_http: httpx.AsyncClient, webhook_receiver: WebhookReceiver
) -> None:
    task_id = await submit_with_hook(sim_http, webhook_receiver.url)
    await simulator.settle_fetch(simulator.tasks[task_id])
    assert simulator.tasks[task_id].status == "processing"
    simulator.advance_clock(30)
    (hook,) = await webhook_receiver.wait_for(1)
    assert hook.json()["status"] == "completed"
    assert simulator.tasks[task_id].polls == 0


async def submit_novita(client: httpx.AsyncClient, webhook: dict) -> str:
    reply = await client.post("/v3/async/wan-i2v", json={
        "image_url": BODY["image"], "prompt": "p", "extra": {"webhook": webhook}})
    assert reply.status_code == 200, reply.text
    return reply.json()["task_id"]


async def test_novita_event_is_unsigned_task_result(
    simulator: Simulator, sim_http: httpx.AsyncClient, webhook_receiver: WebhookReceiver
) -> None:
    task_id = await submit_novita(sim_http, {"url": webhook_receiver.url + "/nv/tok123"})
    simulator.complete_now(task_id)
    (hook,) = await webhook_receiver.wait_for(1)
    assert hook.path == "/nv/tok123"
    assert not any(k.lower().startswith("webhook-") for k in hook.headers)
    event = hook.json()
    assert event["event_type"] == "ASYNC_TASK_RESULT"
    payload = event["payload"]
    assert payload["task"]["task_id"] == task_id
    assert payload["task"]["status"] == "TASK_STATUS_SUCCEED"
    assert payload["videos"][0]["video_url_ttl"] == "3600"
    polled = await sim_http.get("/v3/async/task-result", params={"task_id": task_id})
    assert polled.json()["task"] == payload["task"]


async def test_novita_retries_up_to_five_times(
    simulator: Simulator, sim_http: httpx.AsyncClient, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.statuses = [502] * 10
    task_id = await submit_novita(sim_http, {"url": webhook_receiver.url})
    simulator.complete_now(task_id)
    await simulator.drain_webhooks()
    assert len(webhook_receiver.received) == 6  # the first try and 5 retries
    assert simulator.sender.gave_up == 1


async def test_novita_retries_after_a_receiver_timeout(
    simulator: Simulator, sim_http: httpx.AsyncClient, webhook_receiver: WebhookReceiver
) -> None:
    # long enough to connect on a busy machine (a connect timeout is not the case here)
    simulator.config.webhook_timeout_s = 1.0
    release = asyncio.Event()
    webhook_receiver.hold = release  # the first delivery never gets an answer in time
    task_id = await submit_novita(sim_http, {"url": webhook_receiver.url})
    simulator.complete_now(task_id)
    hooks = await webhook_receiver.wait_for(2)
    release.set()
    await simulator.drain_webhooks()
    assert hooks[0].body == hooks[1].body
    first, second = list(simulator.webhook_deliveries)[:2]
    assert first.status is None and first.error == "ReadTimeout"
    assert second.status == 200


async def test_novita_test_mode_sends_a_mock_event_without_a_task(
    simulator: Simulator, sim_http: httpx.AsyncClient, webhook_receiver: WebhookReceiver
) -> None:
    task_id = await submit_novita(sim_http, {
        "url": webhook_receiver.url,
        "test_mode": {"enabled": True, "return_task_status": "TASK_STATUS_FAILED"},
    })
    (hook,) = await webhook_receiver.wait_for(1)
    payload = json.loads(hook.body)["payload"]
    assert payload["task"]["task_id"] == task_id
    assert payload["task"]["status"] == "TASK_STATUS_FAILED" and payload["task"]["reason"]
    assert simulator.tasks == {}
