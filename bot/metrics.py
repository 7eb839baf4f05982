"""The bot's Prometheus metrics: counters this process keeps, and gauges read from the
database at scrape time (the same answer from every process).

Counters (per process; sum them across processes in Prometheus): provider requests by
provider, endpoint and status, with their latency; polls; provider callbacks by outcome.
Gauges (from the database): jobs by state and model, money held now, money settled in the
current UTC day and month, refusals today by cap. Money is in micro-dollars, as everywhere.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from storage import stats
from storage.backend import Backend

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 150.0)


def endpoint_of(provider: str, method: str, path: str) -> str:
    """A request's endpoint as a low-cardinality label (no ids, no tokens)."""
    if method == "PUT":
        return "upload"  # WaveSpeed's presigned upload
    if provider == "wavespeed":
        if path.startswith("/api/v3/predictions/"):
            return "result"
        if path == "/api/v3/media/uploads":
            return "upload_ticket"
        if path == "/api/v3/webhook/secret":
            return "webhook_secret"
        if path == "/api/v3/balance":
            return "balance"
        if method == "POST" and path.startswith("/api/v3/"):
            return "submit"
    elif provider == "novita":
        if path == "/v3/async/task-result":
            return "result"
        if method == "POST" and path.startswith("/v3/"):
            return "submit"
    return "download" if method == "GET" else "other"


class _DatabaseGauges(Collector):
    """Yields the last database snapshot taken by `Metrics.render`."""

    def __init__(self) -> None:
        self.snapshot = stats.Snapshot()
        self.runner_alive: bool | None = None

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot
        jobs = GaugeMetricFamily(
            "animatebot_jobs", "Jobs in the database by state and model", labels=["state", "model"]
        )
        for (state, model), n in sorted(snap.jobs.items()):
            jobs.add_metric([state, model], n)
        yield jobs
        yield GaugeMetricFamily(
            "animatebot_held_micros", "Money held for clips in flight (micro-dollars)",
            value=snap.held_micros,
        )  # fmt: skip
        yield GaugeMetricFamily("animatebot_holds", "Holds not yet settled or voided",
                                value=snap.holds)  # fmt: skip
        settled = GaugeMetricFamily(
            "animatebot_settled_micros",
            "Money settled for clips reserved in the current UTC period (micro-dollars)",
            labels=["period"],
        )
        for period, micros in sorted(snap.settled_micros.items()):
            settled.add_metric([period], micros)
        yield settled
        refusals = GaugeMetricFamily(
            "animatebot_refusals_today",
            "Requests refused by a cap since 00:00 UTC, by scope and cap",
            labels=["scope", "cap"],
        )
        for (scope, cap), n in sorted(snap.refusals_today.items()):
            refusals.add_metric([scope, cap], n)
        yield refusals
        if self.runner_alive is not None:
            yield GaugeMetricFamily(
                "animatebot_runner_up", "1 when this process's job runner loop is turning",
                value=1 if self.runner_alive else 0,
            )  # fmt: skip


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.provider_requests = Counter(
            "animatebot_provider_requests",
            "HTTP requests to the providers by endpoint and status ('error': no answer)",
            ["provider", "endpoint", "status"],
            registry=self.registry,
        )
        self.provider_seconds = Histogram(
            "animatebot_provider_request_seconds",
            "Time to the response headers of provider requests",
            ["provider", "endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.polls = Counter(
            "animatebot_polls", "Task status polls sent to the providers", ["provider"],
            registry=self.registry,
        )  # fmt: skip
        self.callbacks = Counter(
            "animatebot_webhooks",
            "Provider callbacks received, by outcome (applied, woken, ignored, bad_token, "
            "bad_signature, unavailable)",
            ["provider", "outcome"],
            registry=self.registry,
        )
        self._gauges = _DatabaseGauges()
        self.registry.register(self._gauges)

    def transport(self, provider: str, inner: httpx.AsyncBaseTransport) -> ObservedTransport:
        return ObservedTransport(inner, provider, self)

    def requests_sent(self, provider: str | None = None) -> int:
        """Provider requests this process sent (benchmarks cross-check them)."""
        total = 0.0
        for metric in self.registry.collect():
            if metric.name != "animatebot_provider_requests":
                continue
            for sample in metric.samples:
                if sample.name.endswith("_total") and (
                    provider is None or sample.labels["provider"] == provider
                ):
                    total += sample.value
        return int(total)

    async def render(
        self, backend: Backend, accept: str | None, *, now: float, runner_alive: bool | None
    ) -> tuple[bytes, str]:
        """The exposition for one scrape: reads the database, then encodes everything."""
        self._gauges.snapshot = await stats.snapshot(backend, now)
        self._gauges.runner_alive = runner_alive
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


class ObservedTransport(httpx.AsyncBaseTransport):
    """Counts and times every request a provider client sends, without touching the client."""

    def __init__(self, inner: httpx.AsyncBaseTransport, provider: str, metrics: Metrics) -> None:
        self._inner = inner
        self._provider = provider
        self._metrics = metrics

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        endpoint = endpoint_of(self._provider, request.method, request.url.path)
        started = time.perf_counter()
        status = "error"
        try:
            response = await self._inner.handle_async_request(request)
            status = str(response.status_code)
            return response
        finally:
            m = self._metrics
            m.provider_requests.labels(self._provider, endpoint, status).inc()
            m.provider_seconds.labels(self._provider, endpoint).observe(
                time.perf_counter() - started
            )
            if endpoint == "result":
                m.polls.labels(self._provider).inc()

    async def aclose(self) -> None:
        await self._inner.aclose()
