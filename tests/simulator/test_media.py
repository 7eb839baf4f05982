"""Uploads (ticket + PUT, legacy multipart), expiring outputs, and the mp4 being a real video."""

from __future__ import annotations

import io

import av
import httpx
import pytest

from providers.simulator import Simulator, SimulatorConfig
from tests.fixtures_sim import SIM_API_KEY

SUBMIT = "/api/v3/wavespeed-ai/open-video/image-to-video"


async def test_ticket_upload_put_without_auth_then_download(
    simulator: Simulator, sim_http: httpx.AsyncClient, sample_png: bytes
) -> None:
    ticket = await sim_http.post("/api/v3/media/uploads", json={
        "filename": "cat.png", "size": len(sample_png), "content_type": "image/png"})
    assert ticket.status_code == 200
    body = ticket.json()
    assert body["code"] == 200 and body["message"] == "success"
    data = body["data"]
    assert data["type"] == "image" and data["filename"] == "cat.png"
    assert data["size"] == len(sample_png)
    upload = data["upload"]
    assert upload["method"] == "PUT"
    async with httpx.AsyncClient(trust_env=False) as bare:  # no Authorization header at all
        before = await bare.get(data["download_url"])
        assert before.status_code == 404
        put = await bare.put(upload["url"], content=sample_png, headers=upload["headers"])
        assert put.status_code == 200
        got = await bare.get(data["download_url"])
    assert got.status_code == 200 and got.content == sample_png
    assert got.headers["Content-Type"] == "image/png"


async def test_put_with_other_headers_than_signed_is_refused(
    sim_http: httpx.AsyncClient, sample_png: bytes
) -> None:
    data = (await sim_http.post("/api/v3/media/uploads", json={
        "filename": "cat.png", "size": len(sample_png)})).json()["data"]
    async with httpx.AsyncClient(trust_env=False) as bare:
        put = await bare.put(data["upload"]["url"], content=sample_png,
                             headers={"Content-Type": "text/plain"})
    assert put.status_code == 403


async def test_upload_errors_invalid_type_and_too_large(
    simulator: Simulator, sim_http: httpx.AsyncClient
) -> None:
    bad_type = await sim_http.post("/api/v3/media/uploads", json={"filename": "x.exe", "size": 3})
    assert bad_type.status_code == 200  # the SDK must look at the envelope code
    assert bad_type.json()["code"] == 500
    assert bad_type.json()["message"] == "Upload failed: invalid file type"
    simulator.config.upload_max_bytes = 10
    too_big = await sim_http.post("/api/v3/media/uploads", json={"filename": "a.png", "size": 11})
    assert too_big.status_code == 413 and too_big.json()["code"] == 413
    files = {"file": ("a.png", b"0123456789AB", "image/png")}
    legacy = await sim_http.post("/api/v3/media/upload/binary", files=files)
    assert legacy.status_code == 413
    missing = await sim_http.post("/api/v3/media/uploads", json={"size": 1})
    assert missing.status_code == 400 and "filename" in missing.json()["message"]


async def test_legacy_multipart_and_upload_endpoint(
    sim_http: httpx.AsyncClient, sample_png: bytes
) -> None:
    files = {"file": ("in.png", sample_png, "image/png")}
    binary = (await sim_http.post("/api/v3/media/upload/binary", files=files)).json()
    assert binary["code"] == 200
    assert binary["data"]["type"] == "image" and binary["data"]["size"] == len(sample_png)
    assert "url" not in binary["data"]
    newer = (await sim_http.post("/api/v3/upload", files=files)).json()["data"]
    assert newer["url"] == newer["download_url"]
    for url in (binary["data"]["download_url"], newer["url"]):
        assert (await sim_http.get(url)).content == sample_png
    wrong_type = await sim_http.post(
        "/api/v3/media/upload/binary", files={"file": ("x.exe", b"MZ", "application/x-dos")})
    assert wrong_type.json()["code"] == 500


async def _completed_output(sim_http: httpx.AsyncClient, image_url: str) -> str:
    task_id = (await sim_http.post(SUBMIT, json={"image": image_url, "prompt": "p"})).json()[
        "data"]["id"]
    await sim_http.get(f"/api/v3/predictions/{task_id}/result")
    data = (await sim_http.get(f"/api/v3/predictions/{task_id}/result")).json()["data"]
    assert data["status"] == "completed"
    return data["outputs"][0]


