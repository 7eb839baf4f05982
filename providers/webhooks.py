"""WaveSpeed webhook signatures: sign (for the simulator) and verify (for the bot's endpoint).

The scheme, from WaveSpeed's "verifying webhooks" page:
`hex(HMAC_SHA256(key, f"{webhook-id}.{webhook-timestamp}.{raw body}"))`, sent as
`webhook-signature: v3,<hex>`. The key is the secret with its `whsec_` prefix removed, used
as UTF-8 bytes (NOT base64-decoded as in Svix / Standard Webhooks). The doc's own example
signatures do not verify, so the tests use vectors computed here, cross-checked by hand.

Novita webhooks are unsigned; see `providers.novita.novita_webhook_task_id`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping

from providers.base import ProviderTask
from providers.errors import ProviderAPIError, WebhookVerificationError
from providers.wavespeed import parse_wavespeed_task

SIGNATURE_VERSION = "v3"
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
DEFAULT_TOLERANCE_S = 300  # WaveSpeed's WebhookMaxAgeSeconds


def _signing_key(secret: str) -> bytes:
    return secret.removeprefix(SECRET_PREFIX).encode("utf-8")


def _digest(secret: str, webhook_id: str, timestamp: int | str, body: bytes) -> str:
    message = f"{webhook_id}.{timestamp}.".encode() + body
    return hmac.new(_signing_key(secret), message, hashlib.sha256).hexdigest()


def sign_wavespeed_webhook(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value for these exact body bytes: "v3,<hex>"."""
    return f"{SIGNATURE_VERSION},{_digest(secret, webhook_id, timestamp, body)}"


def verify_wavespeed_webhook(
    headers: Mapping[str, str],
    body: bytes,
    secret: str,
    *,
    now: float | None = None,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> ProviderTask:
    """Check a delivery's signature and freshness, then parse the task from the bare body.

    Raises `WebhookVerificationError` for anything that must not be trusted. The freshness
    window rejects replays of old deliveries; the body's task should still be treated as a
    hint that is idempotent to apply (the provider may deliver twice).
    """
    if not secret or not secret.removeprefix(SECRET_PREFIX):
        raise WebhookVerificationError("no WaveSpeed webhook secret is configured")
    lowered = {key.lower(): value for key, value in headers.items()}
    webhook_id = lowered.get("webhook-id", "").strip()
    raw_timestamp = lowered.get("webhook-timestamp", "").strip()
    signature_header = lowered.get("webhook-signature", "").strip()
    missing = [
        name
        for name, value in (
            ("webhook-id", webhook_id),
            ("webhook-timestamp", raw_timestamp),
            ("webhook-signature", signature_header),
        )
        if not value
    ]
    if missing:
        raise WebhookVerificationError(f"webhook is missing header(s): {', '.join(missing)}")
    try:
        timestamp = int(raw_timestamp)
    except ValueError:
        raise WebhookVerificationError(
            f"webhook-timestamp must be whole Unix seconds, got {raw_timestamp[:40]!r}"
        ) from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise WebhookVerificationError(
            f"webhook timestamp is {int(current - timestamp)} s away from now; "
            f"at most {tolerance_s} s is accepted"
        )
    expected = _digest(secret, webhook_id, raw_timestamp, body)
    if not _any_signature_matches(signature_header, expected):
        raise WebhookVerificationError("webhook signature does not match")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookVerificationError("webhook body is not JSON") from None
    if not isinstance(data, Mapping):
        raise WebhookVerificationError("webhook body is not a JSON object")
    try:
        return parse_wavespeed_task(data)
    except ProviderAPIError as exc:
        raise WebhookVerificationError(f"webhook body is not a prediction: {exc}") from None


def _any_signature_matches(header: str, expected_hex: str) -> bool:
    """Accept several space-separated "v3,<hex>" entries (key rotation), in constant time."""
    matched = False
    expected = expected_hex.encode("ascii")
    for entry in header.split():
        version, _, candidate = entry.partition(",")
        if version != SIGNATURE_VERSION or not candidate:
            continue
        # No early exit: the time taken does not reveal which entry matched.
        if hmac.compare_digest(candidate.lower().encode("utf-8", "replace"), expected):
            matched = True
    return matched
