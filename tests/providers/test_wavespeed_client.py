"""WaveSpeedClient: response mapping (httpx.MockTransport) and the real protocol (simulator)."""

from __future__ import annotations

import asyncio
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
    ProviderAPIError,
    ProviderConnectionError,
    ProviderServerError,
    ProviderTimeout,
    RateLimited,
    RequestNotSent,
    UnexpectedResponse,
    WebhookVerificationError,
)
from providers.simulator import Fault, Outcome, Simulator
from providers.wavespeed import WaveSpeedClient, parse_wavespeed_task
from providers.webhooks import verify_wavespeed_webhook
from tests.fixtures_sim import SIM_API_KEY, WebhookReceiver
from tests.providers.helpers import Handler, Sleeps, scripted_client

KEY = "ws-key-DO-NOT-LOG-0123456789"
ENDPOINT = "/api/v3/openai/sora-2/image-to-video"
TASK_ID = "0123456789abcdef0123456789abcdef"


def envelope(data: Any, code: int = 200, message: str = "success") -> dict[str, Any]:
    return {"code": code, "message": message, "data": data}


def prediction(status: str = "created", **extra: Any) -> dict[str, Any]:
    body = {
        "id": TASK_ID,
        "model": "openai/sora-2/image-to-video",
        "outputs": [],
        "urls": {"get": f"https://x/api/v3/predictions/{TASK_ID}/result"},
        "has_nsfw_contents": [],
        "status": status,
        "created_at": "2025-09-25T09:12:48.239112031Z",
        "error": "",
        "timings": {"inference": 0},
    }
    body.update(extra)
    return body


def mock_client(handler: Handler, **kwargs: Any) -> tuple[WaveSpeedClient, list[httpx.Request]]:
    return scripted_client(WaveSpeedClient, KEY, "https://ws.test", handler, **kwargs)


# --- parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("created", TaskStatus.QUEUED),
        ("processing", TaskStatus.PROCESSING),
        ("completed", TaskStatus.COMPLETED),
        ("failed", TaskStatus.FAILED),
        ("cancelled", TaskStatus.CANCELLED),
        ("timeout", TaskStatus.TIMEOUT),
        ("deleted", TaskStatus.DELETED),
        ("paused", TaskStatus.UNKNOWN),
        ("", TaskStatus.UNKNOWN),
    ],
)
def test_status_mapping(raw: str, status: TaskStatus) -> None:
    task = parse_wavespeed_task(prediction(raw))
    assert task.status is status
    assert task.raw_status == raw
    if status is TaskStatus.UNKNOWN:
        assert not task.status.terminal


def test_completed_task_keeps_outputs_flags_and_timing() -> None:
    task = parse_wavespeed_task(
        prediction(
            "completed",
            outputs=["https://cdn/a.mp4", {"url": "https://cdn/b.mp4"}, {"nope": 1}, 7],
            has_nsfw_contents=[False, True],
            timings={"inference": 4321.7},
            code=0,
        )
    )
    assert task.outputs == ["https://cdn/a.mp4", "https://cdn/b.mp4"]
    assert task.nsfw == [False, True]
    assert task.inference_ms == 4321
    assert task.error_code is None


def test_failed_task_keeps_code_and_text_and_moderation_is_distinguishable() -> None:
    moderated = parse_wavespeed_task(prediction("failed", code=1200, error="flagged"))
    internal = parse_wavespeed_task(prediction("failed", code=5000, error="internal"))
    assert moderated.status is internal.status is TaskStatus.FAILED
    assert moderated.moderated and not internal.moderated
    assert (moderated.error_code, moderated.error) == (1200, "flagged")
    assert internal.error_code == 5000


def test_parse_accepts_whole_envelope_and_execution_time() -> None:
    body = prediction("completed", executionTime=999)
    del body["timings"]
    task = parse_wavespeed_task(envelope(body))
    assert task.task_id == TASK_ID
    assert task.inference_ms == 999