async def test_outputs_expire_with_403(
    simulator: Simulator, sim_http: httpx.AsyncClient, sample_png: bytes
) -> None:
    files = {"file": ("in.png", sample_png, "image/png")}
    image = (await sim_http.post("/api/v3/media/upload/binary", files=files)).json()["data"][
        "download_url"]
    first = await _completed_output(sim_http, image)
    second = await _completed_output(sim_http, image)
    assert (await sim_http.get(first)).status_code == 200
    simulator.expire_outputs()
    assert (await sim_http.get(first)).status_code == 403
    assert (await sim_http.get(second)).status_code == 403
    third = await _completed_output(sim_http, image)  # new outputs get a fresh TTL
    assert (await sim_http.get(third)).status_code == 200
    simulator.advance_clock(simulator.config.output_ttl_s + 1)
    assert (await sim_http.get(third)).status_code == 403


async def test_novita_video_url_expires_after_its_ttl(
    simulator: Simulator, sim_http: httpx.AsyncClient, sample_png: bytes
) -> None:
    files = {"file": ("in.png", sample_png, "image/png")}
    image = (await sim_http.post("/api/v3/media/upload/binary", files=files)).json()["data"][
        "download_url"]
    task_id = (await sim_http.post("/v3/async/wan-i2v", json={
        "image_url": image, "prompt": "p"})).json()["task_id"]
    simulator.complete_now(task_id)
    body = (await sim_http.get("/v3/async/task-result", params={"task_id": task_id})).json()
    url = body["videos"][0]["video_url"]
    simulator.advance_clock(3599)
    assert (await sim_http.get(url)).status_code == 200
    simulator.advance_clock(2)
    assert (await sim_http.get(url)).status_code == 403


def frames_in(mp4: bytes) -> tuple[int, int, int]:
    with av.open(io.BytesIO(mp4)) as container:
        stream = container.streams.video[0]
        count = sum(1 for _ in container.decode(stream))
        return count, stream.codec_context.width, stream.codec_context.height


async def test_static_clip_is_a_playable_mp4(
    sim_http: httpx.AsyncClient, sample_png: bytes
) -> None:
    files = {"file": ("in.png", sample_png, "image/png")}
    image = (await sim_http.post("/api/v3/media/upload/binary", files=files)).json()["data"][
        "download_url"]
    reply = await sim_http.get(await _completed_output(sim_http, image))
    assert reply.headers["Content-Type"] == "video/mp4"
    count, width, height = frames_in(reply.content)
    assert count > 0 and width > 0 and height > 0


@pytest.mark.parametrize("sim_config", [SimulatorConfig(
    api_keys=frozenset({SIM_API_KEY}), progression="polls", clip_mode="image")])
async def test_image_clip_is_made_from_the_submitted_image(
    simulator: Simulator, sim_http: httpx.AsyncClient, sample_png: bytes
) -> None:
    files = {"file": ("in.png", sample_png, "image/png")}
    image = (await sim_http.post("/api/v3/media/upload/binary", files=files)).json()["data"][
        "download_url"]
    task_id = (await sim_http.post(SUBMIT, json={
        "image": image, "prompt": "p", "duration": 3})).json()["data"]["id"]
    simulator.complete_now(task_id)
    await simulator.settle_fetch(simulator.tasks[task_id])
    data = (await sim_http.get(f"/api/v3/predictions/{task_id}/result")).json()["data"]
    clip = (await sim_http.get(data["outputs"][0])).content
    count, width, height = frames_in(clip)
    assert count >= 3 * 12 - 1  # about `duration` seconds at 12 fps
    assert width * 3 == height * 4  # the input's 4:3 shape


@pytest.mark.parametrize("sim_config", [SimulatorConfig(
    api_keys=frozenset({SIM_API_KEY}), progression="polls", clip_mode="image")])
async def test_undecodable_image_fails_the_task(
    simulator: Simulator, sim_http: httpx.AsyncClient
) -> None:
    files = {"file": ("in.png", b"not an image at all", "image/png")}
    image = (await sim_http.post("/api/v3/media/upload/binary", files=files)).json()["data"][
        "download_url"]
    task_id = (await sim_http.post(SUBMIT, json={"image": image, "prompt": "p"})).json()[
        "data"]["id"]
    data = (await sim_http.get(f"/api/v3/predictions/{task_id}/result")).json()["data"]
    assert data["status"] == "failed" and data["code"] == 1401
