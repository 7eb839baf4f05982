"""Provider API keys the provider refused: stop submitting until the key changes.

A 401/403 from a provider means its key is wrong, revoked or not yet active; every further
submit would fail the same way, so the first refusal is recorded in the database under the
provider and a fingerprint of the key, and from then on every process that runs with that
same key refuses that provider's models before reserving anything (and the runner fails the
queued jobs without a POST). A process started with another key has another fingerprint and
is not affected. `python -m bot doctor` makes one authenticated call per key and forgets the
refusal when the key works again (a WaveSpeed key starts working after the first top-up).

The fingerprint is a truncated SHA-256 of the key: enough to tell keys apart, useless for
recovering one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pydantic import SecretStr

if TYPE_CHECKING:
    from bot.config import Settings
    from storage import KeyRefusal, KeyStore

PROVIDER_NAMES = {"wavespeed": "WaveSpeed", "novita": "Novita"}
KEY_SETTINGS = {"wavespeed": "WAVESPEED_API_KEY", "novita": "NOVITA_API_KEY"}


def provider_keys(settings: Settings) -> dict[str, SecretStr]:
    """The provider keys that are set, by provider."""
    keys = {"wavespeed": settings.wavespeed_api_key, "novita": settings.novita_api_key}
    return {name: key for name, key in keys.items() if key is not None}


def key_id(provider: str, key: SecretStr) -> str:
    """A short one-way fingerprint of a provider key (stored in place of the key)."""
    data = f"animatebot\0{provider}\0{key.get_secret_value()}".encode()
    return hashlib.sha256(data).hexdigest()[:16]


def key_refused_message(provider: str, status_code: int | None) -> str:
    """The one sentence for everyone: which provider, which setting, and that a retry is
    pointless until the operator acts."""
    name = PROVIDER_NAMES.get(provider, provider)
    setting = KEY_SETTINGS.get(provider, "the provider's API key setting")
    how = f" (HTTP {status_code})" if status_code else ""
    return (
        f"{name} refused the bot's API key{how}, so no clip can start there until the "
        f"operator fixes {setting} and runs `python -m bot doctor`."
    )


class ProviderKeys:
    """This process's provider keys and what the database says about them."""

    def __init__(self, store: KeyStore, keys: Mapping[str, SecretStr]) -> None:
        self.store = store
        self._ids = {provider: key_id(provider, key) for provider, key in keys.items()}

    async def refusal(self, provider: str) -> KeyRefusal | None:
        """The recorded refusal of our key for `provider`, if any."""
        kid = self._ids.get(provider)
        return None if kid is None else await self.store.refusal(provider, kid)

    async def first_refusal(self, providers: list[str]) -> KeyRefusal | None:
        for provider in dict.fromkeys(providers):
            found = await self.refusal(provider)
            if found is not None:
                return found
        return None

    async def refused(self, provider: str, *, status_code: int | None, detail: str) -> None:
        kid = self._ids.get(provider)
        if kid is not None:
            await self.store.mark_refused(provider, kid, status_code=status_code, detail=detail)

    async def accepted(self, provider: str) -> bool:
        """The key works (again); True when a refusal was forgotten."""
        kid = self._ids.get(provider)
        return kid is not None and await self.store.clear(provider, kid)