def test_parse_without_id_is_unexpected() -> None:
    with pytest.raises(UnexpectedResponse, match="task id"):
        parse_wavespeed_task({"status": "completed"})


# --- submit -------------------------------------------------------------------------------


async def test_submit_sends_key_json_and_encoded_webhook() -> None:
    client, seen = mock_client(lambda r: httpx.Response(200, json=envelope(prediction())))
    hook = "https://bot.example/hooks/ws?token=a&b=c d"
    async with client:
        task = await client.submit(ENDPOINT, {"prompt": "hi", "duration": 4}, webhook_url=hook)
    assert task.status is TaskStatus.QUEUED and task.task_id == TASK_ID
    request = seen[0]
    assert request.method == "POST"
    assert request.url.path == ENDPOINT
    assert request.url.params["webhook"] == hook
    assert "token%3Da%26b%3Dc" in str(request.url)  # encoded, not spliced into our query
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {"prompt": "hi", "duration": 4}


async def test_submit_without_webhook_has_no_query() -> None:
    client, seen = mock_client(lambda r: httpx.Response(200, json=envelope(prediction())))
    async with client:
        await client.submit(ENDPOINT, {"prompt": "hi"})
    assert seen[0].url.query == b""


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_submit_5xx_is_not_retried_and_says_task_may_exist(status: int) -> None:
    client, seen = mock_client(lambda r: httpx.Response(status, text="gateway"))
    async with client:
        with pytest.raises(ProviderServerError, match="may have been created"):
            await client.submit(ENDPOINT, {"prompt": "hi"})
    assert len(seen) == 1


async def test_submit_429_is_not_retried() -> None:
    client, seen = mock_client(
        lambda r: httpx.Response(429, headers={"Retry-After": "2"}, json={"message": "slow"})
    )
    async with client:
        with pytest.raises(RateLimited) as caught:
            await client.submit(ENDPOINT, {"prompt": "hi"})
    assert caught.value.retry_after == 2.0
    assert len(seen) == 1


@pytest.mark.parametrize("status", [201, 202])
async def test_submit_only_http_200_counts(status: int) -> None:
    client, _ = mock_client(lambda r: httpx.Response(status, json=envelope(prediction())))
    async with client:
        with pytest.raises(UnexpectedResponse, match="may have been created"):
            await client.submit(ENDPOINT, {"prompt": "hi"})


@pytest.mark.parametrize(
    "reply",
    [envelope({"status": "created"}), envelope(None), {"code": 200}, "not json"],
)
async def test_submit_200_without_task_id_says_task_may_exist(reply: Any) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(reply, str):
            return httpx.Response(200, text=reply)
        return httpx.Response(200, json=reply)

    client, _ = mock_client(handler)
    async with client:
        with pytest.raises(UnexpectedResponse) as caught:
            await client.submit(ENDPOINT, {"prompt": "hi"})
    if not isinstance(reply, str):
        assert "may have been created" in str(caught.value)


async def test_submit_refuses_bad_endpoint_and_base64_with_webhook_before_sending() -> None:
    client, seen = mock_client(lambda r: httpx.Response(200, json=envelope(prediction())))
    async with client:
        for endpoint in ("api/v3/x", "https://evil.example/api/v3/x", "//evil.example/x"):
            with pytest.raises(ValueError, match="endpoint"):
                await client.submit(endpoint, {})
        with pytest.raises(InvalidRequest, match="base64"):
            await client.submit(
                ENDPOINT, {"enable_base64_output": True}, webhook_url="https://bot/hook"
            )
        with pytest.raises(ValueError, match="webhook_url"):
            await client.submit(ENDPOINT, {}, webhook_url="ftp://bot/hook")
    assert seen == []


