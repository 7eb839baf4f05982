"""NovitaClient: response mapping (httpx.MockTransport) and the real protocol (simulator)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from providers.base import TaskStatus
from providers.errors import (
    AuthenticationError,
    InsufficientCredit,
    InvalidRequest,
    NotFound,
    OutputExpired,
    ProviderConnectionError,
    ProviderServerError,
    RateLimited,
    RequestNotSent,
    UnexpectedResponse,
)
from providers.novita import NovitaClient, novita_webhook_task_id, parse_novita_task
from providers.simulator import Fault, Outcome, Simulator
from providers.wavespeed import WaveSpeedClient
from tests.fixtures_sim import SIM_API_KEY, WebhookReceiver
from tests.providers.helpers import Handler, Sleeps, scripted_client

KEY = "nv-key-DO-NOT-LOG-9876543210"
ENDPOINT = "/v3/async/wan-i2v"
TASK_ID = "3f1c2b9e-7a44-4d0e-9c1b-5d2f8e6a7b10"


def result(
    status: str = "TASK_STATUS_QUEUED", *, videos: list[Any] | None = None, **task: Any
) -> dict[str, Any]:
    return {
        "extra": {"seed": "158881667", "debug_info": {}},
        "task": {
            "task_id": TASK_ID,
            "task_type": "WAN_IMG_TO_VIDEO",
            "status": status,
            "reason": "",
            "eta": 0,
            "progress_percent": 0,
            **task,
        },
        "images": [],
        "videos": videos or [],
        "audios": [],
    }


def mock_client(handler: Handler, **kwargs: Any) -> tuple[NovitaClient, list[httpx.Request]]:
    return scripted_client(NovitaClient, KEY, "https://nv.test", handler, **kwargs)


# --- parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("TASK_STATUS_QUEUED", TaskStatus.QUEUED),
        ("TASK_STATUS_PROCESSING", TaskStatus.PROCESSING),
        ("TASK_STATUS_SUCCEED", TaskStatus.COMPLETED),
        ("TASK_STATUS_FAILED", TaskStatus.FAILED),
        ("TASK_STATUS_CANCELED", TaskStatus.UNKNOWN),
        ("", TaskStatus.UNKNOWN),
    ],
)
def test_status_mapping(raw: str, status: TaskStatus) -> None:
    task = parse_novita_task(result(raw))
    assert task.status is status
    assert task.raw_status == raw


@pytest.mark.parametrize("ttl", ["3600", 3600, 3600.0])
def test_succeeded_task_outputs_and_ttl_string_or_int(ttl: Any) -> None:
    task = parse_novita_task(
        result(
            "TASK_STATUS_SUCCEED",
            videos=[
                {
                    "video_url": "https://s3/v.mp4?X-Amz-Expires=3600",
                    "video_url_ttl": ttl,
                    "video_type": "mp4",
                }
            ],
            progress_percent="100",
            eta="0",
        )
    )
    assert task.status is TaskStatus.COMPLETED
    assert task.outputs == ["https://s3/v.mp4?X-Amz-Expires=3600"]
    assert task.output_ttl_s == 3600
    assert task.progress_percent == 100 and task.eta_s == 0


def test_failed_task_keeps_reason() -> None:
    task = parse_novita_task(result("TASK_STATUS_FAILED", reason="nsfw content detected"))
    assert task.status is TaskStatus.FAILED
    assert task.error == "nsfw content detected"
    assert task.error_code is None


def test_result_without_task_is_unexpected() -> None:
    with pytest.raises(UnexpectedResponse, match="task"):
        parse_novita_task({"videos": []})


# --- submit -------------------------------------------------------------------------------


async def test_submit_puts_webhook_in_extra_without_touching_callers_payload() -> None:
    client, seen = mock_client(lambda r: httpx.Response(200, json={"task_id": TASK_ID}))
    payload = {"prompt": "hi", "extra": {"webhook": {"test_mode": {"enabled": False}}}}
    original = json.loads(json.dumps(payload))
    async with client:
        task = await client.submit(ENDPOINT, payload, webhook_url="https://bot/hooks/nv/tok")
    assert task.task_id == TASK_ID and task.status is TaskStatus.QUEUED
    assert task.provider == "novita"
    sent = json.loads(seen[0].content)
    assert sent["extra"]["webhook"] == {
        "url": "https://bot/hooks/nv/tok",
        "test_mode": {"enabled": False},
    }
    assert payload == original
    assert seen[0].headers["authorization"] == f"Bearer {KEY}"
    assert seen[0].headers["content-type"] == "application/json"
    assert seen[0].url.path == ENDPOINT


@pytest.mark.parametrize("status", [500, 503, 504])
async def test_submit_5xx_not_retried(status: int) -> None:
    client, seen = mock_client(
        lambda r: httpx.Response(status, json={"reason": "SERVICE_NOT_AVAILABLE"})
    )
    async with client:
        with pytest.raises(ProviderServerError, match="may have been created"):
            await client.submit(ENDPOINT, {"prompt": "hi"})
    assert len(seen) == 1


async def test_submit_reply_without_task_id_says_task_may_exist() -> None:
    client, _ = mock_client(lambda r: httpx.Response(200, json={"id": "x"}))
    async with client:
        with pytest.raises(UnexpectedResponse, match="may have been created"):
            await client.submit(ENDPOINT, {"prompt": "hi"})


# --- error mapping ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason", "error"),
    [
        (403, "NOT_ENOUGH_BALANCE", InsufficientCredit),
        (403, "INVALID_API_KEY", AuthenticationError),
        (401, "FAILED_TO_AUTH", AuthenticationError),
        (400, "INVALID_REQUEST_BODY", InvalidRequest),
        (404, "MODEL_NOT_FOUND", NotFound),
        (429, "RATE_LIMIT_EXCEEDED", RateLimited),
        (503, "SERVICE_NOT_AVAILABLE", ProviderServerError),
    ],
)
async def test_error_mapping_carries_provider_message(
    status: int, reason: str, error: type
) -> None:
    body = {"code": status, "reason": reason, "message": "width must be 832", "metadata": {}}
    client, _ = mock_client(lambda r: httpx.Response(status, json=body), max_retries=0)
    async with client:
        with pytest.raises(error) as caught:
            await client.submit(ENDPOINT, {"prompt": "hi"})
    assert type(caught.value) is error
    assert reason in str(caught.value) and "width must be 832" in str(caught.value)


async def test_get_retries_429_with_retry_after_then_succeeds() -> None:
    replies = iter(
        [
            httpx.Response(429, headers={"Retry-After": "3"}),
            httpx.Response(503),
            httpx.Response(200, json=result("TASK_STATUS_PROCESSING", progress_percent=40)),
        ]
    )
    sleep = Sleeps()
    client, seen = mock_client(lambda r: next(replies), sleep=sleep)
    async with client:
        task = await client.get(TASK_ID)
    assert task.status is TaskStatus.PROCESSING and task.progress_percent == 40
    assert len(seen) == 3
    assert sleep.waits[0] == 3.0
    assert seen[0].url.params["task_id"] == TASK_ID
    assert seen[0].url.path == "/v3/async/task-result"


async def test_get_refuses_another_tasks_answer() -> None:
    client, _ = mock_client(lambda r: httpx.Response(200, json=result()))
    async with client:
        with pytest.raises(UnexpectedResponse, match="asked for"):
            await client.get("other")


# --- webhook ------------------------------------------------------------------------------


def test_webhook_task_id_from_task_result_event() -> None:
    body = json.dumps(
        {"event_type": "ASYNC_TASK_RESULT", "payload": result("TASK_STATUS_SUCCEED")}
    ).encode()
    assert novita_webhook_task_id(body) == TASK_ID


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        json.dumps({"event_type": "OTHER", "payload": result()}).encode(),
        json.dumps({"event_type": "ASYNC_TASK_RESULT", "payload": {}}).encode(),
        json.dumps(
            {"event_type": "ASYNC_TASK_RESULT", "payload": {"task": {"task_id": "../../admin"}}}
        ).encode(),
        json.dumps(
            {"event_type": "ASYNC_TASK_RESULT", "payload": {"task": {"task_id": 12}}}
        ).encode(),
    ],
)
def test_webhook_task_id_ignores_anything_else(body: bytes) -> None:
    assert novita_webhook_task_id(body) is None


async def test_repr_hides_key() -> None:
    async with NovitaClient(KEY) as client:
        assert KEY not in repr(client)
        assert "api.novita.ai" in repr(client)


# =========================================================================================
# Real HTTP against the simulator
# =========================================================================================


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def nv(simulator: Simulator, sleeps: Sleeps) -> AsyncIterator[NovitaClient]:
    async with NovitaClient(SIM_API_KEY, base_url=simulator.base_url, sleep=sleeps) as client:
        yield client


@pytest.fixture
async def image_url(simulator: Simulator, sample_png: bytes) -> str:
    """Novita has no upload; the simulator's WaveSpeed media store gives a fetchable URL."""
    async with WaveSpeedClient(SIM_API_KEY, base_url=simulator.base_url) as ws:
        return (await ws.upload(sample_png, filename="in.png", content_type="image/png")).url


