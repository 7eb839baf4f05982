"""The composition root: builds the database, provider clients, service and runner from
`Settings`, with one `async with` lifetime. Front doors (CLI, Discord, Slack, web) open an
`App` and use `app.service` and `app.runner`; nothing else builds these parts."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bot.callbacks import CallbackInbox, WebhookSecret
from bot.clips import ClipStore
from bot.config import Settings
from bot.database import connect
from bot.images import ImageLimits
from bot.keys import ProviderKeys, provider_keys
from bot.links import LinkSigner
from bot.media import MediaHost, SignedImageUrls, WaveSpeedUploads, choose_media_host
from bot.metrics import Metrics
from bot.runner import JobRunner
from bot.service import AnimateService
from bot.sinks import SinkRegistry
from bot.submitter import Submitter
from providers._http import DEFAULT_LIMITS, DEFAULT_TIMEOUT, EnvironmentProxies
from providers.base import VideoProvider
from providers.novita import NovitaClient
from providers.pricing import PriceTable
from providers.wavespeed import WaveSpeedClient
from storage import Database
from storage.notify import Wakeups, wakeups_for


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
    metrics: Metrics
    clips: ClipStore
    wakeups: Wakeups
    # Set when links can be signed (PUBLIC_BASE_URL or URL_SIGNING_SECRET is set):
    links: LinkSigner | None = None
    callbacks: CallbackInbox | None = None
    image_urls: SignedImageUrls | None = None
    # What a front door or sink opens for the App's lifetime (a chat API session, its
    # in-flight background work): closed first when the App closes, before the database.
    resources: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)
    keys: ProviderKeys | None = None


def build_providers(
    settings: Settings, stack: contextlib.AsyncExitStack, metrics: Metrics | None = None
) -> dict[str, Any]:
    """The provider clients whose keys are set; every request they send is counted."""
    metrics = metrics or Metrics()

    def http(provider: str) -> httpx.AsyncClient:
        # trust_env=False: the proxies of the environment are routed under the counting
        # transport (EnvironmentProxies), not mounted by httpx in front of it
        inner = EnvironmentProxies(DEFAULT_LIMITS)
        client = httpx.AsyncClient(
            timeout=DEFAULT_TIMEOUT, transport=metrics.transport(provider, inner), trust_env=False
        )
        stack.push_async_callback(client.aclose)
        return client

    providers: dict[str, Any] = {}
    if settings.wavespeed_api_key is not None:
        ws = WaveSpeedClient(
            settings.wavespeed_api_key,
            base_url=settings.wavespeed_base_url,
            http=http("wavespeed"),
        )
        providers["wavespeed"] = ws
    if settings.novita_api_key is not None:
        nv = NovitaClient(
            settings.novita_api_key, base_url=settings.novita_base_url, http=http("novita")
        )
        providers["novita"] = nv
    return providers


async def link_signer(
    settings: Settings, db: Database, clock: Callable[[], float]
) -> LinkSigner | None:
    """Signs callback, image and clip URLs, with URL_SIGNING_SECRET or else a secret made
    once and kept in the database (so every process sharing it agrees); None when the bot
    hands out no links (neither PUBLIC_BASE_URL nor URL_SIGNING_SECRET is set)."""
    if settings.url_signing_secret is not None:
        secret = settings.url_signing_secret.get_secret_value()
    elif settings.public_base_url is not None:
        secret = await db.secrets.get_or_create("url_signing", lambda: secrets.token_urlsafe(32))
    else:
        return None
    return LinkSigner(secret, settings.public_base_url, clock)


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
    metrics = Metrics()
    async with contextlib.AsyncExitStack() as stack:
        db = await connect(settings, clock=clock)
        stack.push_async_callback(db.close)
        wakeups = wakeups_for(settings.database_url, db.raw)
        stack.push_async_callback(wakeups.close)
        links = await link_signer(settings, db, clock)
        # trust_env=False: image downloads are pinned to vetted addresses; a proxy from the
        # environment must not reroute them.
        http = httpx.AsyncClient(
            trust_env=False, timeout=httpx.Timeout(settings.image_download_timeout_s)
        )
        stack.push_async_callback(http.aclose)
        providers = build_providers(settings, stack, metrics)
        keys = ProviderKeys(db.keys, provider_keys(settings))
        uploads: MediaHost | None = (
            WaveSpeedUploads(providers["wavespeed"]) if "wavespeed" in providers else None
        )
        public = links if links is not None and links.base_url is not None else None
        image_urls = SignedImageUrls(public, db.jobs, clock) if public is not None else None

        def media_host(provider: str) -> MediaHost | None:
            return choose_media_host(provider, wavespeed_uploads=uploads, signed_urls=image_urls)

        def webhook_url(job: Any) -> str | None:
            return public.webhook_url(job.provider, job.id) if public is not None else None

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
            webhook_url=webhook_url,
            keys=keys,
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
            # a new job or a cancel: this process's runner, and on PostgreSQL the others
            wake_runner=wakeups.poke,
        )
        wakeups.subscribe(runner.wake)
        clips = ClipStore(
            Path(settings.clip_dir),
            retention_days=settings.clip_retention_days,
            links=links,
            clock=clock,
        )
        callbacks = None
        if links is not None:
            ws = providers.get("wavespeed")
            secret = WebhookSecret(
                settings.wavespeed_webhook_secret.get_secret_value()
                if settings.wavespeed_webhook_secret is not None
                else None,
                ws.webhook_secret if ws is not None else None,
            )
            callbacks = CallbackInbox(
                jobs=db.jobs, runner=runner, links=links, wavespeed_secret=secret
            )
        app = App(
            settings, db, providers, sinks, service, runner, http, metrics, clips, wakeups,
            links, callbacks, image_urls, keys=keys,
        )  # fmt: skip
        await stack.enter_async_context(app.resources)
        yield app
