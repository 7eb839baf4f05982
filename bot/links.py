"""Signed, unguessable URLs the bot hands out: provider callbacks, input images, clips.

A token is `base64url(JSON claims) . base64url(HMAC-SHA256)`, the MAC truncated to 128 bits
and keyed per purpose from one secret, so a clip token can never pass as a callback token.
Tokens are checked in constant time before anything else happens (no database read for a
forged URL). Several `web` processes agree because they share the secret: URL_SIGNING_SECRET,
or, when it is unset, a random secret generated once and kept in the database.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Kind = Literal["hook", "image", "clip"]
MAC_BYTES = 16
_SAFE = re.compile(r"[A-Za-z0-9._-]{1,128}")


@dataclass(frozen=True)
class Claims:
    kind: Kind
    job_id: str
    item: str  # provider (hook), slot (image) or file name (clip)
    expires_at: int  # Unix seconds; 0 = no expiry of its own


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LinkSigner:
    def __init__(
        self, secret: str, base_url: str | None, clock: Callable[[], float] = time.time
    ) -> None:
        if len(secret) < 16:
            raise ValueError("the URL signing secret must be at least 16 characters")
        self._keys = {
            kind: hmac.new(secret.encode(), f"animatebot-links-v1:{kind}".encode(), "sha256")
            .digest()
            for kind in ("hook", "image", "clip")
        }
        self.base_url = base_url.rstrip("/") if base_url else None
        self._clock = clock

    def __repr__(self) -> str:
        return f"LinkSigner(base_url={self.base_url!r})"

    def token(self, kind: Kind, job_id: str, item: str, expires_at: float = 0) -> str:
        if not (_SAFE.fullmatch(job_id) and _SAFE.fullmatch(item)):
            raise ValueError(f"cannot sign {kind} link for {job_id!r}/{item!r}")
        claims = json.dumps([kind, job_id, item, int(expires_at)], separators=(",", ":"))
        body = _b64(claims.encode())
        return f"{body}.{self._mac(kind, body)}"

    def _mac(self, kind: str, body: str) -> str:
        digest = hmac.new(self._keys[kind], body.encode(), hashlib.sha256).digest()
        return _b64(digest[:MAC_BYTES])

    def verify(self, kind: Kind, token: str) -> Claims | None:
        """The claims of a genuine, unexpired token of this kind; None for anything else."""
        body, dot, mac = token.partition(".")
        if not dot or len(token) > 512:
            return None
        if not hmac.compare_digest(self._mac(kind, body).encode(), mac.encode("ascii", "replace")):
            return None
        try:
            got_kind, job_id, item, expires_at = json.loads(_unb64(body))
        except (ValueError, TypeError, binascii.Error):
            return None
        if got_kind != kind or not isinstance(expires_at, int):
            return None
        if expires_at and self._clock() >= expires_at:
            return None
        return Claims(kind, str(job_id), str(item), expires_at)

    def url(self, kind: Kind, job_id: str, item: str, expires_at: float = 0) -> str | None:
        """The public URL for a token, or None when PUBLIC_BASE_URL is not set."""
        if self.base_url is None:
            return None
        prefix = {"hook": f"hooks/{item}", "image": "i", "clip": "c"}[kind]
        return f"{self.base_url}/{prefix}/{self.token(kind, job_id, item, expires_at)}"

    def webhook_url(self, provider: str, job_id: str) -> str | None:
        """The per-job callback URL; valid for as long as the job is in flight."""
        return self.url("hook", job_id, provider)
