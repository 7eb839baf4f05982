"""WaveSpeed protocol over real HTTP: envelopes, progression, validation, auth."""

from __future__ import annotations

import re

import httpx
import pytest

from providers.simulator import Outcome, Simulator, SimulatorConfig
from tests.fixtures_sim import SIM_API_KEY

OPEN_VIDEO = "wavespeed-ai/open-video/image-to-video"
OPEN_VIDEO_LORA = "wavespeed-ai/open-video/image-to-video-lora"
SORA = "openai/sora-2/image-to-video"
WAN22 = "wavespeed-ai/wan-2.2/i2v-480p-lora-ultra-fast"
ISO_NS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")


async def upload_png(client: httpx.AsyncClient, png: bytes) -> str:
    files = {"file": ("in.png", png, "image/png")}
    reply = await client.post("/api/v3/media/upload/binary", files=files)
    assert reply.status_code == 200, reply.text
    return reply.json()["data"]["download_url"]


async def submit(client: httpx.AsyncClient, model: str, body: dict) -> httpx.Response:
    return await client.post(f"/api/v3/{model}", json=body)


async def test_submit_envelope_matches_the_documented_shape(
    simulator: Simulator, sim_http: httpx.AsyncClient, sample_png: bytes
) -> None:
    image = await upload_png(sim_http, sample_png)
    reply = await submit(sim_http, OPEN_VIDEO, {"image": image, "prompt": "a cat", "duration": 5})
    assert reply.status_code == 200
    body = reply.json()
    assert body["code"] == 200 and body["message"] == "success"
    data = body["data"]
    assert re.fullmatch(r"[0-9a-f]{32}", data["id"])
    assert data["model"] == OPEN_VIDEO
    assert data["outputs"] == [] and data["has_nsfw_contents"] == []
    assert data["status"] == "created" and data["error"] == ""
    assert data["urls"]["get"] == f"{simulator.base_url}/api/v3/predictions/{data['id']}/result"
    assert ISO_NS.match(data["created_at"])
    assert data["timings"] == {"inference": 0}
    assert simulator.tasks[data["id"]].input["prompt"] == "a cat"
    assert simulator.stats.submits["wavespeed"] == 1


async def test_polls_progress_created_processing_completed(
    simulator: Simulator, sim_http: httpx.AsyncClient, sample_png: bytes
) -> None:
    image = await upload_png(sim_http, sample_png)
    task_id = (await submit(sim_http, OPEN_VIDEO, {"image": image, "prompt": "p"})).json()["data"][
        "id"
    ]
    assert simulator.tasks[task_id].status == "created"
    first = await sim_http.get(f"/api/v3/predictions/{task_id}/result")
    assert first.status_code == 200
    assert first.json()["data"]["status"] == "processing"
    assert first.json()["data"]["outputs"] == []
    # the alias without /result serves the same task
    second = await sim_http.get(f"/api/v3/predictions/{task_id}")
    data = second.json()["data"]
    assert data["status"] == "completed"
    assert len(data["outputs"]) == 1 and data["outputs"][0].startswith(simulator.base_url)
    assert data["has_nsfw_contents"] == [False]
    assert data["timings"]["inference"] > 0 and data["executionTime"] > 0
    assert "code" not in data
    assert simulator.stats.polls[task_id] == 2


async def test_scripted_failure_is_http_200_with_code(
    simulator: Simulator, sim_http: httpx.AsyncClient, sample_png: bytes
) -> None:
    image = await upload_png(sim_http, sample_png)
    simulator.next_outcome(Outcome(status="failed", code=1200, error="content flagged"))
    task_id = (await submit(sim_http, SORA, {"image": image, "prompt": "p", "duration": 4})).json()[
        "data"
    ]["id"]
    await sim_http.get(f"/api/v3/predictions/{task_id}/result")
    reply = await sim_http.get(f"/api/v3/predictions/{task_id}/result")
    assert reply.status_code == 200
    data = reply.json()["data"]
    assert data["status"] == "failed"
    assert data["code"] == 1200 and data["error"] == "content flagged"
    assert data["outputs"] == []