async def test_sync_mode_5004_processing_is_a_live_task_not_an_error() -> None:
    data = prediction(
        "processing",
        code=5004,
        error="Sync mode timed out after 90 seconds. The prediction is still processing.",
    )
    client, _ = mock_client(lambda r: httpx.Response(200, json=envelope(data)))
    async with client:
        task = await client.submit(ENDPOINT, {"prompt": "hi", "enable_sync_mode": True})
    assert task.status is TaskStatus.PROCESSING
    assert not task.status.terminal
    assert task.error_code == 5004


async def test_sync_mode_submit_waits_longer_than_a_read() -> None:
    client, seen = mock_client(lambda r: httpx.Response(200, json=envelope(prediction())))
    async with client:
        await client.submit(ENDPOINT, {"prompt": "hi"})
        await client.submit(ENDPOINT, {"prompt": "hi", "enable_sync_mode": True})
    normal, sync = (request.extensions["timeout"]["read"] for request in seen)
    assert sync >= 120 > normal


# --- error mapping ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (401, {"code": 401, "message": "Unauthorized"}, AuthenticationError),
        (403, {"code": 403, "message": "role viewer may not"}, AuthenticationError),
        (400, {"error": "webhook callback does not support base64 output"}, InvalidRequest),
        (422, {"message": "duration must be one of 4, 8"}, InvalidRequest),
        (404, {"code": 404, "message": "prediction not found"}, NotFound),
        (402, {"message": "pay up"}, InsufficientCredit),
        (400, {"message": "Insufficient balance, please top up"}, InsufficientCredit),
        (500, {"message": "oops"}, ProviderServerError),
        (418, {"message": "teapot"}, ProviderAPIError),
    ],
)
async def test_http_status_mapping(status: int, body: dict[str, Any], error: type) -> None:
    client, seen = mock_client(lambda r: httpx.Response(status, json=body))
    async with client:
        with pytest.raises(error) as caught:
            await client.get(TASK_ID)
    assert type(caught.value) is error
    assert caught.value.status_code == status
    # The provider's own words reach the operator.
    assert next(iter(v for v in body.values() if isinstance(v, str))) in str(caught.value)
    assert len(seen) == (4 if error is ProviderServerError else 1)


async def test_envelope_code_in_http_200_is_an_error() -> None:
    client, _ = mock_client(
        lambda r: httpx.Response(200, json={"code": 401, "message": "key inactive", "data": None})
    )
    async with client:
        with pytest.raises(AuthenticationError, match="envelope code 401"):
            await client.get(TASK_ID)


async def test_retry_after_http_date_is_parsed() -> None:
    client, _ = mock_client(
        lambda r: httpx.Response(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),
        max_retries=0,
    )
    async with client:
        with pytest.raises(RateLimited) as caught:
            await client.get(TASK_ID)
    assert caught.value.retry_after == 0.0  # a date in the past means "now"


# --- get ----------------------------------------------------------------------------------


async def test_get_uses_result_path_and_quotes_the_id() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=envelope(prediction("processing", id="a/b")))

    client, seen = mock_client(handler)
    async with client:
        task = await client.get("a/b")
    assert task.task_id == "a/b"
    assert seen[0].url.raw_path == b"/api/v3/predictions/a%2Fb/result"
    assert "content-type" not in seen[0].headers


async def test_get_refuses_another_tasks_answer() -> None:
    client, _ = mock_client(lambda r: httpx.Response(200, json=envelope(prediction())))
    async with client:
        with pytest.raises(UnexpectedResponse, match="asked for"):
            await client.get("f" * 32)
        with pytest.raises(ValueError, match="task id"):
            await client.get("")


async def test_get_with_null_data_is_unexpected() -> None:
    client, _ = mock_client(lambda r: httpx.Response(200, json=envelope(None)))
    async with client:
        with pytest.raises(UnexpectedResponse, match="data"):
            await client.get(TASK_ID)


# --- account ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("balance", "micros"),
    [
        (12.345678, 12_345_678),
        (0.1, 100_000),
        (0.30000000000000004, 300_000),
        (5, 5_000_000),
        ("7.25", 7_250_000),
        (1.0000009, 1_000_000),
    ],
)
async def test_balance_in_micros_exactly(balance: Any, micros: int) -> None:
    client, _ = mock_client(lambda r: httpx.Response(200, json=envelope({"balance": balance})))
    async with client:
        assert await client.balance_micros() == micros


