"""WaveSpeed's HTTP surface under /api/v3: submit, results, uploads, webhooks, balance
(https://wavespeed.ai/docs/submit-task, https://wavespeed.ai/docs/get-result)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import mimetypes
from typing import TYPE_CHECKING, Any

from aiohttp import web

from providers.simulator.appkey import sim_of
from providers.simulator.config import Outcome
from providers.simulator.engine import SimTask
from providers.simulator.validation import validate_wavespeed

if TYPE_CHECKING:
    from providers.simulator.server import Simulator

BASE64_WEBHOOK_ERROR = (
    "webhook callback does not support base64 output, please use the normal API to use "
    "base64 output"
)
UPLOAD_TYPE_ERROR = "Upload failed: invalid file type"


def envelope(data: Any, *, code: int = 200, message: str = "success") -> dict[str, Any]:
    return {"code": code, "message": message, "data": data}


def error_reply(status: int, message: str) -> web.Response:
    return web.json_response({"code": status, "message": message}, status=status)


def prediction(sim: Simulator, task: SimTask, *, status: str | None = None,
               outputs: list[str] | None = None) -> dict[str, Any]:
    """The bare prediction object: `data` of a reply, or the whole body of a webhook."""
    status = status or task.status
    data: dict[str, Any] = {
        "id": task.id,
        "model": task.model,
        "outputs": [],
        "urls": {"get": f"{sim.base_url}/api/v3/predictions/{task.id}/result"},
        "has_nsfw_contents": [],
        "status": status,
        "created_at": task.created_at,
        "error": "",
        "executionTime": 0,
        "timings": {"inference": 0},
    }
    if status == "completed":
        data["outputs"] = outputs if outputs is not None else [sim.output_url(task)]
        data["has_nsfw_contents"] = [task.outcome.nsfw] * len(data["outputs"])
        data["executionTime"] = task.inference_ms
        data["timings"] = {"inference": task.inference_ms}
    elif task.terminal:
        data["error"] = task.outcome.error
        data["code"] = task.outcome.code
    return data


async def _full_prediction(sim: Simulator, task: SimTask) -> dict[str, Any]:
    if task.base64_output and task.status == "completed":
        clip = await sim.media.clip_for(task.image_bytes, task.clip_seconds, sim.config.clip_mode)
        return prediction(sim, task, outputs=[base64.b64encode(clip).decode("ascii")])
    return prediction(sim, task)


async def read_json(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return error_reply(400, f"request body is not valid JSON: {exc}")
    if not isinstance(body, dict):
        return error_reply(400, "request body must be a JSON object")
    return body


async def submit(request: web.Request) -> web.StreamResponse:
    sim = sim_of(request)
    body = await read_json(request)
    if isinstance(body, web.Response):
        return body
    model = request.match_info["model"].strip("/")
    webhook = request.query.get("webhook") or body.get("webhook_url") or None
    base64_out = body.get("enable_base64_output") is True
    if base64_out and webhook:
        return web.json_response({"error": BASE64_WEBHOOK_ERROR}, status=400)
    problem = validate_wavespeed(model, body)
    forced = None
    if problem is not None:
        if sim.config.validation == "http400":
            return error_reply(400, problem.message)
        forced = Outcome(status="failed", code=problem.code, error=problem.message)
    duration = body.get("duration", 5)
    seconds = float(min(duration, 5)) if isinstance(duration, int | float) and duration > 0 else 5.0
    task = sim.engine.create(
        "wavespeed", model, body, webhook_url=webhook, base64_output=base64_out,
        clip_seconds=seconds, forced=forced,
    )
    sim.stats.submits["wavespeed"] += 1
    if forced is None and isinstance(body.get("image"), str):
        sim.start_fetch(task, body["image"], check_image=model in _IMAGE_MODELS)
    if body.get("enable_sync_mode") is True:
        return await _hold_until_done(sim, task)
    return web.json_response(envelope(prediction(sim, task, status="created")))


_IMAGE_MODELS = frozenset(
    {
        "wavespeed-ai/open-video/image-to-video",
        "wavespeed-ai/open-video/image-to-video-lora",
        "openai/sora-2/image-to-video",
        "wavespeed-ai/wan-2.2/i2v-480p-lora-ultra-fast",
    }
)


async def _hold_until_done(sim: Simulator, task: SimTask) -> web.StreamResponse:
    """Sync mode: answer when terminal, or 5004 (or a gateway 504) after the server's wait."""
    wait_s = sim.config.sync_wait_s * sim.config.time_scale
    if not task.terminal:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        task.waiters.append(waiter)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waiter, wait_s)
    if task.terminal:
        return web.json_response(envelope(await _full_prediction(sim, task)))
    if sim.config.sync_timeout_504:
        return web.Response(status=504, text="Gateway Timeout")
    data = prediction(sim, task, status="processing")
    data["code"] = 5004
    data["error"] = (
        f"Sync mode timed out after {sim.config.sync_wait_s:g} seconds. "
        "The prediction is still processing asynchronously."
    )
    return web.json_response(envelope(data))