async def test_unreachable_image_fails_the_task_with_1402(
    simulator: Simulator, sim_http: httpx.AsyncClient
) -> None:
    missing = f"{simulator.base_url}/nothing-here.png"
    task_id = (await submit(sim_http, OPEN_VIDEO, {"image": missing, "prompt": "p"})).json()[
        "data"
    ]["id"]
    data = (await sim_http.get(f"/api/v3/predictions/{task_id}/result")).json()["data"]
    assert data["status"] == "failed"
    assert data["code"] == 1402
    assert "not reachable" in data["error"]


async def test_force_complete_now_and_terminal_states(
    simulator: Simulator, sim_http: httpx.AsyncClient, sample_png: bytes
) -> None:
    image = await upload_png(sim_http, sample_png)
    ids = [
        (await submit(sim_http, OPEN_VIDEO, {"image": image, "prompt": "p"})).json()["data"]["id"]
        for _ in range(4)
    ]
    await sim_http.get(f"/api/v3/predictions/{ids[0]}/result")  # let the input fetch settle
    simulator.complete_now(ids[0])
    simulator.force(ids[1], Outcome(status="cancelled"))
    simulator.force(ids[2], Outcome(status="timeout", code=5004))
    reply = await sim_http.post(f"/_sim/tasks/{ids[3]}/force", json={"status": "deleted"})
    assert reply.status_code == 200
    got = [(await sim_http.get(f"/api/v3/predictions/{i}/result")).json()["data"] for i in ids]
    assert [d["status"] for d in got] == ["completed", "cancelled", "timeout", "deleted"]
    assert got[2]["code"] == 5004


async def test_unknown_prediction_is_a_404_envelope(sim_http: httpx.AsyncClient) -> None:
    reply = await sim_http.get("/api/v3/predictions/" + "0" * 32 + "/result")
    assert reply.status_code == 404
    assert reply.json()["code"] == 404 and reply.json()["message"]


