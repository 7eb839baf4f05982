"""WaveSpeed webhook signatures, with vectors computed independently (openssl dgst -hmac).

The provider's documented example signatures do not verify
(https://wavespeed.ai/docs/docs-api/verifying_webhook), so the
known-answer vector below was produced outside this code base:
    printf '%s' "$ID.$TS.$BODY" | openssl dgst -sha256 -hmac 'c2VjcmV0LWtleS1mb3ItdGVzdHM'
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from providers.base import TaskStatus
from providers.errors import WebhookVerificationError
from providers.webhooks import sign_wavespeed_webhook, verify_wavespeed_webhook

# The secret looks like base64 on purpose: the key is its UTF-8 text, NOT the decoded bytes.
SECRET = "whsec_c2VjcmV0LWtleS1mb3ItdGVzdHM"
TASK_ID = "45b392b22c3b449fa935bd4dc2219dfe"
TS = 1_700_000_000
BODY = (
    b'{"id":"45b392b22c3b449fa935bd4dc2219dfe","status":"completed",'
    b'"outputs":["https://cdn.example/o.mp4"]}'
)
KNOWN_HEX = "161ae97072256967771e2e8b3414a09cb87c2c262fe040ae8ed3a61181c64cfe"


def headers(signature: str, *, ts: int = TS, webhook_id: str = TASK_ID) -> dict[str, str]:
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


def test_sign_matches_independent_vector() -> None:
    assert sign_wavespeed_webhook(SECRET, TASK_ID, TS, BODY) == f"v3,{KNOWN_HEX}"


def test_key_is_secret_text_without_prefix_not_base64_decoded() -> None:
    decoded_key = base64.b64decode("c2VjcmV0LWtleS1mb3ItdGVzdHM=")
    message = f"{TASK_ID}.{TS}.".encode() + BODY
    decoded_sig = hmac.new(decoded_key, message, hashlib.sha256).hexdigest()
    prefixed_sig = hmac.new(SECRET.encode(), message, hashlib.sha256).hexdigest()
    assert decoded_sig != KNOWN_HEX
    assert prefixed_sig != KNOWN_HEX
    # The same secret given without its prefix signs identically.
    assert sign_wavespeed_webhook(SECRET.removeprefix("whsec_"), TASK_ID, TS, BODY).endswith(
        KNOWN_HEX
    )


def test_good_signature_returns_parsed_task() -> None:
    task = verify_wavespeed_webhook(headers(f"v3,{KNOWN_HEX}"), BODY, SECRET, now=TS + 10)
    assert task.provider == "wavespeed"
    assert task.task_id == TASK_ID
    assert task.status is TaskStatus.COMPLETED
    assert task.outputs == ["https://cdn.example/o.mp4"]


def test_headers_are_case_insensitive() -> None:
    mixed = {
        "Webhook-Id": TASK_ID,
        "WEBHOOK-TIMESTAMP": str(TS),
        "Webhook-Signature": f"v3,{KNOWN_HEX}",
    }
    assert verify_wavespeed_webhook(mixed, BODY, SECRET, now=TS).task_id == TASK_ID


@pytest.mark.parametrize(
    "signature",
    [
        f"v1,{'0' * 64} v3,{KNOWN_HEX}",
        f"v3,{'a' * 64} v3,{KNOWN_HEX}",
        f"v3,{KNOWN_HEX}  v3,{'b' * 64}",
        f"v3,{KNOWN_HEX.upper()}",
    ],
)
def test_several_entries_one_valid_is_accepted(signature: str) -> None:
    assert verify_wavespeed_webhook(headers(signature), BODY, SECRET, now=TS).task_id == TASK_ID


@pytest.mark.parametrize(
    "signature",
    [
        f"v3,{'0' * 64}",
        f"v1,{KNOWN_HEX}",  # right digest, wrong scheme version
        KNOWN_HEX,  # no version
        f"v3,{KNOWN_HEX[:-1]}",
        "v3,",
        f"v3,{'a' * 64} v2,{KNOWN_HEX}",
    ],
)
def test_bad_signature_is_rejected(signature: str) -> None:
    with pytest.raises(WebhookVerificationError, match="signature"):
        verify_wavespeed_webhook(headers(signature), BODY, SECRET, now=TS)


def test_tampered_body_is_rejected() -> None:
    tampered = BODY.replace(b"completed", b"failed\x20\x20")
    with pytest.raises(WebhookVerificationError, match="signature"):
        verify_wavespeed_webhook(headers(f"v3,{KNOWN_HEX}"), tampered, SECRET, now=TS)


def test_tampered_id_or_timestamp_is_rejected() -> None:
    with pytest.raises(WebhookVerificationError, match="signature"):
        verify_wavespeed_webhook(
            headers(f"v3,{KNOWN_HEX}", webhook_id="other"), BODY, SECRET, now=TS
        )
    with pytest.raises(WebhookVerificationError, match="signature"):
        verify_wavespeed_webhook(headers(f"v3,{KNOWN_HEX}", ts=TS + 1), BODY, SECRET, now=TS)


def test_wrong_secret_is_rejected() -> None:
    with pytest.raises(WebhookVerificationError, match="signature"):
        verify_wavespeed_webhook(headers(f"v3,{KNOWN_HEX}"), BODY, "whsec_other", now=TS)


@pytest.mark.parametrize("offset", [301, -301, 10_000])
def test_stale_or_future_timestamp_is_rejected(offset: int) -> None:
    with pytest.raises(WebhookVerificationError, match="300 s"):
        verify_wavespeed_webhook(headers(f"v3,{KNOWN_HEX}"), BODY, SECRET, now=TS + offset)


@pytest.mark.parametrize("offset", [300, -300, 0])
def test_timestamp_at_the_edge_is_accepted(offset: int) -> None:
    assert verify_wavespeed_webhook(headers(f"v3,{KNOWN_HEX}"), BODY, SECRET, now=TS + offset)


def test_tolerance_is_configurable() -> None:
    with pytest.raises(WebhookVerificationError):
        verify_wavespeed_webhook(
            headers(f"v3,{KNOWN_HEX}"), BODY, SECRET, now=TS + 61, tolerance_s=60
        )


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header_is_named(missing: str) -> None:
    partial = headers(f"v3,{KNOWN_HEX}")
    del partial[missing]
    with pytest.raises(WebhookVerificationError, match=missing):
        verify_wavespeed_webhook(partial, BODY, SECRET, now=TS)


def test_non_numeric_timestamp_is_rejected() -> None:
    bad = headers(f"v3,{KNOWN_HEX}")
    bad["webhook-timestamp"] = "yesterday"
    with pytest.raises(WebhookVerificationError, match="Unix seconds"):
        verify_wavespeed_webhook(bad, BODY, SECRET, now=TS)


def test_empty_secret_refuses_everything() -> None:
    for secret in ("", "whsec_"):
        with pytest.raises(WebhookVerificationError, match="secret"):
            verify_wavespeed_webhook(headers(f"v3,{KNOWN_HEX}"), BODY, secret, now=TS)


def test_signed_but_unparseable_body_is_rejected() -> None:
    for body in (b"not json", b"[1, 2]", b'{"status": "completed"}'):
        signature = sign_wavespeed_webhook(SECRET, TASK_ID, TS, body)
        with pytest.raises(WebhookVerificationError, match="body"):
            verify_wavespeed_webhook(headers(signature), body, SECRET, now=TS)


def test_failed_delivery_keeps_code_and_error() -> None:
    body = json.dumps(
        {"id": TASK_ID, "status": "failed", "code": 1200, "error": "flagged", "outputs": []}
    ).encode()
    signature = sign_wavespeed_webhook(SECRET, TASK_ID, TS, body)
    task = verify_wavespeed_webhook(headers(signature), body, SECRET, now=TS)
    assert task.status is TaskStatus.FAILED
    assert task.moderated
    assert task.error == "flagged"


def test_signature_covers_raw_bytes_not_reserialised_json() -> None:
    spaced = b'{ "id" : "45b392b22c3b449fa935bd4dc2219dfe", "status": "completed" }'
    signature = sign_wavespeed_webhook(SECRET, TASK_ID, TS, spaced)
    assert verify_wavespeed_webhook(headers(signature), spaced, SECRET, now=TS)
    compact = json.dumps(json.loads(spaced), separators=(",", ":")).encode()
    with pytest.raises(WebhookVerificationError):
        verify_wavespeed_webhook(headers(signature), compact, SECRET, now=TS)
