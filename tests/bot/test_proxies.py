"""Provider requests through an HTTP proxy named by the environment are still sent through it,
still counted and still pooled by our own transport (httpx would otherwise mount its proxy
transport in front of ours)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import httpx
import pytest

from bot.app import build_providers
from bot.metrics import Metrics
from providers._http import DEFAULT_LIMITS, EnvironmentProxies
from providers.simulator import Simulator
from tests.bot.conftest import settings_for
from tests.web.conftest import requests_for

# a host that cannot be reached without the proxy (.invalid never resolves)
UNREACHABLE = "http://provider.invalid"


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


async def test_a_provider_behind_the_environments_proxy_is_reached_and_counted(
    simulator: Simulator, tmp_path: Path, no_proxy_env: pytest.MonkeyPatch
) -> None:
    # the simulator stands in for the proxy: it gets the absolute-form request and serves it
    no_proxy_env.setenv("HTTP_PROXY", simulator.base_url)
    settings = settings_for(
        simulator, f"sqlite:///{tmp_path / 'p.db'}", wavespeed_base_url=UNREACHABLE
    )
    metrics = Metrics()
    async with contextlib.AsyncExitStack() as stack:
        providers = build_providers(settings, stack, metrics)
        balance = await providers["wavespeed"].balance_micros()
    assert balance > 0
    assert requests_for(simulator, "GET /api/v3/balance") == 1
    assert metrics.requests_sent("wavespeed") == 1


def test_no_proxy_sends_matching_hosts_direct() -> None:
    router = EnvironmentProxies(
        DEFAULT_LIMITS,
        environ={
            "HTTPS_PROXY": "http://proxy.example:3128",
            "no_proxy": "internal.example,localhost",
        },
    )
    assert router.route(httpx.URL("https://api.wavespeed.ai/api/v3/x")) == (
        "http://proxy.example:3128"
    )
    assert router.route(httpx.URL("https://files.internal.example/clip.mp4")) is None
    assert router.route(httpx.URL("https://localhost:8080/")) is None
    assert router.route(httpx.URL("http://api.wavespeed.ai/")) is None  # no HTTP_PROXY set


def test_this_machine_is_never_reached_through_a_proxy() -> None:
    router = EnvironmentProxies(DEFAULT_LIMITS, environ={"ALL_PROXY": "http://p.example:1"})
    for url in ("http://127.0.0.1:8080/", "http://localhost/", "http://[::1]:9/"):
        assert router.route(httpx.URL(url)) is None


def test_all_proxy_covers_every_scheme() -> None:
    router = EnvironmentProxies(DEFAULT_LIMITS, environ={"ALL_PROXY": "http://p.example:1"})
    assert router.route(httpx.URL("https://a.example/")) == "http://p.example:1"
    assert router.route(httpx.URL("http://a.example/")) == "http://p.example:1"