async def test_missing_or_wrong_key_is_401(simulator: Simulator, sample_png: bytes) -> None:
    async with httpx.AsyncClient(base_url=simulator.base_url, trust_env=False) as anon:
        reply = await anon.post(f"/api/v3/{OPEN_VIDEO}", json={"image": "x", "prompt": "p"})
        assert reply.status_code == 401
        assert reply.json()["code"] == 401 and reply.json()["message"]
        wrong = await anon.get("/api/v3/balance", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
    assert simulator.stats.submits["wavespeed"] == 0


async def test_sdk_style_get_headers_are_accepted(sim_http: httpx.AsyncClient) -> None:
    headers = {
        "Content-Type": "application/json",
        "X-Client-Name": "wavespeed-python",
        "X-Client-Version": "2.0.5",
        "X-Client-OS": "linux",
    }
    reply = await sim_http.get("/api/v3/balance", headers=headers)
    assert reply.status_code == 200
    assert isinstance(reply.json()["data"]["balance"], float)


async def test_webhook_secret_endpoint(simulator: Simulator, sim_http: httpx.AsyncClient) -> None:
    reply = await sim_http.get("/api/v3/webhook/secret")
    assert reply.json() == {
        "code": 200,
        "message": "success",
        "data": {"secret": simulator.webhook_secret},
    }
    assert simulator.webhook_secret.startswith("whsec_")


BAD_BODIES = [
    (OPEN_VIDEO, {"image": "u", "prompt": "p", "duration": 2}, "duration"),
    (OPEN_VIDEO, {"image": "u", "prompt": "p", "duration": 21}, "duration"),
    (OPEN_VIDEO, {"image": "u", "prompt": "p", "resolution": "4k"}, "resolution"),
    (OPEN_VIDEO, {"image": "u", "prompt": "p", "seed": 2_147_483_648}, "seed"),
    (OPEN_VIDEO, {"image": "u", "prompt": "p", "seed": -2}, "seed"),
    (OPEN_VIDEO, {"image": "u"}, "prompt"),
    (OPEN_VIDEO, {"prompt": "p"}, "image"),
    (OPEN_VIDEO_LORA, {"image": "u", "prompt": "p", "preset": "spicy"}, "preset"),
    (OPEN_VIDEO_LORA, {"image": "u", "prompt": "p", "loras": [{"path": "synth", "scale": 4.5}]},
     "scale"),
    (SORA, {"image": "u", "prompt": "p", "duration": 10}, "duration"),
    (WAN22, {"image": "u", "prompt": "p", "duration": 6}, "duration"),
    (WAN22, {"image": "u", "prompt": "p", "loras": [{"path": "a", "scale": 1}] * 4}, "loras"),
]


@pytest.mark.parametrize(("model", "body", "field"), BAD_BODIES)
async def test_validation_rejects_with_http_400(
    simulator: Simulator, sim_http: httpx.AsyncClient, model: str, body: dict, field: str
) -> None:
    reply = await submit(sim_http, model, body)
    assert reply.status_code == 400
    assert reply.json()["code"] == 400
    assert field in reply.json()["message"]
    assert simulator.tasks == {}


GOOD_BODIES = [
    (OPEN_VIDEO, {"duration": 3, "resolution": "1080p", "seed": 2_147_483_647}),
    (OPEN_VIDEO, {"duration": 20, "resolution": "480p", "seed": -1}),
    (OPEN_VIDEO_LORA, {"preset": "original", "loras": [{"path": "not-a-key", "scale": 0}]}),
    (OPEN_VIDEO_LORA, {"loras": [{"path": "synth", "scale": 4}]}),
    (SORA, {"duration": 20}),
    (WAN22, {"duration": 8, "loras": [{"path": "https://x/l.safetensors", "scale": 1}] * 3}),
    ("someone/other-model/anything", {"whatever": True}),
]


@pytest.mark.parametrize(("model", "extra"), GOOD_BODIES)
async def test_valid_bodies_are_accepted(
    sim_http: httpx.AsyncClient, sample_png: bytes, model: str, extra: dict
) -> None:
    image = await upload_png(sim_http, sample_png)
    reply = await submit(sim_http, model, {"image": image, "prompt": "p", **extra})
    assert reply.status_code == 200, reply.text
    assert reply.json()["data"]["model"] == model


@pytest.fixture
def sim_config() -> SimulatorConfig:
    return SimulatorConfig(
        api_keys=frozenset({SIM_API_KEY}),
        progression="polls",
        clip_mode="static",
        webhook_backoff_s=0.0,
    )


async def test_validation_mode_task_failed_gives_a_failed_task(
    simulator: Simulator, sim_http: httpx.AsyncClient
) -> None:
    simulator.config.validation = "task_failed"
    missing = await submit(sim_http, OPEN_VIDEO, {"image": "u"})
    invalid = await submit(sim_http, OPEN_VIDEO, {"image": "u", "prompt": "p", "duration": 99})
    assert missing.status_code == 200 and invalid.status_code == 200
    codes = []
    for reply in (missing, invalid):
        task_id = reply.json()["data"]["id"]
        data = (await sim_http.get(f"/api/v3/predictions/{task_id}/result")).json()["data"]
        assert data["status"] == "failed"
        codes.append(data["code"])
    assert codes == [1400, 1401]


async def test_base64_with_webhook_is_refused(sim_http: httpx.AsyncClient) -> None:
    reply = await sim_http.post(
        f"/api/v3/{OPEN_VIDEO}",
        params={"webhook": "http://127.0.0.1:9/hook"},
        json={"image": "u", "prompt": "p", "enable_base64_output": True},
    )
    assert reply.status_code == 400
    assert reply.json() == {
        "error": "webhook callback does not support base64 output, please use the normal API "
        "to use base64 output"
    }


async def test_base64_output_is_bare_base64_of_an_mp4(
    sim_http: httpx.AsyncClient, sample_png: bytes
) -> None:
    import base64

    image = await upload_png(sim_http, sample_png)
    body = {"image": image, "prompt": "p", "enable_base64_output": True}
    task_id = (await submit(sim_http, OPEN_VIDEO, body)).json()["data"]["id"]
    await sim_http.get(f"/api/v3/predictions/{task_id}/result")
    data = (await sim_http.get(f"/api/v3/predictions/{task_id}/result")).json()["data"]
    assert data["status"] == "completed"
    (output,) = data["outputs"]
    assert not output.startswith("data:")
    assert base64.b64decode(output)[4:8] == b"ftyp"