async def test_balance_without_number_is_unexpected() -> None:
    client, _ = mock_client(lambda r: httpx.Response(200, json=envelope({"balance": None})))
    async with client:
        with pytest.raises(UnexpectedResponse, match="balance"):
            await client.balance_micros()


@pytest.mark.parametrize(
    "reply",
    [envelope({"secret": "whsec_abc"}), {"code": 200, "secret": "whsec_abc", "data": {}}],
)
async def test_webhook_secret_from_data_or_top_level(reply: dict[str, Any]) -> None:
    client, seen = mock_client(lambda r: httpx.Response(200, json=reply))
    async with client:
        assert await client.webhook_secret() == "whsec_abc"
    assert seen[0].url.path == "/api/v3/webhook/secret"


# --- upload -------------------------------------------------------------------------------


def ticket(method: str = "PUT", **upload: Any) -> dict[str, Any]:
    return envelope(
        {
            "type": "image",
            "download_url": "https://cdn.test/media/cat.png",
            "filename": "cat.png",
            "size": 3,
            "upload": {
                "method": method,
                "url": "https://s3.test/put/cat.png?sig=1",
                "headers": {"Content-Type": "image/png", "x-amz-acl": "private"},
                **upload,
            },
        }
    )


async def test_upload_ticket_then_put_without_our_key() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(200, json=ticket())
        return httpx.Response(200)

    client, seen = mock_client(handler)
    async with client:
        media = await client.upload(b"png", filename="cat.png", content_type="image/png")
    assert media.url == "https://cdn.test/media/cat.png"
    post, put = seen
    assert json.loads(post.content) == {
        "filename": "cat.png",
        "size": 3,
        "content_type": "image/png",
    }
    assert post.headers["authorization"] == f"Bearer {KEY}"
    assert put.method == "PUT" and put.url.host == "s3.test"
    assert "authorization" not in put.headers
    assert put.headers["x-amz-acl"] == "private"
    assert put.content == b"png"


async def test_upload_envelope_error_in_http_200() -> None:
    client, seen = mock_client(
        lambda r: httpx.Response(
            200, json={"code": 500, "message": "Upload failed: invalid file type"}
        )
    )
    async with client:
        with pytest.raises(ProviderServerError, match="invalid file type"):
            await client.upload(b"x", filename="a.exe", content_type="application/x")
    assert len(seen) == 1  # the ticket POST is not retried


async def test_upload_ticket_with_other_method_is_refused() -> None:
    client, seen = mock_client(lambda r: httpx.Response(200, json=ticket(method="POST")))
    async with client:
        with pytest.raises(UnexpectedResponse, match="PUT"):
            await client.upload(b"x", filename="a.png", content_type="image/png")
    assert len(seen) == 1


async def test_upload_put_5xx_is_retried() -> None:
    puts = iter([503, 200])

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(200, json=ticket())
        return httpx.Response(next(puts))

    client, seen = mock_client(handler)
    async with client:
        await client.upload(b"png", filename="cat.png", content_type="image/png")
    assert [r.method for r in seen] == ["POST", "PUT", "PUT"]


async def test_upload_refuses_empty_file() -> None:
    client, seen = mock_client(lambda r: httpx.Response(200))
    async with client:
        with pytest.raises(ValueError, match="empty"):
            await client.upload(b"", filename="a.png", content_type="image/png")
    assert seen == []


# --- lifecycle ----------------------------------------------------------------------------


async def test_injected_http_client_is_not_closed_owned_one_is() -> None:
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(200)))
    async with WaveSpeedClient(KEY, http=http):
        pass
    assert not http.is_closed
    await http.aclose()
    owned = WaveSpeedClient(KEY)
    await owned.aclose()
    assert owned._http.is_closed