def body(image_url: str, **extra: Any) -> dict[str, Any]:
    return {"image_url": image_url, "prompt": "a cat waves", "width": 832, "height": 480, **extra}


def count(sim: Simulator, method: str, prefix: str) -> int:
    return sum(1 for m, p, _ in sim.request_log if m == method and p.startswith(prefix))


async def test_sim_submit_poll_download(
    nv: NovitaClient, simulator: Simulator, image_url: str
) -> None:
    task = await nv.submit(ENDPOINT, body(image_url))
    assert task.status is TaskStatus.QUEUED
    first = await nv.get(task.task_id)
    assert first.status is TaskStatus.PROCESSING
    assert first.progress_percent is not None and 0 <= first.progress_percent < 100
    done = await nv.get(task.task_id)
    assert done.status is TaskStatus.COMPLETED
    assert done.output_ttl_s == 3600 and len(done.outputs) == 1
    assert done.progress_percent == 100
    clip = await nv.download(done.outputs[0], max_bytes=20_000_000)
    assert clip[4:8] == b"ftyp"
    assert count(simulator, "POST", ENDPOINT) == 1


async def test_sim_failed_task_is_returned(
    nv: NovitaClient, simulator: Simulator, image_url: str
) -> None:
    simulator.next_outcome(Outcome(status="failed", error="nsfw content detected"))
    task = await nv.submit(ENDPOINT, body(image_url))
    await nv.get(task.task_id)
    done = await nv.get(task.task_id)
    assert done.status is TaskStatus.FAILED
    assert done.error == "nsfw content detected" and done.outputs == []


