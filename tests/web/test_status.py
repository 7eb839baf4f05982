"""/healthz and /metrics, and routes mounted by other front doors."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from bot.app import App
from bot.errors import QuotaRefused
from providers.simulator import Simulator
from storage import JobStatus


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample, keyed by name and sorted labels (prometheus-client's own parser)."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def sample(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_healthz_is_ok_with_a_database_and_a_turning_runner(
    endpoint: Callable[..., Any],
) -> None:
    async with endpoint() as ep:
        await ep.app.runner.run_once()  # any awaited turn lets the loop start
        ok = await ep.get("/healthz")
        ep.app.runner.beat = time.monotonic() - 3600  # a loop stuck for an hour
        stalled = await ep.get("/healthz")
    assert ok.status_code == 200 and ok.json()["checks"]["database"] == "ok"
    assert stalled.status_code == 503
    assert "stalled" in stalled.json()["checks"]["runner"]


async def test_healthz_says_when_the_database_is_gone(
    endpoint: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    async with endpoint(runner=False) as ep:
        await ep.app.db.close()  # really closed: every query now fails
        response = await ep.get("/healthz")

        async def closed_already() -> None:
            return None

        monkeypatch.setattr(ep.app.db.raw, "close", closed_already)
    body = response.json()
    assert response.status_code == 503 and body["status"] == "unhealthy"
    assert body["checks"]["database"].startswith("unreachable")
    assert body["checks"]["runner"] == "not run in this process"
    assert "sqlite" not in response.text and "postgres" not in response.text  # no URL leaks


async def test_metrics_parse_and_move_with_the_jobs(
    endpoint: Callable[..., Any], simulator: Simulator, png_file: Path
) -> None:
    async with endpoint() as ep:
        before = parse((await ep.get("/metrics")).text)
        job = await ep.animate(png_file)
        held = parse((await ep.get("/metrics")).text)
        simulator.complete_now(job.provider_task_id)
        await ep.delivered(job.id)
        await ep.app.db.ledger.set_limits("user", "cli:bob", daily_micros=1)
        with pytest.raises(QuotaRefused):
            await ep.app.service.animate(
                (await _request(ep, png_file)).model_copy(update={"user_id": "bob"})
            )
        after_response = await ep.get("/metrics")
    after = parse(after_response.text)
    assert after_response.headers["content-type"].startswith("text/plain")
    assert sample(before, "animatebot_held_micros") == 0
    assert sample(held, "animatebot_held_micros") == job.cost_micros
    assert sample(held, "animatebot_jobs", state="submitted", model="openvideo") == 1
    assert sample(after, "animatebot_jobs", state="delivered", model="openvideo") == 1
    assert sample(after, "animatebot_held_micros") == 0
    assert sample(after, "animatebot_settled_micros", period="day") == job.cost_micros
    assert sample(after, "animatebot_settled_micros", period="month") == job.cost_micros
    assert sample(after, "animatebot_refusals_today", scope="user", cap="daily") == 1
    for endpoint_name in ("upload_ticket", "upload", "submit", "download"):
        labels = {"provider": "wavespeed", "endpoint": endpoint_name, "status": "200"}
        assert sample(before, "animatebot_provider_requests_total", **labels) == 0
        assert sample(after, "animatebot_provider_requests_total", **labels) == 1
    assert sample(after, "animatebot_webhooks_total", provider="wavespeed",
                  outcome="applied") == 1  # fmt: skip
    assert sample(after, "animatebot_polls_total", provider="wavespeed") == 0
    count = "animatebot_provider_request_seconds_count"
    assert sample(after, count, provider="wavespeed", endpoint="submit") == 1
    assert sample(after, "animatebot_runner_up") == 1


async def _request(ep: Any, png: Path) -> Any:
    from bot.models import AnimateRequest, ImageSource

    return AnimateRequest(
        platform="cli", event_id="refused-1", user_id="alice", image=ImageSource(path=str(png)),
        prompt="p", model="openvideo", options={"duration": 5}, sink={"kind": "file"},
    )  # fmt: skip


async def test_polls_are_counted(
    endpoint: Callable[..., Any], simulator: Simulator, png_file: Path
) -> None:
    async with endpoint(runner=False, public=False) as ep:
        job = await ep.animate(png_file)
        await ep.app.db.jobs.update(job.id, next_check_at=0)
        await ep.app.runner.run_once()
        text = (await ep.get("/metrics")).text
    assert sample(parse(text), "animatebot_polls_total", provider="wavespeed") == 1
    assert simulator.stats.polls[job.provider_task_id] == 1
    assert job.status is JobStatus.SUBMITTED


async def test_front_doors_mount_their_own_routes(endpoint: Callable[..., Any]) -> None:
    seen: list[App] = []

    def ping_routes(app: App) -> Sequence[web.RouteDef]:
        seen.append(app)

        async def ping(request: web.Request) -> web.Response:
            return web.Response(text=f"pong from {app.runner.owner}")

        return [web.post("/slack/events", ping)]

    async with endpoint(runner=False, routes=[ping_routes]) as ep:
        response = await ep.post("/slack/events", content=b"{}")
        assert seen == [ep.app]
    assert response.status_code == 200 and response.text == "pong from web-test"
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_metrics_can_require_a_token(endpoint: Callable[..., Any]) -> None:
    async with endpoint(runner=False, metrics_token="scrape-me-please-0123") as ep:
        none = await ep.get("/metrics")
        wrong = await ep.get("/metrics", headers={"Authorization": "Bearer nope"})
        right = await ep.get(
            "/metrics", headers={"Authorization": "Bearer scrape-me-please-0123"}
        )
        health = await ep.get("/healthz")
    assert none.status_code == 401 and wrong.status_code == 401
    assert "scrape-me" not in none.text + wrong.text
    assert right.status_code == 200 and "animatebot_jobs" in right.text
    assert health.status_code == 200  # health stays open for load balancers


async def test_tokens_never_reach_the_access_log(
    endpoint: Callable[..., Any], png_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.web.access")
    async with endpoint(runner=False) as ep:
        link = ep.app.clips.keep("job9", b"clip", "job9.mp4")
        assert link is not None
        token = link.rsplit("/", 1)[1]
        assert (await ep.get(f"/c/{token}")).status_code == 200
        assert (await ep.post(f"/hooks/novita/{token}", content=b"{}")).status_code == 404
    logged = caplog.text
    assert "/c/{token}" in logged and "/hooks/novita/{token}" in logged
    assert token not in logged


async def test_oversized_bodies_are_refused(endpoint: Callable[..., Any]) -> None:
    async with endpoint(runner=False) as ep:
        links = ep.app.links
        assert links is not None
        hook = links.webhook_url("novita", "job1")
        assert hook is not None
        response = await ep.post(hook.removeprefix(ep.url), content=b"x" * (2 * 1024 * 1024))
    assert response.status_code == 413
