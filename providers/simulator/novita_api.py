"""Novita's wan-i2v surface under /v3 (submit, task result, webhooks), and the account's
balance under /openapi (https://novita.ai/docs/api-reference/basic-get-user-balance)."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

from aiohttp import web

from providers.simulator.appkey import sim_of
from providers.simulator.engine import SimTask
from providers.simulator.validation import validate_novita

if TYPE_CHECKING:
    from providers.simulator.server import Simulator

TASK_TYPE = "WAN_IMG_TO_VIDEO"
NOVITA_STATUS = {
    "created": "TASK_STATUS_QUEUED",
    "processing": "TASK_STATUS_PROCESSING",
    "completed": "TASK_STATUS_SUCCEED",
}
FINAL_STATUSES = ("TASK_STATUS_SUCCEED", "TASK_STATUS_FAILED")


def novita_error(status: int, reason: str, message: str) -> web.Response:
    body = {"code": status, "reason": reason, "message": message, "metadata": {}}
    return web.json_response(body, status=status)


def _seed(task_id: str, body: dict[str, Any]) -> str:
    seed = body.get("seed", -1)
    if isinstance(seed, int) and seed >= 0:
        return str(seed)
    return str(int(task_id.replace("-", "")[:8], 16) % 1_000_000_000)  # "random", but stable


def task_result(
    sim: Simulator,
    task_id: str,
    body: dict[str, Any],
    *,
    status: str,
    reason: str = "",
    progress: tuple[int, int] = (0, 0),
    video_url: str | None = None,
    times_ms: tuple[int, int, int] = (0, 0, 0),
) -> dict[str, Any]:
    """The task-result schema; `extra` and every array are always present (the SDK needs them)."""
    submit_ms, execute_ms, complete_ms = times_ms
    videos = []
    if status == "TASK_STATUS_SUCCEED" and video_url:
        ttl = str(int(sim.config.novita_output_ttl_s))
        videos = [{"video_url": video_url, "video_url_ttl": ttl, "video_type": "mp4"}]
    return {
        "extra": {
            "seed": _seed(task_id, body),
            "enable_nsfw_detection": bool(body.get("enable_safety_checker", False)),
            "debug_info": {
                "request_info": "",
                "submit_time_ms": str(submit_ms) if submit_ms else "",
                "execute_time_ms": str(execute_ms) if execute_ms else "",
                "complete_time_ms": str(complete_ms) if complete_ms else "",
            },
        },
        "task": {
            "task_id": task_id,
            "task_type": TASK_TYPE,
            "status": status,
            "reason": reason,
            "eta": progress[1],
            "progress_percent": progress[0],
        },
        "images": [],
        "videos": videos,
        "audios": [],
    }


def result_of(sim: Simulator, task: SimTask) -> dict[str, Any]:
    status = NOVITA_STATUS.get(task.status, "TASK_STATUS_FAILED")
    submitted_ms = int((task.submitted_at - sim.engine.now() + sim.engine.unix_now()) * 1000)
    times = (submitted_ms, 0, 0)
    if task.terminal:
        times = (submitted_ms, submitted_ms + 1, submitted_ms + max(1, task.inference_ms))
    return task_result(
        sim,
        task.id,
        task.input,
        status=status,
        reason=task.outcome.error if status == "TASK_STATUS_FAILED" else "",
        progress=sim.engine.progress(task),
        video_url=sim.output_url(task) if status == "TASK_STATUS_SUCCEED" else None,
        times_ms=times,
    )


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


async def submit(request: web.Request) -> web.Response:
    sim = sim_of(request)
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return novita_error(400, "INVALID_REQUEST_BODY", f"request body is not valid JSON: {exc}")
    if not isinstance(body, dict):
        return novita_error(400, "INVALID_REQUEST_BODY", "request body must be a JSON object")
    problem = validate_novita(body)
    if problem is not None:
        return novita_error(400, "INVALID_REQUEST_BODY", problem.message)
    extra = _object(body.get("extra"))
    hook = _object(extra.get("webhook"))
    url = hook.get("url") if isinstance(hook.get("url"), str) and hook.get("url") else None
    test_mode = _object(hook.get("test_mode"))
    task_id = str(uuid.uuid4())
    sim.stats.submits["novita"] += 1
    if test_mode.get("enabled") is True:
        # A mock event right away, and no real task behind the id.
        wanted = test_mode.get("return_task_status")
        status = wanted if wanted in FINAL_STATUSES else "TASK_STATUS_SUCCEED"
        if url:
            reason = "test mode" if status == "TASK_STATUS_FAILED" else ""
            payload = task_result(sim, task_id, body, status=status, reason=reason,
                                  progress=(100, 0), video_url=f"{sim.base_url}/_sim/test.mp4")
            sim.send_novita_event(task_id, url, payload)
        return web.json_response({"task_id": task_id})
    task = sim.engine.create("novita", "wan-i2v", body, task_id=task_id, webhook_url=url)
    sim.start_fetch(task, body["image_url"], check_image=True)
    return web.json_response({"task_id": task_id})


async def get_result(request: web.Request) -> web.Response:
    sim = sim_of(request)
    task_id = request.query.get("task_id", "")
    if not task_id:
        return novita_error(400, "INVALID_REQUEST_BODY", "query parameter 'task_id' is required")
    task = sim.engine.tasks.get(task_id)
    if task is None or task.provider != "novita":
        status = sim.config.unknown_task_status
        return novita_error(status, "TASK_NOT_FOUND", f"task {task_id} not found")
    await sim.settle_fetch(task)
    sim.record_poll(task)
    return web.json_response(result_of(sim, task))


async def balance(request: web.Request) -> web.Response:
    """Amounts are strings in 1/10000 USD, as Novita documents them."""
    units = str(round(sim_of(request).config.balance * 10_000))
    return web.json_response(
        {"availableBalance": units, "cashBalance": units, "creditLimit": "0",
         "pendingCharges": "0", "outstandingInvoices": "0"}
    )  # fmt: skip


def add_routes(app: web.Application) -> None:
    app.router.add_get("/openapi/v1/billing/balance/detail", balance)
    app.router.add_post("/v3/async/wan-i2v", submit)
    app.router.add_get("/v3/async/task-result", get_result)