async def test_sim_validation_error_message(nv: NovitaClient, image_url: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await nv.submit(ENDPOINT, body(image_url, width=100, height=100))
    assert "INVALID_REQUEST_BODY" in str(caught.value)
    assert caught.value.status_code == 400


async def test_sim_wrong_key(simulator: Simulator, sleeps: Sleeps, image_url: str) -> None:
    async with NovitaClient("nope", base_url=simulator.base_url, sleep=sleeps) as bad:
        with pytest.raises(AuthenticationError):
            await bad.submit(ENDPOINT, body(image_url))
        with pytest.raises(AuthenticationError):
            await bad.get(TASK_ID)
    assert sleeps.waits == []


async def test_sim_not_enough_balance(
    nv: NovitaClient, simulator: Simulator, image_url: str
) -> None:
    simulator.add_fault(
        Fault(
            method="POST",
            path_prefix=ENDPOINT,
            status=403,
            json={
                "code": 403,
                "reason": "NOT_ENOUGH_BALANCE",
                "message": "balance is not enough",
                "metadata": {},
            },
        )
    )
    with pytest.raises(InsufficientCredit, match="NOT_ENOUGH_BALANCE"):
        await nv.submit(ENDPOINT, body(image_url))


async def test_sim_429_then_success(
    nv: NovitaClient, simulator: Simulator, sleeps: Sleeps, image_url: str
) -> None:
    task = await nv.submit(ENDPOINT, body(image_url))
    simulator.add_fault(
        Fault(
            method="GET",
            path_prefix="/v3/async/task-result",
            times=1,
            status=429,
            headers={"Retry-After": "2"},
        )
    )
    simulator.add_fault(
        Fault(method="GET", path_prefix="/v3/async/task-result", times=1, status=504)
    )
    assert (await nv.get(task.task_id)).status is TaskStatus.PROCESSING
    assert sleeps.waits[0] == 2.0 and len(sleeps.waits) == 2
    assert count(simulator, "GET", "/v3/async/task-result") == 3


async def test_sim_submit_503_and_drop_not_retried(
    nv: NovitaClient, simulator: Simulator, image_url: str
) -> None:
    simulator.add_fault(Fault(method="POST", path_prefix=ENDPOINT, status=503))
    with pytest.raises(ProviderServerError, match="may have been created"):
        await nv.submit(ENDPOINT, body(image_url))
    simulator.add_fault(
        Fault(method="POST", path_prefix=ENDPOINT, drop_connection=True, after_handler=True)
    )
    with pytest.raises(ProviderConnectionError, match="may have been created") as caught:
        await nv.submit(ENDPOINT, body(image_url))
    assert not isinstance(caught.value, RequestNotSent)
    assert count(simulator, "POST", ENDPOINT) == 2  # one per call, never a retry
    assert len(simulator.tasks) == 1  # the dropped reply hid a task that exists


async def test_sim_unknown_task(nv: NovitaClient) -> None:
    with pytest.raises(NotFound):
        await nv.get("00000000-0000-0000-0000-000000000000")


async def test_sim_expired_output(nv: NovitaClient, simulator: Simulator, image_url: str) -> None:
    task = await nv.submit(ENDPOINT, body(image_url))
    await nv.get(task.task_id)
    done = await nv.get(task.task_id)
    simulator.expire_outputs()
    with pytest.raises(OutputExpired):
        await nv.download(done.outputs[0], max_bytes=20_000_000)


async def test_sim_webhook_gives_only_an_id_to_refetch(
    nv: NovitaClient, simulator: Simulator, image_url: str, webhook_receiver: WebhookReceiver
) -> None:
    hook = f"{webhook_receiver.url}/hooks/novita/unguessable-token"
    task = await nv.submit(ENDPOINT, body(image_url), webhook_url=hook)
    assert simulator.tasks[task.task_id].webhook_url == hook
    simulator.complete_now(task.task_id)
    (delivery,) = await webhook_receiver.wait_for(1)
    assert delivery.path == "/hooks/novita/unguessable-token"
    assert not any(h.lower().startswith("webhook-") for h in delivery.headers)  # unsigned
    task_id = novita_webhook_task_id(delivery.body)
    assert task_id == task.task_id
    refetched = await nv.get(task_id)
    assert refetched.status is TaskStatus.COMPLETED
