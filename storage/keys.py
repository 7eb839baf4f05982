"""Provider keys a provider refused, shared by every process through the database.

Only a fingerprint of a key is stored (see `bot/keys.py`), never the key.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from storage.backend import Backend
from storage.models import KeyRefusal


class KeyStore:
    """Which (provider, key fingerprint) pairs were refused, when and why."""

    def __init__(self, backend: Backend, clock: Callable[[], float] = time.time) -> None:
        self._db = backend
        self._clock = clock

    async def mark_refused(
        self, provider: str, key_id: str, *, status_code: int | None, detail: str
    ) -> KeyRefusal:
        now = self._clock()
        await self._db.write(
            lambda tx: tx.execute(
                "INSERT INTO provider_keys (provider, key_id, status_code, detail, refused_at)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (provider, key_id) DO UPDATE SET"
                " status_code = excluded.status_code, detail = excluded.detail,"
                " refused_at = excluded.refused_at",
                provider, key_id, status_code, detail[:500], now,
            )
        )  # fmt: skip
        return KeyRefusal(provider, key_id, status_code, detail[:500], now)

    async def refusal(self, provider: str, key_id: str) -> KeyRefusal | None:
        row = await self._db.read(
            lambda tx: tx.fetchrow(
                "SELECT * FROM provider_keys WHERE provider = $1 AND key_id = $2",
                provider,
                key_id,
            )
        )
        if row is None:
            return None
        code = row["status_code"]
        return KeyRefusal(
            provider=row["provider"],
            key_id=row["key_id"],
            status_code=None if code is None else int(code),
            detail=row["detail"],
            refused_at=float(row["refused_at"]),
        )

    async def clear(self, provider: str, key_id: str) -> bool:
        """Forget a refusal (the key works again); True when there was one."""
        rows = await self._db.write(
            lambda tx: tx.fetch(
                "DELETE FROM provider_keys WHERE provider = $1 AND key_id = $2 RETURNING key_id",
                provider,
                key_id,
            )
        )
        return bool(rows)
