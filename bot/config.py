"""Settings: the only place that reads the environment (and `.env`).

Everything else receives a `Settings` (or the values it needs) from the composition root.
Money settings are written in US dollars by the operator and converted to integer
micro-dollars here, through `Decimal`, never through floats.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from providers.money import usd_to_micros

# The cap fields of `Settings`, named once for its validators (pydantic refuses a misspelt one).
_MONEY_CAPS = (
    "user_daily_cap_usd",
    "user_monthly_cap_usd",
    "server_daily_cap_usd",
    "server_monthly_cap_usd",
    "global_daily_cap_usd",
    "global_monthly_cap_usd",
)
_COUNT_CAPS = (
    "user_concurrent_jobs",
    "server_concurrent_jobs",
    "global_concurrent_jobs",
    "user_jobs_per_hour",
    "server_jobs_per_hour",
    "global_jobs_per_hour",
)


class Settings(BaseSettings):
    """Operator configuration. Each field is an environment variable of the same name."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    # --- storage ---
    database_url: str = "sqlite:///animatebot.db"

    # --- providers ---
    wavespeed_api_key: SecretStr | None = None
    novita_api_key: SecretStr | None = None
    wavespeed_base_url: str = "https://api.wavespeed.ai"
    novita_base_url: str = "https://api.novita.ai"
    # Secret for WaveSpeed webhook signatures (whsec_...); fetched from the API when unset.
    wavespeed_webhook_secret: SecretStr | None = None
    # JSON: per-model price overrides, e.g. {"wan-2.1": {"480p": "0.30", "720p": "0.45"}}.
    price_overrides: dict[str, Any] = Field(default_factory=dict)

    # --- the bot's own HTTP endpoint (webhooks, signed image URLs for Novita) ---
    public_base_url: str | None = None
    web_host: str = "127.0.0.1"
    web_port: int = 8080
    # Hosting platforms (Heroku, Render, Fly) say which port to listen on; it wins over WEB_PORT.
    port: int | None = None
    # Signs the short-lived image URLs and webhook tokens; set it in production.
    url_signing_secret: SecretStr | None = None
    # When set, /metrics answers only `Authorization: Bearer <token>` (the endpoint faces the
    # internet when providers call it back; metrics show money).
    metrics_token: SecretStr | None = None

    # --- default caps (USD; empty = no cap). Overrides live in the database. ---
    user_daily_cap_usd: Decimal | None = Decimal("5")
    user_monthly_cap_usd: Decimal | None = Decimal("50")
    server_daily_cap_usd: Decimal | None = Decimal("50")
    server_monthly_cap_usd: Decimal | None = Decimal("500")
    global_daily_cap_usd: Decimal | None = None
    global_monthly_cap_usd: Decimal | None = None
    user_concurrent_jobs: int | None = 2
    server_concurrent_jobs: int | None = 10
    global_concurrent_jobs: int | None = None
    user_jobs_per_hour: int | None = 20
    server_jobs_per_hour: int | None = None
    global_jobs_per_hour: int | None = None

    # --- images ---
    max_image_bytes: int = 10 * 1024 * 1024
    image_download_timeout_s: float = 20.0
    # Tests and the simulator serve images on loopback; production must leave this off.
    allow_private_image_urls: bool = False

    # --- job runner ---
    runner_concurrency: int = 32  # provider requests in flight at once
    job_deadline_s: float = 1800.0  # past this a job is reconciled, not silently refunded
    lease_s: float = 60.0
    time_scale: float = 1.0  # <1 compresses waits (benchmarks and tests only)

    # --- delivered clips and prepared input images, kept for links, re-rolls and retries ---
    clip_dir: str = "clips"
    clip_retention_days: int = 7

    # --- platforms ---
    # false: this process takes commands only; a `worker` process runs the jobs and delivers.
    run_worker: bool = True
    discord_token: SecretStr | None = None
    discord_api_base_url: str = "https://discord.com/api/v10"
    # Servers to sync commands to at start (instant); empty = global sync (up to an hour).
    discord_guild_ids: Annotated[tuple[int, ...], NoDecode] = ()
    discord_shards: int | None = None
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"

    log_level: str = "WARNING"  # INFO shows each job step in the logs

    @field_validator(
        "wavespeed_api_key",
        "novita_api_key",
        "wavespeed_webhook_secret",
        "url_signing_secret",
        "metrics_token",
        "discord_token",
        "slack_bot_token",
        "slack_signing_secret",
        "slack_app_token",
        "public_base_url",
        "port",
        "discord_shards",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, v: Any) -> Any:
        """`KEY=` in .env means "not set", not an empty key that every request would fail on."""
        if isinstance(v, str) and not v.strip():
            return None
        return v

    @field_validator("public_base_url")
    @classmethod
    def _absolute_url(cls, v: str | None) -> str | None:
        """Providers call this back: an absolute http(s) URL, without a query."""
        if v is None:
            return v
        v = v.strip().rstrip("/")
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", v):
            raise ValueError(
                f"PUBLIC_BASE_URL must be an absolute http(s) URL such as "
                f"https://bot.example.com, not {v!r}"
            )
        return v

    @field_validator("url_signing_secret")
    @classmethod
    def _long_enough(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and len(v.get_secret_value()) < 16:
            raise ValueError(
                "URL_SIGNING_SECRET must be at least 16 characters (e.g. the output of "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`), or unset"
            )
        return v

    @field_validator("discord_guild_ids", mode="before")
    @classmethod
    def _comma_list(cls, v: Any) -> Any:
        """`DISCORD_GUILD_IDS=123,456` (commas or spaces), as operators write lists."""
        if isinstance(v, str):
            return tuple(part for part in re.split(r"[\s,]+", v.strip()) if part)
        return v

    @field_validator(*_MONEY_CAPS, *_COUNT_CAPS, mode="before")
    @classmethod
    def _empty_is_none(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip().lower() in {"", "none", "off", "unlimited"}:
            return None
        return v

    @field_validator(*_MONEY_CAPS)
    @classmethod
    def _exact_money(cls, v: Decimal | None) -> Decimal | None:
        if v is not None:
            if v < 0:
                raise ValueError("a cap cannot be negative")
            usd_to_micros(v)
        return v