def test_constructor_refuses_empty_key_and_bad_base_url() -> None:
    with pytest.raises(ValueError, match="API key"):
        WaveSpeedClient("")
    with pytest.raises(ValueError, match="base_url"):
        WaveSpeedClient(KEY, base_url="api.wavespeed.ai")


# =========================================================================================
# Real HTTP against the simulator (providers.simulator, fixtures in tests/fixtures_sim.py)
# =========================================================================================

SORA = "/api/v3/openai/sora-2/image-to-video"


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def ws(simulator: Simulator, sleeps: Sleeps) -> AsyncIterator[WaveSpeedClient]:
    async with WaveSpeedClient(SIM_API_KEY, base_url=simulator.base_url, sleep=sleeps) as client:
        yield client


@pytest.fixture
async def image_url(ws: WaveSpeedClient, sample_png: bytes) -> str:
    return (await ws.upload(sample_png, filename="input.png", content_type="image/png")).url


def posts_to(sim: Simulator, path: str) -> int:
    return sum(1 for method, p, _ in sim.request_log if method == "POST" and p == path)


def gets_of(sim: Simulator, prefix: str) -> int:
    return sum(1 for method, p, _ in sim.request_log if method == "GET" and p.startswith(prefix))


async def poll_to_terminal(client: WaveSpeedClient, task_id: str, limit: int = 10) -> list[Any]:
    seen = []
    for _ in range(limit):
        task = await client.get(task_id)
        seen.append(task)
        if task.status.terminal:
            return seen
    raise AssertionError(f"task never finished: {[t.raw_status for t in seen]}")


async def test_sim_submit_poll_download(
    ws: WaveSpeedClient, simulator: Simulator, image_url: str
) -> None:
    task = await ws.submit(SORA, {"image": image_url, "prompt": "a cat waves", "duration": 4})
    assert task.status is TaskStatus.QUEUED and task.raw_status == "created"
    assert len(task.task_id) == 32
    history = await poll_to_terminal(ws, task.task_id)
    assert [t.status for t in history] == [TaskStatus.PROCESSING, TaskStatus.COMPLETED]
    done = history[-1]
    assert len(done.outputs) == 1 and done.nsfw == [False]
    assert done.inference_ms is not None and done.inference_ms > 0
    clip = await ws.download(done.outputs[0], max_bytes=20_000_000)
    assert clip[4:8] == b"ftyp"  # an MP4
    assert posts_to(simulator, SORA) == 1


@pytest.mark.parametrize(("code", "moderated"), [(1200, True), (5000, False), (1402, False)])
async def test_sim_failed_task_is_returned_with_code(
    ws: WaveSpeedClient, simulator: Simulator, image_url: str, code: int, moderated: bool
) -> None:
    simulator.next_outcome(Outcome(status="failed", code=code, error=f"reason {code}"))
    task = await ws.submit(SORA, {"image": image_url, "prompt": "x", "duration": 4})
    done = (await poll_to_terminal(ws, task.task_id))[-1]
    assert done.status is TaskStatus.FAILED
    assert done.error_code == code and done.error == f"reason {code}"
    assert done.moderated is moderated
    assert done.outputs == []


@pytest.mark.parametrize("fate", ["cancelled", "timeout", "deleted"])
async def test_sim_other_terminal_states(
    ws: WaveSpeedClient, simulator: Simulator, image_url: str, fate: str
) -> None:
    task = await ws.submit(SORA, {"image": image_url, "prompt": "x", "duration": 4})
    simulator.force(task.task_id, Outcome(status=fate))  # type: ignore[arg-type]
    got = await ws.get(task.task_id)
    assert got.status.value == fate and got.status.terminal