async def get_result(request: web.Request) -> web.StreamResponse:
    sim = sim_of(request)
    task_id = request.match_info["task_id"]
    task = sim.engine.tasks.get(task_id)
    if task is None or task.provider != "wavespeed":
        status = sim.config.unknown_task_status
        reply: dict[str, Any] = {"code": status, "message": f"prediction {task_id} not found"}
        if status == 200:
            reply["data"] = {}
        return web.json_response(reply, status=status)
    await sim.settle_fetch(task)
    sim.record_poll(task)
    return web.json_response(envelope(await _full_prediction(sim, task)))


async def webhook_secret(request: web.Request) -> web.Response:
    sim = sim_of(request)
    return web.json_response(envelope({"secret": sim.config.webhook_secret}))


async def balance(request: web.Request) -> web.Response:
    sim = sim_of(request)
    return web.json_response(envelope({"balance": sim.config.balance}))


def _media_type(filename: str, content_type: str = "") -> str:
    kind = (content_type or mimetypes.guess_type(filename)[0] or "").split("/")[0]
    return kind if kind in ("image", "video", "audio") else "file"


def _too_large(sim: Simulator, size: int) -> web.Response:
    limit = sim.config.upload_max_bytes
    return error_reply(413, f"file too large: {size} bytes; at most {limit} bytes allowed")


async def upload_ticket(request: web.Request) -> web.Response:
    """Step one of the SDK 2.x upload: a presigned PUT target plus the final download URL."""
    sim = sim_of(request)
    body = await read_json(request)
    if isinstance(body, web.Response):
        return body
    filename, size = body.get("filename"), body.get("size")
    if not isinstance(filename, str) or not filename:
        return error_reply(400, "missing required parameter 'filename'")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return error_reply(400, "'size' must be a non-negative integer byte count")
    if size > sim.config.upload_max_bytes:
        return _too_large(sim, size)
    if not sim.media.allowed_type(filename):
        return web.json_response({"code": 500, "message": UPLOAD_TYPE_ERROR, "data": None})
    token = sim.media.new_upload(filename, str(body.get("content_type") or ""))
    upload = sim.media.uploads[token]
    return web.json_response(envelope({
        "type": _media_type(filename, upload.content_type),
        "download_url": sim.media.download_url(token),
        "filename": filename,
        "size": size,
        "upload": {
            "method": "PUT",
            "url": sim.media.upload_put_url(token),
            "headers": {"Content-Type": upload.content_type},
        },
    }))


async def upload_binary(request: web.Request) -> web.Response:
    """Legacy multipart upload (`/media/upload/binary`) and the newer `/upload` (adds `url`)."""
    sim = sim_of(request)
    if not request.content_type.startswith("multipart/"):
        return error_reply(400, "expected multipart/form-data with a 'file' field")
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if getattr(part, "name", None) != "file":
            continue
        filename = getattr(part, "filename", None) or "upload.bin"
        chunks, size = [], 0
        while chunk := await part.read_chunk():  # type: ignore[union-attr]
            size += len(chunk)
            if size > sim.config.upload_max_bytes:
                return _too_large(sim, size)
            chunks.append(chunk)
        if not sim.media.allowed_type(filename):
            return web.json_response({"code": 500, "message": UPLOAD_TYPE_ERROR, "data": None})
        ctype = part.headers.get("Content-Type", "")
        if ctype == "application/octet-stream":
            ctype = ""
        token = sim.media.new_upload(filename, ctype, b"".join(chunks))
        data = {
            "type": _media_type(filename, sim.media.uploads[token].content_type),
            "download_url": sim.media.download_url(token),
            "filename": filename,
            "size": size,
        }
        if request.path.rstrip("/") == "/api/v3/upload":
            data["url"] = data["download_url"]
        return web.json_response(envelope(data))
    return error_reply(400, "missing multipart field 'file'")


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/v3/predictions/{task_id}/result", get_result)
    r.add_get("/api/v3/predictions/{task_id}", get_result)
    r.add_get("/api/v3/webhook/secret", webhook_secret)
    r.add_get("/api/v3/balance", balance)
    r.add_post("/api/v3/media/uploads", upload_ticket)
    r.add_post("/api/v3/media/upload/binary", upload_binary)
    r.add_post("/api/v3/upload", upload_binary)
    r.add_post("/api/v3/{model:.+}", submit)
