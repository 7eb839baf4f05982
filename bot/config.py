"""Settings: the only place that reads the environment (and `.env`).

Everything else receives a `Settings` (or the values it needs) from the composition root.
Money settings are written in US dollars by the operator and converted to integer
micro-dollars here, through `Decimal`, never through floats.

`load_settings()` is how a process starts: a bad value becomes ONE sentence that names the
variable and says what is allowed (`SettingsProblem`), never a pydantic dump; and
`env_file_warnings()` names the keys in `.env` that are not settings (a misspelt
`USER_DAILY_CAP=1` would otherwise be ignored in silence).
"""

from __future__ import annotations

import difflib
import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from providers.money import usd_to_micros

ENV_FILE = ".env"
MAX_JOBS = 1_000_000  # the largest job-count cap anyone may write
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

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
        env_file=ENV_FILE, env_file_encoding="utf-8", extra="ignore", frozen=True
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
    web_port: int = Field(8080, ge=0, le=65535)  # 0: any free port (tests)
    # Hosting platforms (Heroku, Render, Fly) say which port to listen on; it wins over WEB_PORT.
    port: int | None = Field(None, ge=0, le=65535)
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
    user_concurrent_jobs: int | None = Field(2, ge=0, le=MAX_JOBS)
    server_concurrent_jobs: int | None = Field(10, ge=0, le=MAX_JOBS)
    global_concurrent_jobs: int | None = Field(None, ge=0, le=MAX_JOBS)
    user_jobs_per_hour: int | None = Field(20, ge=0, le=MAX_JOBS)
    server_jobs_per_hour: int | None = Field(None, ge=0, le=MAX_JOBS)
    global_jobs_per_hour: int | None = Field(None, ge=0, le=MAX_JOBS)

    # --- images ---
    max_image_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    image_download_timeout_s: float = Field(20.0, gt=0, le=600)
    # Tests and the simulator serve images on loopback; production must leave this off.
    allow_private_image_urls: bool = False

    # --- job runner ---
    runner_concurrency: int = Field(32, ge=1, le=10_000)  # provider requests in flight at once
    # past this a job is reconciled, not silently refunded
    job_deadline_s: float = Field(1800.0, gt=0, le=7 * 86400)
    lease_s: float = Field(60.0, gt=0, le=3600)
    time_scale: float = Field(1.0, gt=0, le=1)  # <1 compresses waits (benchmarks and tests only)

    # --- delivered clips and prepared input images, kept for links, re-rolls and retries ---
    clip_dir: str = "clips"
    clip_retention_days: int = Field(7, ge=1, le=3650)
    # Refused reservations (no money, kept so a replayed event gets the same answer) are
    # purged after this many days by `python -m bot purge`; the ledger's entries stay.
    refusal_retention_days: int = Field(30, ge=1, le=3650)

    # --- platforms ---
    # false: this process takes commands only; a `worker` process runs the jobs and delivers.
    run_worker: bool = True
    discord_token: SecretStr | None = None
    discord_api_base_url: str = "https://discord.com/api/v10"
    # Servers to sync commands to at start (instant); empty = global sync (up to an hour).
    discord_guild_ids: Annotated[tuple[int, ...], NoDecode] = ()
    discord_shards: int | None = Field(None, ge=0, le=10_000)
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
            v = tuple(part for part in re.split(r"[\s,]+", v.strip()) if part)
        for part in v if isinstance(v, tuple | list) else ():
            if not str(part).isdigit():
                raise ValueError(
                    f"DISCORD_GUILD_IDS must list server ids (numbers) separated by commas, "
                    f"and {str(part)!r} is not one: in Discord turn on Developer Mode, "
                    "right-click the server and Copy Server ID"
                )
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

    @field_validator("log_level", mode="before")
    @classmethod
    def _known_level(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = v.strip().upper()
            if v not in LOG_LEVELS:
                raise ValueError("not a log level")
        return v

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, v: str) -> str:
        if not v.startswith(("sqlite://", "postgresql://", "postgres://")):
            raise ValueError("not a database URL")
        return v

    @field_validator(
        "wavespeed_base_url", "novita_base_url", "discord_api_base_url", "slack_api_url",
    )  # fmt: skip
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("not an http(s) URL")
        return v

    @field_validator("price_overrides")
    @classmethod
    def _prices_parse(cls, v: dict[str, Any]) -> dict[str, Any]:
        from providers.pricing import PriceOverrideError, PriceTable

        try:
            PriceTable.with_overrides(v)
        except PriceOverrideError as exc:
            raise ValueError("; ".join(exc.problems)) from None
        return v


