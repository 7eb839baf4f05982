"""Novita wan-i2v protocol over real HTTP."""

from __future__ import annotations

import uuid

import httpx
import pytest

from providers.simulator import Outcome, Simulator
from tests.simulator.test_wavespeed import upload_png


async def submit(client: httpx.AsyncClient, body: dict) -> httpx.Response:
    return await client.post("/v3/async/wan-i2v", json=body)


async def result(client: httpx.AsyncClient, task_id: str) -> httpx.Response:
    return await client.get("/v3/async/task-result", params={"task_id": task_id})


def assert_task_result_shape(body: dict) -> None:
    extra = body["extra"]
    assert isinstance(extra["seed"], str)
    assert isinstance(extra["debug_info"], dict)
    task = body["task"]
    assert set(task) >= {"task_id", "task_type", "status", "reason", "eta", "progress_percent"}
    assert task["task_type"] == "WAN_IMG_TO_VIDEO"
    assert isinstance(task["eta"], int) and isinstance(task["progress_percent"], int)
    assert task["status"] in {
        "TASK_STATUS_QUEUED", "TASK_STATUS_PROCESSING", "TASK_STATUS_SUCCEED", "TASK_STATUS_FAILED"
    }
    assert body["images"] == [] and body["audios"] == [] and isinstance(body["videos"], list)


async def test_submit_is_flat_task_id_and_progresses_to_succeed(
    simulator: Simulator, sim_http: httpx.AsyncClient, sample_png: bytes
) -> None:
    image = await upload_png(sim_http, sample_png)
    reply = await submit(sim_http, {
        "model_name": "wan2.1-i2v", "fast_mode": True, "image_url": image, "prompt": "waves",
        "width": 832, "height": 480, "seed": 42,
    })
    assert reply.status_code == 200
    assert list(reply.json()) == ["task_id"]
    task_id = reply.json()["task_id"]
    assert str(uuid.UUID(task_id)) == task_id
    assert simulator.tasks[task_id].status == "created"

    first = (await result(sim_http, task_id)).json()
    assert_task_result_shape(first)
    assert first["task"]["status"] == "TASK_STATUS_PROCESSING"
    assert first["videos"] == []

    done = (await result(sim_http, task_id)).json()
    assert_task_result_shape(done)
    assert done["task"]["status"] == "TASK_STATUS_SUCCEED"
    assert done["task"]["progress_percent"] == 100
    assert done["extra"]["seed"] == "42"
    (video,) = done["videos"]
    assert video["video_url_ttl"] == "3600" and video["video_type"] == "mp4"
    assert "X-Amz-Expires=3600" in video["video_url"]
    clip = await sim_http.get(video["video_url"])
    assert clip.status_code == 200 and clip.content[4:8] == b"ftyp"


async def test_failed_task_has_reason_and_no_videos(
    simulator: Simulator, sim_http: httpx.AsyncClient, sample_png: bytes
) -> None:
    image = await upload_png(sim_http, sample_png)
    simulator.next_outcome(Outcome(status="failed", error="NSFW content detected"))
    task_id = (await submit(sim_http, {"image_url": image, "prompt": "p"})).json()["task_id"]
    simulator.complete_now(task_id)
    body = (await result(sim_http, task_id)).json()
    assert_task_result_shape(body)
    assert body["task"]["status"] == "TASK_STATUS_FAILED"
    assert body["task"]["reason"] == "NSFW content detected"
    assert body["videos"] == []


async def test_cancelled_maps_to_failed_not_an_unknown_status(
    simulator: Simulator, sim_http: httpx.AsyncClient, sample_png: bytes
) -> None:
    image = await upload_png(sim_http, sample_png)
    task_id = (await submit(sim_http, {"image_url": image, "prompt": "p"})).json()["task_id"]
    simulator.force(task_id, Outcome(status="cancelled"))
    body = (await result(sim_http, task_id)).json()
    assert body["task"]["status"] == "TASK_STATUS_FAILED" and body["task"]["reason"]


async def test_unreachable_image_fails(simulator: Simulator, sim_http: httpx.AsyncClient) -> None:
    url = f"{simulator.base_url}/_sim/media/{'0' * 32}/gone.png"
    task_id = (await submit(sim_http, {"image_url": url, "prompt": "p"})).json()["task_id"]
    body = (await result(sim_http, task_id)).json()
    assert body["task"]["status"] == "TASK_STATUS_FAILED"
    assert "not reachable" in body["task"]["reason"]


BAD = [
    ({"prompt": "p"}, "image_url"),
    ({"image_url": "u"}, "prompt"),
    ({"image_url": "u", "prompt": ""}, "prompt"),
    ({"image_url": "u", "prompt": "x" * 2001}, "prompt"),
    ({"image_url": "u", "prompt": "p", "width": 1024, "height": 1024}, "width"),
    ({"image_url": "u", "prompt": "p", "width": 832}, "width"),
    ({"image_url": "u", "prompt": "p", "steps": 41}, "steps"),
    ({"image_url": "u", "prompt": "p", "steps": 0}, "steps"),
    ({"image_url": "u", "prompt": "p", "guidance_scale": 10.5}, "guidance_scale"),
    ({"image_url": "u", "prompt": "p", "flow_shift": 0.5}, "flow_shift"),
    ({"image_url": "u", "prompt": "p", "seed": 10_000_000_000}, "seed"),
    ({"image_url": "u", "prompt": "p", "loras": [{"path": "a", "scale": 1}] * 4}, "loras"),
]


@pytest.mark.parametrize(("body", "field"), BAD)
async def test_validation_errors_use_novitas_400_body(
    simulator: Simulator, sim_http: httpx.AsyncClient, body: dict, field: str
) -> None:
    reply = await submit(sim_http, body)
    assert reply.status_code == 400
    got = reply.json()
    assert got["code"] == 400 and got["reason"] == "INVALID_REQUEST_BODY"
    assert got["metadata"] == {} and field in got["message"]
    assert simulator.tasks == {}


async def test_boundaries_are_accepted(sim_http: httpx.AsyncClient, sample_png: bytes) -> None:
    image = await upload_png(sim_http, sample_png)
    reply = await submit(sim_http, {
        "image_url": image, "prompt": "x" * 2000, "width": 720, "height": 1280, "steps": 40,
        "guidance_scale": 0, "flow_shift": 10, "seed": 9_999_999_999,
        "loras": [{"path": "https://l/1", "scale": 1.0}] * 3,
    })
    assert reply.status_code == 200, reply.text


async def test_bad_key_and_unknown_task(simulator: Simulator, sim_http: httpx.AsyncClient) -> None:
    async with httpx.AsyncClient(base_url=simulator.base_url, trust_env=False) as anon:
        reply = await anon.post("/v3/async/wan-i2v", json={"image_url": "u", "prompt": "p"})
    assert reply.status_code == 401
    assert reply.json()["code"] == 401
    unknown = await result(sim_http, str(uuid.uuid4()))
    assert unknown.status_code == 404
    assert unknown.json()["reason"] == "TASK_NOT_FOUND"
    missing = await sim_http.get("/v3/async/task-result")
    assert missing.status_code == 400
