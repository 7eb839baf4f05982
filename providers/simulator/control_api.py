"""The simulator's own endpoints under /_sim: scripting from another process, served media."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from aiohttp import web

from providers.simulator.appkey import sim_of
from providers.simulator.config import Fault, Outcome


def _bad(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


async def _json(request: web.Request) -> Any:
    text = await request.text()
    return json.loads(text) if text.strip() else {}


async def add_faults(request: web.Request) -> web.Response:
    sim = sim_of(request)
    try:
        body = await _json(request)
        items = body if isinstance(body, list) else [body]
        faults = [Fault.from_json(item) for item in items]
    except (ValueError, TypeError) as exc:
        return _bad(f"bad fault: {exc}")
    for fault in faults:
        sim.add_fault(fault)
    return web.json_response({"ok": True, "pending_faults": len(sim.faults)})


async def clear_faults(request: web.Request) -> web.Response:
    sim_of(request).faults.clear()
    return web.json_response({"ok": True})


async def next_outcome(request: web.Request) -> web.Response:
    try:
        outcome = Outcome.from_json(await _json(request))
    except (ValueError, TypeError) as exc:
        return _bad(f"bad outcome: {exc}")
    sim_of(request).next_outcome(outcome)
    return web.json_response({"ok": True})


async def force(request: web.Request) -> web.Response:
    sim = sim_of(request)
    task_id = request.match_info["task_id"]
    try:
        outcome = Outcome.from_json(await _json(request))
        sim.force(task_id, outcome)
    except KeyError:
        return web.json_response({"error": f"no task {task_id}"}, status=404)
    except (ValueError, TypeError) as exc:
        return _bad(f"bad outcome: {exc}")
    return web.json_response(sim.tasks[task_id].summary())


async def complete(request: web.Request) -> web.Response:
    sim = sim_of(request)
    task_id = request.match_info["task_id"]
    if task_id not in sim.tasks:
        return web.json_response({"error": f"no task {task_id}"}, status=404)
    sim.complete_now(task_id)
    return web.json_response(sim.tasks[task_id].summary())


async def show_task(request: web.Request) -> web.Response:
    sim = sim_of(request)
    task = sim.tasks.get(request.match_info["task_id"])
    if task is None:
        return web.json_response({"error": "no such task"}, status=404)
    return web.json_response(task.summary())


async def stats(request: web.Request) -> web.Response:
    return web.json_response(sim_of(request).stats_json())


async def webhooks(request: web.Request) -> web.Response:
    deliveries = [asdict(d) for d in sim_of(request).webhook_deliveries]
    return web.json_response({"deliveries": deliveries})


async def reset(request: web.Request) -> web.Response:
    sim_of(request).reset()
    return web.json_response({"ok": True})


async def expire_outputs(request: web.Request) -> web.Response:
    sim_of(request).expire_outputs()
    return web.json_response({"ok": True})


async def advance(request: web.Request) -> web.Response:
    try:
        seconds = float((await _json(request)).get("seconds", 0))
        sim_of(request).advance_clock(seconds)
    except (ValueError, TypeError, AttributeError) as exc:
        return _bad(f"body must be {{\"seconds\": <non-negative number>}}: {exc}")
    return web.json_response({"ok": True})


async def patch_config(request: web.Request) -> web.Response:
    try:
        body = await _json(request)
        if not isinstance(body, dict):
            raise TypeError("expected a JSON object of config fields")
        sim_of(request).config.update(body)
    except (ValueError, TypeError) as exc:
        return _bad(str(exc))
    return web.json_response({"ok": True})


async def output(request: web.Request) -> web.StreamResponse:
    """A task's mp4, like a CDN / presigned-S3 object: 403 once the link has expired."""
    sim = sim_of(request)
    task = sim.tasks.get(request.match_info["task_id"])
    if task is None or task.status != "completed" or task.output_expires_at is None:
        return web.Response(status=404, text="NoSuchKey: The specified key does not exist.")
    if sim.engine.unix_now() >= task.output_expires_at:
        return web.Response(status=403, text="AccessDenied: Request has expired")
    clip = await sim.media.clip_for(task.image_bytes, task.clip_seconds, sim.config.clip_mode)
    return web.Response(body=clip, content_type="video/mp4")


async def test_clip(request: web.Request) -> web.Response:
    clip = await sim_of(request).media.clip_for(None, 1.0, "static")
    return web.Response(body=clip, content_type="video/mp4")


async def media(request: web.Request) -> web.Response:
    upload = sim_of(request).media.uploads.get(request.match_info["token"])
    if upload is None or upload.data is None:
        return web.Response(status=404, text="NoSuchKey: The specified key does not exist.")
    return web.Response(body=upload.data, content_type=upload.content_type)


async def put_upload(request: web.Request) -> web.Response:
    """The presigned PUT of the ticket flow: no Authorization, but the signed headers must match."""
    sim = sim_of(request)
    upload = sim.media.uploads.get(request.match_info["token"])
    if upload is None:
        return web.Response(status=404, text="NoSuchUpload: unknown upload ticket")
    sent_type = request.headers.get("Content-Type", "")
    if sent_type.split(";")[0].strip() != upload.content_type:
        return web.Response(
            status=403, text="SignatureDoesNotMatch: Content-Type differs from the signed header"
        )
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > sim.config.upload_max_bytes:
            return web.Response(status=413, text="EntityTooLarge")
        chunks.append(chunk)
    upload.data = b"".join(chunks)
    return web.Response(status=200)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/_sim/faults", add_faults)
    r.add_delete("/_sim/faults", clear_faults)
    r.add_post("/_sim/next_outcome", next_outcome)
    r.add_post("/_sim/tasks/{task_id}/force", force)
    r.add_post("/_sim/tasks/{task_id}/complete", complete)
    r.add_get("/_sim/tasks/{task_id}", show_task)
    r.add_get("/_sim/stats", stats)
    r.add_get("/_sim/webhooks", webhooks)
    r.add_post("/_sim/reset", reset)
    r.add_post("/_sim/expire_outputs", expire_outputs)
    r.add_post("/_sim/advance", advance)
    r.add_post("/_sim/config", patch_config)
    r.add_get("/_sim/outputs/{task_id}.mp4", output)
    r.add_get("/_sim/test.mp4", test_clip)
    r.add_get("/_sim/media/{token}/{filename}", media)
    r.add_put("/_sim/uploads/{token}", put_upload)