async def test_sim_429_with_retry_after_then_success(
    ws: WaveSpeedClient, simulator: Simulator, sleeps: Sleeps, image_url: str
) -> None:
    task = await ws.submit(SORA, {"image": image_url, "prompt": "x", "duration": 4})
    simulator.add_fault(
        Fault(
            method="GET",
            path_prefix="/api/v3/predictions",
            times=2,
            status=429,
            headers={"Retry-After": "1"},
        )
    )
    got = await ws.get(task.task_id)
    assert got.status is TaskStatus.PROCESSING
    assert sleeps.waits == [1.0, 1.0]
    assert gets_of(simulator, "/api/v3/predictions") == 3


async def test_sim_429_without_retry_after_uses_backoff(
    ws: WaveSpeedClient, simulator: Simulator, sleeps: Sleeps, image_url: str
) -> None:
    task = await ws.submit(SORA, {"image": image_url, "prompt": "x", "duration": 4})
    simulator.add_fault(Fault(method="GET", path_prefix="/api/v3/predictions", times=2, status=429))
    await ws.get(task.task_id)
    assert len(sleeps.waits) == 2
    assert 0.375 <= sleeps.waits[0] <= 0.5 and 0.75 <= sleeps.waits[1] <= 1.0


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_sim_5xx_then_success(
    ws: WaveSpeedClient, simulator: Simulator, sleeps: Sleeps, image_url: str, status: int
) -> None:
    task = await ws.submit(SORA, {"image": image_url, "prompt": "x", "duration": 4})
    simulator.add_fault(
        Fault(method="GET", path_prefix="/api/v3/predictions", times=1, status=status)
    )
    assert (await ws.get(task.task_id)).status is TaskStatus.PROCESSING
    assert len(sleeps.waits) == 1


async def test_sim_retries_exhausted(simulator: Simulator, sleeps: Sleeps, image_url: str) -> None:
    async with WaveSpeedClient(
        SIM_API_KEY, base_url=simulator.base_url, sleep=sleeps, max_retries=2
    ) as client:
        task = await client.submit(SORA, {"image": image_url, "prompt": "x", "duration": 4})
        simulator.add_fault(
            Fault(method="GET", path_prefix="/api/v3/predictions", times=50, status=503)
        )
        with pytest.raises(ProviderServerError) as caught:
            await client.get(task.task_id)
    assert caught.value.status_code == 503
    assert gets_of(simulator, "/api/v3/predictions") == 3
    assert len(sleeps.waits) == 2


async def test_sim_dropped_connection_on_get_is_retried(
    ws: WaveSpeedClient, simulator: Simulator, image_url: str
) -> None:
    task = await ws.submit(SORA, {"image": image_url, "prompt": "x", "duration": 4})
    simulator.add_fault(
        Fault(method="GET", path_prefix="/api/v3/predictions", drop_connection=True)
    )
    assert (await ws.get(task.task_id)).task_id == task.task_id


@pytest.mark.parametrize("after_handler", [False, True])
async def test_sim_dropped_connection_on_submit_is_never_retried(
    ws: WaveSpeedClient, simulator: Simulator, image_url: str, after_handler: bool
) -> None:
    simulator.add_fault(
        Fault(method="POST", path_prefix=SORA, drop_connection=True, after_handler=after_handler)
    )
    with pytest.raises(ProviderConnectionError, match="may have been created") as caught:
        await ws.submit(SORA, {"image": image_url, "prompt": "x", "duration": 4})
    assert not isinstance(caught.value, RequestNotSent)
    assert posts_to(simulator, SORA) == 1
    # With after_handler the task really exists: exactly the case that must not be resubmitted.
    assert len(simulator.tasks) == (1 if after_handler else 0)


async def test_sim_submit_429_is_not_retried(
    ws: WaveSpeedClient, simulator: Simulator, image_url: str
) -> None:
    simulator.add_fault(
        Fault(method="POST", path_prefix=SORA, status=429, headers={"Retry-After": "5"})
    )
    with pytest.raises(RateLimited) as caught:
        await ws.submit(SORA, {"image": image_url, "prompt": "x", "duration": 4})
    assert caught.value.retry_after == 5.0
    assert posts_to(simulator, SORA) == 1


