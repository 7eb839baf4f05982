"""Fault injection: 429 (with and without Retry-After), 5xx, dropped and delayed answers."""

from __future__ import annotations

import httpx
import pytest

from providers.simulator import Fault, Simulator

SUBMIT = "/api/v3/wavespeed-ai/open-video/image-to-video"
BODY = {"image": "data:image/png;base64,iVBORw0KGgo=", "prompt": "p"}


async def test_429_with_retry_after_then_normal_service(
    simulator: Simulator, sim_http: httpx.AsyncClient
) -> None:
    simulator.add_fault(Fault(method="POST", path_prefix="/api/v3/", times=2, status=429,
                              headers={"Retry-After": "1"}))
    for _ in range(2):
        reply = await sim_http.post(SUBMIT, json=BODY)
        assert reply.status_code == 429
        assert reply.headers["Retry-After"] == "1"
        assert reply.json() == {"code": 429, "message": "Too Many Requests"}
    assert simulator.tasks == {}  # a refused submit creates nothing
    assert (await sim_http.post(SUBMIT, json=BODY)).status_code == 200
    assert len(simulator.tasks) == 1
    assert simulator.stats.faults_applied == 2


async def test_429_without_retry_after_on_novita_poll(
    simulator: Simulator, sim_http: httpx.AsyncClient
) -> None:
    simulator.add_fault(Fault(method="GET", path_prefix="/v3/async/task-result", status=429))
    reply = await sim_http.get("/v3/async/task-result", params={"task_id": "x"})
    assert reply.status_code == 429
    assert "Retry-After" not in reply.headers
    assert reply.json()["reason"] == "RATE_LIMIT_EXCEEDED"


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_on_poll(
    simulator: Simulator, sim_http: httpx.AsyncClient, status: int
) -> None:
    task_id = (await sim_http.post(SUBMIT, json=BODY)).json()["data"]["id"]
    simulator.add_fault(Fault(method="GET", path_prefix="/api/v3/predictions", status=status))
    assert (await sim_http.get(f"/api/v3/predictions/{task_id}/result")).status_code == status
    # The faulted request never reached the task: it did not count as a poll.
    assert simulator.tasks[task_id].polls == 0
    ok = await sim_http.get(f"/api/v3/predictions/{task_id}/result")
    assert ok.status_code == 200 and simulator.tasks[task_id].polls == 1


async def test_scripted_json_and_text_bodies(
    simulator: Simulator, sim_http: httpx.AsyncClient
) -> None:
    simulator.add_fault(Fault(path_prefix="/api/v3/balance", status=503, json={"why": "busy"}))
    simulator.add_fault(Fault(path_prefix="/api/v3/balance", status=502, body="<html>bad</html>"))
    first = await sim_http.get("/api/v3/balance")
    second = await sim_http.get("/api/v3/balance")
    assert (first.status_code, first.json()) == (503, {"why": "busy"})
    assert (second.status_code, second.text) == (502, "<html>bad</html>")


async def test_dropped_connection_has_no_response(
    simulator: Simulator, sim_http: httpx.AsyncClient
) -> None:
    simulator.add_fault(Fault(method="POST", path_prefix=SUBMIT, drop_connection=True))
    with pytest.raises(httpx.RemoteProtocolError):
        await sim_http.post(SUBMIT, json=BODY)
    assert simulator.tasks == {}
    assert (await sim_http.post(SUBMIT, json=BODY)).status_code == 200


async def test_drop_after_handler_creates_the_task_but_loses_the_reply(
    simulator: Simulator, sim_http: httpx.AsyncClient
) -> None:
    simulator.add_fault(Fault(method="POST", path_prefix=SUBMIT, drop_connection=True,
                              after_handler=True))
    with pytest.raises(httpx.RemoteProtocolError):
        await sim_http.post(SUBMIT, json=BODY)
    assert len(simulator.tasks) == 1  # the money-critical case: billed, id never seen


async def test_delay_only_fault_serves_normally(
    simulator: Simulator, sim_http: httpx.AsyncClient
) -> None:
    simulator.add_fault(Fault(path_prefix="/api/v3/balance", delay_s=0.01))
    reply = await sim_http.get("/api/v3/balance")
    assert reply.status_code == 200 and simulator.stats.faults_applied == 1


async def test_slow_response_trips_a_client_timeout(
    simulator: Simulator, sim_http: httpx.AsyncClient
) -> None:
    simulator.add_fault(Fault(path_prefix="/api/v3/balance", delay_s=5.0))
    with pytest.raises(httpx.ReadTimeout):
        await sim_http.get("/api/v3/balance", timeout=0.05)


async def test_faults_over_http_control_api(
    simulator: Simulator, sim_http: httpx.AsyncClient
) -> None:
    reply = await sim_http.post("/_sim/faults", json=[
        {"method": "GET", "path_prefix": "/api/v3/balance", "times": 1, "status": 504}
    ])
    assert reply.status_code == 200 and reply.json()["pending_faults"] == 1
    assert (await sim_http.get("/api/v3/balance")).status_code == 504
    assert (await sim_http.get("/api/v3/balance")).status_code == 200
    bad = await sim_http.post("/_sim/faults", json={"stauts": 500})
    assert bad.status_code == 400 and "stauts" in bad.json()["error"]


async def test_catch_all_fault_spares_the_control_api(
    simulator: Simulator, sim_http: httpx.AsyncClient
) -> None:
    simulator.add_fault(Fault(path_prefix="/", times=5, status=500))
    assert (await sim_http.get("/_sim/stats")).status_code == 200
    assert (await sim_http.get("/api/v3/balance")).status_code == 500
