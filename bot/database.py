"""Opening the database from settings, with one sentence naming DATABASE_URL when it fails."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

from bot.caps import limit_defaults
from bot.config import Settings
from bot.errors import SetupError
from storage import Database, open_database


def shown_url(url: str) -> str:
    """DATABASE_URL as it may be printed: the password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, ConnectionRefusedError) or "refused" in text.lower():
        return "the connection was refused (is the database server running there?)"
    return text.rstrip(".")


async def connect(
    settings: Settings, *, migrate: bool = True, clock: Callable[[], float] = time.time
) -> Database:
    """The database with the operator's default caps; `SetupError` when it cannot be
    opened (unreachable, wrong password, no such database, a file we cannot write)."""
    try:
        return await open_database(
            settings.database_url,
            defaults=limit_defaults(settings),
            clock=clock,
            migrate=migrate,
        )
    except (OSError, sqlite3.Error, ValueError) as exc:
        raise _problem(settings.database_url, exc) from exc
    except Exception as exc:
        if type(exc).__module__.startswith("asyncpg"):  # auth, unknown database, ...
            raise _problem(settings.database_url, exc) from exc
        raise


def _problem(url: str, exc: BaseException) -> SetupError:
    return SetupError(
        f"Could not open the database at DATABASE_URL={shown_url(url)}: {_reason(exc)}; "
        "fix DATABASE_URL (in the environment or .env) or the database it points to."
    )