async def test_sim_sync_mode_5004_is_processing(
    ws: WaveSpeedClient, simulator: Simulator, image_url: str
) -> None:
    simulator.config.sync_wait_s = 0.0
    task = await ws.submit(
        SORA, {"image": image_url, "prompt": "x", "duration": 4, "enable_sync_mode": True}
    )
    assert task.status is TaskStatus.PROCESSING and task.error_code == 5004


async def test_sim_validation_error_carries_provider_message(ws: WaveSpeedClient) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await ws.submit(SORA, {"image": "http://x/i.png", "prompt": "x", "duration": 7})
    assert caught.value.status_code == 400
    assert "duration" in str(caught.value)


async def test_sim_unknown_status_is_unknown(ws: WaveSpeedClient, simulator: Simulator) -> None:
    simulator.add_fault(
        Fault(
            method="GET",
            path_prefix="/api/v3/predictions",
            status=200,
            json=envelope(prediction("paused")),
        )
    )
    task = await ws.get(TASK_ID)
    assert task.status is TaskStatus.UNKNOWN and task.raw_status == "paused"
    assert not task.status.terminal


async def test_sim_unknown_task_is_not_found(ws: WaveSpeedClient, simulator: Simulator) -> None:
    with pytest.raises(NotFound):
        await ws.get("f" * 32)
    assert gets_of(simulator, "/api/v3/predictions") == 1


async def test_sim_wrong_key_is_authentication_error(simulator: Simulator, sleeps: Sleeps) -> None:
    async with WaveSpeedClient("wrong-key", base_url=simulator.base_url, sleep=sleeps) as bad:
        with pytest.raises(AuthenticationError) as caught:
            await bad.submit(SORA, {"image": "http://x/i.png", "prompt": "x", "duration": 4})
        assert caught.value.status_code == 401
        with pytest.raises(AuthenticationError):
            await bad.get(TASK_ID)
        with pytest.raises(AuthenticationError):
            await bad.balance_micros()
    assert sleeps.waits == []  # 401 is never retried
    assert simulator.tasks == {}


async def test_sim_expired_output(
    ws: WaveSpeedClient, simulator: Simulator, image_url: str
) -> None:
    task = await ws.submit(SORA, {"image": image_url, "prompt": "x", "duration": 4})
    done = (await poll_to_terminal(ws, task.task_id))[-1]
    simulator.expire_outputs()
    with pytest.raises(OutputExpired) as caught:
        await ws.download(done.outputs[0], max_bytes=20_000_000)
    assert caught.value.status_code in (403, 404)
    assert gets_of(simulator, "/_sim/outputs") == 1


async def test_sim_upload_ticket_flow_end_to_end(
    ws: WaveSpeedClient, simulator: Simulator, sample_png: bytes
) -> None:
    media = await ws.upload(sample_png, filename="cat.png", content_type="image/png")
    assert media.filename == "cat.png" and media.size == len(sample_png)
    async with httpx.AsyncClient(trust_env=False) as plain:  # no key: download_url is public
        served = await plain.get(media.url)
    assert served.status_code == 200 and served.content == sample_png
    puts = [(m, p) for m, p, _ in simulator.request_log if m == "PUT"]
    assert len(puts) == 1


async def test_sim_upload_refused_type_and_size(ws: WaveSpeedClient, simulator: Simulator) -> None:
    with pytest.raises(ProviderAPIError, match="invalid file type"):
        await ws.upload(b"MZ...", filename="tool.exe", content_type="application/octet-stream")
    simulator.config.upload_max_bytes = 10
    with pytest.raises(InvalidRequest, match="too large") as caught:
        await ws.upload(b"x" * 11, filename="big.png", content_type="image/png")
    assert caught.value.status_code == 413
    assert not any(m == "PUT" for m, _, _ in simulator.request_log)


async def test_sim_balance_and_secret(ws: WaveSpeedClient, simulator: Simulator) -> None:
    simulator.config.balance = 12.345678
    assert await ws.balance_micros() == 12_345_678
    assert await ws.webhook_secret() == simulator.webhook_secret


