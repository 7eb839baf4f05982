"""What a chat server's moderators set: pause, saved LoRAs, and caps for roles.

Server ids are platform-qualified (`discord:123`, `slack:T0123`), like the ledger's scopes.
Role caps feed the ledger through `Scopes.user_defaults` (see `user_defaults_for`): for a
member without caps of their own, each cap is the most generous value among the roles that
set it, and the operator's default where no role sets it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection

from storage.backend import Backend, Tx, placeholders
from storage.ledger.limits import CAP_OF_FIELD, FIELD_OF_CAP
from storage.models import LIMIT_FIELDS, Limits, SavedLora


class ServerStore:
    """Pause flags, saved LoRAs and role caps, per chat server."""

    def __init__(self, backend: Backend, clock: Callable[[], float] = time.time) -> None:
        self._db = backend
        self._clock = clock

    # --- pause ---

    async def set_paused(self, server_id: str, paused: bool, *, by: str) -> None:
        await self._db.write(
            lambda tx: tx.execute(
                "INSERT INTO chat_servers (server_id, paused, paused_by, updated_at)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT (server_id) DO UPDATE SET"
                " paused = excluded.paused, paused_by = excluded.paused_by,"
                " updated_at = excluded.updated_at",
                server_id, 1 if paused else 0, by, self._clock(),
            )
        )

    async def is_paused(self, server_id: str) -> bool:
        value = await self._db.read(
            lambda tx: tx.fetchval(
                "SELECT paused FROM chat_servers WHERE server_id = $1", server_id
            )
        )
        return bool(value)

    # --- saved LoRAs ---

    async def save_lora(
        self, server_id: str, name: str, url: str, scale: float, *, by: str
    ) -> SavedLora:
        """Add or replace the LoRA called `name` (names are kept lower-case)."""
        key = name.strip().lower()
        await self._db.write(
            lambda tx: tx.execute(
                "INSERT INTO saved_loras (server_id, name, url, scale, created_by, updated_at)"
                " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (server_id, name) DO UPDATE SET"
                " url = excluded.url, scale = excluded.scale,"
                " created_by = excluded.created_by, updated_at = excluded.updated_at",
                server_id, key, url, float(scale), by, self._clock(),
            )
        )
        return SavedLora(server_id, key, url, float(scale), by)

    async def delete_lora(self, server_id: str, name: str) -> bool:
        rows = await self._db.write(
            lambda tx: tx.fetch(
                "DELETE FROM saved_loras WHERE server_id = $1 AND name = $2 RETURNING name",
                server_id, name.strip().lower(),
            )
        )
        return bool(rows)

    async def loras(self, server_id: str) -> list[SavedLora]:
        rows = await self._db.read(
            lambda tx: tx.fetch(
                "SELECT * FROM saved_loras WHERE server_id = $1 ORDER BY name", server_id
            )
        )
        return [
            SavedLora(r["server_id"], r["name"], r["url"], float(r["scale"]), r["created_by"])
            for r in rows
        ]

    # --- reports ---

    async def spend_rows(
        self, server_id: str, *, since: float, until: float
    ) -> list[tuple[int, str, str, int, int]]:
        """Settled spend of the server's clips reserved in [since, until), per UTC day,
        member and model: (day start, user id, model, clips, micro-dollars), in that order."""
        rows = await self._db.read(
            lambda tx: tx.fetch(
                "SELECT day_start, user_id, model, COUNT(*) AS clips,"
                " SUM(settled_micros) AS spent FROM holds"
                " WHERE server_id = $1 AND status = 'settled'"
                " AND created_at >= $2 AND created_at < $3"
                " GROUP BY day_start, user_id, model ORDER BY day_start, user_id, model",
                server_id, float(since), float(until),
            )
        )
        return [
            (int(r["day_start"]), r["user_id"], r["model"], int(r["clips"]), int(r["spent"]))
            for r in rows
        ]

    # --- role caps ---

    async def set_role_limits(
        self, server_id: str, role_id: str, **changes: int | str | None
    ) -> dict[str, int | None]:
        """Set caps of a role: values are micro-dollars / counts, None = no cap, "default" =
        the role no longer sets that cap. Keys: `Limits` field names. Returns what the role
        sets now."""
        for name in changes:
            if name not in LIMIT_FIELDS:
                raise ValueError(f"unknown cap {name!r}; caps are: {', '.join(LIMIT_FIELDS)}")
        now = self._clock()

        async def run(tx: Tx) -> dict[str, int | None]:
            for name, value in changes.items():
                cap = CAP_OF_FIELD[name]
                if value == "default":
                    await tx.execute(
                        "DELETE FROM role_limits"
                        " WHERE server_id = $1 AND role_id = $2 AND cap = $3",
                        server_id, role_id, cap,
                    )  # fmt: skip
                    continue
                await tx.execute(
                    "INSERT INTO role_limits (server_id, role_id, cap, value, updated_at)"
                    " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (server_id, role_id, cap)"
                    " DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                    server_id, role_id, cap, value, now,
                )  # fmt: skip
            return (await _role_caps(tx, server_id, [role_id])).get(role_id, {})

        return await self._db.write(run)

    async def role_limits(self, server_id: str) -> dict[str, dict[str, int | None]]:
        """Every role of the server that sets a cap: role id -> {Limits field: value}."""
        return await self._db.read(lambda tx: _role_caps(tx, server_id, None))

    async def user_defaults_for(
        self, server_id: str, role_ids: Collection[str], base: Limits
    ) -> Limits | None:
        """A member's default caps from their roles (None: no role sets any cap).

        Per cap, the most generous value among the member's roles that set it (no cap beats
        any number); caps no role sets keep `base`, the operator's default.
        """
        if not role_ids:
            return None
        by_role = await self._db.read(lambda tx: _role_caps(tx, server_id, list(role_ids)))
        if not by_role:
            return None
        merged: dict[str, int | None] = {}
        for caps in by_role.values():
            for name, value in caps.items():
                if name not in merged:
                    merged[name] = value
                elif merged[name] is not None:
                    merged[name] = None if value is None else max(value, merged[name] or 0)
        return Limits(**{f: merged.get(f, getattr(base, f)) for f in LIMIT_FIELDS})


async def _role_caps(
    tx: Tx, server_id: str, role_ids: list[str] | None
) -> dict[str, dict[str, int | None]]:
    sql = "SELECT role_id, cap, value FROM role_limits WHERE server_id = $1"
    args: list[object] = [server_id]
    if role_ids is not None:
        sql += f" AND role_id IN ({placeholders(2, len(role_ids))})"
        args.extend(role_ids)
    out: dict[str, dict[str, int | None]] = {}
    for r in await tx.fetch(sql + " ORDER BY role_id, cap", *args):
        value = r["value"]
        out.setdefault(r["role_id"], {})[FIELD_OF_CAP[r["cap"]]] = (
            None if value is None else int(value)
        )
    return out
