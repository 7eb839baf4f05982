"""The composition root: builds the database, provider clients, service and runner from
`Settings`, with one `async with` lifetime. Front doors (CLI, Discord, Slack, web) open an
`App` and use `app.service` and `app.runner`; nothing else builds these parts."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from bot.cli.ledger import limit_defaults
from bot.config import Settings
from bot.images import ImageLimits
from bot.media import MediaHost, WaveSpeedUploads, choose_media_host
from bot.runner import JobRunner
from bot.service import AnimateService
from bot.sinks import SinkRegistry
from bot.submitter import Submitter
from providers.base import VideoProvider
from providers.novita import NovitaClient
from providers.pricing import PriceTable
from providers.wavespeed import WaveSpeedClient
from storage import Database, open_database


def runner_identity() -> str:
    """Who holds a lease: readable in `jobs` output, unique per process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def image_limits(settings: Settings) -> ImageLimits:
    return ImageLimits(
        max_bytes=settings.max_image_bytes,
        timeout_s=settings.image_download_timeout_s,
        allow_private=settings.allow_private_image_urls,
    )


@dataclass
class App:
    settings: Settings
    db: Database
    providers: dict[str, VideoProvider]
    sinks: SinkRegistry
    service: AnimateService
    runner: JobRunner
    http: httpx.AsyncClient


def build_providers(settings: Settings, stack: contextlib.AsyncExitStack) -> dict[str, Any]:
    providers: dict[str, Any] = {}
    if settings.wavespeed_api_key is not None:
        ws = WaveSpeedClient(settings.wavespeed_api_key, base_url=settings.wavespeed_base_url)
        stack.push_async_callback(ws.aclose)
        providers["wavespeed"] = ws
    if settings.novita_api_key is not None:
        nv = NovitaClient(settings.novita_api_key, base_url=settings.novita_base_url)
        stack.push_async_callback(nv.aclose)
        providers["novita"] = nv
    return providers


@contextlib.asynccontextmanager
async def open_app(
    settings: Settings,
    *,
    sinks: SinkRegistry | None = None,
    owner: str | None = None,
    clock: Callable[[], float] = time.time,
) -> AsyncIterator[App]:
    """Everything wired from settings; `clock` is injectable so tests never sleep."""
    owner = owner or runner_identity()
    sinks = sinks or SinkRegistry()
    async with contextlib.AsyncExitStack() as stack:
        db = await open_database(
            settings.database_url, defaults=limit_defaults(settings), clock=clock
        )
        stack.push_async_callback(db.close)
        # trust_env=False: image downloads are pinned to vetted addresses; a proxy from the
        # environment must not reroute them.
        http = httpx.AsyncClient(
            trust_env=False, timeout=httpx.Timeout(settings.image_download_timeout_s)
        )
        stack.push_async_callback(http.aclose)
        providers = build_providers(settings, stack)
        uploads: MediaHost | None = (
            WaveSpeedUploads(providers["wavespeed"]) if "wavespeed" in providers else None
        )

        def media_host(provider: str) -> MediaHost | None:
            return choose_media_host(provider, wavespeed_uploads=uploads, signed_urls=None)

        submitter = Submitter(
            jobs=db.jobs,
            providers=providers,
            media_host=media_host,
            sinks=sinks,
            image_limits=image_limits(settings),
            http=http,
            owner=owner,
            lease_s=settings.lease_s,
            time_scale=settings.time_scale,
            clock=clock,
        )
        runner = JobRunner(
            jobs=db.jobs,
            providers=providers,
            sinks=sinks,
            submitter=submitter,
            owner=owner,
            concurrency=settings.runner_concurrency,
            lease_s=settings.lease_s,
            time_scale=settings.time_scale,
            clock=clock,
        )
        service = AnimateService(
            jobs=db.jobs,
            ledger=db.ledger,
            servers=db.servers,
            user_limits=db.ledger.defaults.user,
            prices=PriceTable.with_overrides(settings.price_overrides),
            submitter=submitter,
            sinks=sinks,
            enabled_providers=frozenset(providers),
            owner=owner,
            lease_s=settings.lease_s,
            job_deadline_s=settings.job_deadline_s,
            clock=clock,
            wake_runner=runner.wake,
        )
        yield App(settings, db, providers, sinks, service, runner, http)