async def test_sim_signed_webhook_verifies(
    ws: WaveSpeedClient, simulator: Simulator, image_url: str, webhook_receiver: WebhookReceiver
) -> None:
    hook = f"{webhook_receiver.url}/hooks/wavespeed?token=t0k"
    task = await ws.submit(
        SORA, {"image": image_url, "prompt": "x", "duration": 4}, webhook_url=hook
    )
    polled = (await poll_to_terminal(ws, task.task_id))[-1]
    (delivery,) = await webhook_receiver.wait_for(1)
    assert delivery.path == "/hooks/wavespeed?token=t0k"
    secret = await ws.webhook_secret()
    hooked = verify_wavespeed_webhook(delivery.headers, delivery.body, secret)
    assert hooked.task_id == task.task_id
    assert hooked.status is TaskStatus.COMPLETED
    assert hooked.outputs == polled.outputs
    with pytest.raises(WebhookVerificationError, match="signature"):
        verify_wavespeed_webhook(delivery.headers, delivery.body + b" ", secret)


@pytest.mark.parametrize(
    ("knob", "match"),
    [("webhook_bad_signature", "signature"), ("webhook_stale_timestamp", "300 s")],
)
async def test_sim_bad_or_stale_webhook_is_rejected(
    ws: WaveSpeedClient,
    simulator: Simulator,
    image_url: str,
    webhook_receiver: WebhookReceiver,
    knob: str,
    match: str,
) -> None:
    setattr(simulator.config, knob, True)
    task = await ws.submit(
        SORA,
        {"image": image_url, "prompt": "x", "duration": 4},
        webhook_url=f"{webhook_receiver.url}/hooks/ws",
    )
    simulator.complete_now(task.task_id)
    (delivery,) = await webhook_receiver.wait_for(1)
    with pytest.raises(WebhookVerificationError, match=match):
        verify_wavespeed_webhook(delivery.headers, delivery.body, simulator.webhook_secret)


# --- timeouts: a real loopback peer that reads the request and never answers ------------


class SilentServer:
    """Accepts a connection, reads the request, never replies (until the test ends)."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self._release = asyncio.Event()
        self._server: asyncio.Server | None = None
        self.url = ""

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.requests.append(await reader.read(65536))
        await self._release.wait()
        writer.close()

    async def __aenter__(self) -> SilentServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._release.set()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


async def test_submit_timeout_says_task_may_exist_and_sends_once() -> None:
    sleeps = Sleeps()
    async with (
        SilentServer() as silent,
        WaveSpeedClient(
            KEY, base_url=silent.url, timeout=httpx.Timeout(0.2, connect=5.0), sleep=sleeps
        ) as client,
    ):
        with pytest.raises(ProviderTimeout, match="may have been created"):
            await client.submit(SORA, {"prompt": "x"})
        assert len(silent.requests) == 1
        assert silent.requests[0].startswith(b"POST " + SORA.encode())
    assert sleeps.waits == []


async def test_get_timeout_is_retried_then_raised() -> None:
    sleeps = Sleeps()
    async with (
        SilentServer() as silent,
        WaveSpeedClient(
            KEY,
            base_url=silent.url,
            timeout=httpx.Timeout(0.2, connect=5.0),
            sleep=sleeps,
            max_retries=1,
        ) as client,
    ):
        with pytest.raises(ProviderTimeout):
            await client.get(TASK_ID)
        assert len(silent.requests) == 2
    assert len(sleeps.waits) == 1


async def test_refused_connection_on_submit_is_definite() -> None:
    async with SilentServer() as silent:
        url = silent.url
    # The port is closed now: nothing listens, so the connection is refused.
    async with WaveSpeedClient(KEY, base_url=url) as client:
        with pytest.raises(RequestNotSent, match="no task was created"):
            await client.submit(SORA, {"prompt": "x"})