class SettingsProblem(ValueError):
    """A setting has a value the bot cannot use; the message is one sentence that names the
    variable and says what is allowed."""


# What each kind of setting accepts, in the words of `.env.example`.
_ALLOWED_BY_NAME: dict[str, str] = {
    **dict.fromkeys(_MONEY_CAPS, "a dollar amount such as 5 or 0.25 (at most 1000000000), "
                    "or none for no cap"),
    **dict.fromkeys(_COUNT_CAPS, f"a whole number of jobs from 0 to {MAX_JOBS}, or none for "
                    "no cap"),
    "database_url": "sqlite:///FILE.db (one process) or postgresql://USER:PASSWORD@HOST:5432/DB",
    "log_level": "one of " + ", ".join(LOG_LEVELS),
    "price_overrides": 'a JSON object such as {"wan-2.1": {"480p": "0.30", "720p": "0.45"}} '
                       "(see the README's Models and prices)",
    "discord_guild_ids": "server ids separated by commas, such as 123456789,987654321",
}  # fmt: skip
_ALLOWED_BY_TYPE = {
    "bool": "true or false",
    "int": "a whole number",
    "float": "a number",
    "str": "text",
}


def _allowed(name: str) -> str:
    if name in _ALLOWED_BY_NAME:
        return _ALLOWED_BY_NAME[name]
    field = Settings.model_fields.get(name)
    if field is None:
        return "a valid value"
    text = str(field.annotation)
    if "http" in name or name.endswith("_url"):
        return "an http(s) URL such as https://example.com"
    kind = next((k for k in ("bool", "float", "int") if k in text), "str")
    bounds = [
        f"{word} {getattr(m, attr)}"
        for m in field.metadata
        for attr, word in (("ge", "at least"), ("gt", "more than"), ("le", "at most"))
        if getattr(m, attr, None) is not None
    ]
    return _ALLOWED_BY_TYPE[kind] + (f" ({', '.join(bounds)})" if bounds else "")


def _shown(name: str, value: Any) -> str:
    """The offending value, unless it is secret (keys, tokens, a URL with a password)."""
    field = Settings.model_fields.get(name)
    if field is not None and "SecretStr" in str(field.annotation):
        return ""
    text = str(value)
    if "://" in text and "@" in text:
        return ""
    return f"={text[:60]!r}" if len(text) <= 60 else f"={text[:57]!r}..."


def _problem(name: str, value: Any, detail: str = "") -> str:
    why = f" ({detail})" if detail else ""
    return f"{name.upper()}{_shown(name, value)} is not allowed{why}: use {_allowed(name)}"


def describe_validation(exc: ValidationError) -> str:
    """One sentence for everything pydantic refused, each variable named once."""
    parts: list[str] = []
    seen: set[str] = set()
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else ""
        if name in seen:
            continue
        seen.add(name)
        detail = ""
        if name == "price_overrides" and error["type"] == "value_error":
            detail = str(error["msg"]).removeprefix("Value error, ")
            parts.append(f"PRICE_OVERRIDES is not usable: {detail}")
            continue
        if error["type"] == "value_error":
            detail = str(error["msg"]).removeprefix("Value error, ")
            if detail.startswith(name.upper()):  # the validator already wrote the sentence
                parts.append(detail.rstrip("."))
                continue
        parts.append(_problem(name, error.get("input"), detail))
    return "; ".join(parts) + "."


def load_settings(**values: Any) -> Settings:
    """Settings from the environment and `.env` (plus `values`), or `SettingsProblem`."""
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise SettingsProblem(describe_validation(exc)) from None
    except SettingsError as exc:
        # Raised before validation when a JSON setting is not JSON at all.
        m = re.search(r'field "(\w+)"', str(exc))
        name = m.group(1) if m else "a JSON setting"
        raise SettingsProblem(
            f"{name.upper()} is not JSON: use {_allowed(name)}."
        ) from None


def env_file_warnings(path: str | Path = ENV_FILE) -> list[str]:
    """One sentence per key in `.env` that is not a setting (it would be silently ignored)."""
    from dotenv import dotenv_values

    file = Path(path)
    if not file.is_file():
        return []
    known = {name.upper() for name in Settings.model_fields}
    out = []
    for key in dotenv_values(file):
        if key.upper() in known:
            continue
        close = difflib.get_close_matches(key.upper(), sorted(known), n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]}?)" if close else ""
        out.append(f"{file} sets {key}, which is not a setting{hint}; it is ignored")
    return out
