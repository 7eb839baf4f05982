"""Async WaveSpeed client: submit, poll, upload, balance, webhook secret, output download.

The protocol is WaveSpeed's (https://wavespeed.ai/docs/submit-task, /docs/get-result,
/docs/how-to-use-webhooks, /docs/docs-common-api/media-upload). What this client promises:
- `submit` is one POST, never retried. Only HTTP 200 with `data.id` is a success; a lost
  connection, a timeout, a 5xx or an unreadable 2xx all say the task may exist.
- Reads (`get`, `balance_micros`, `webhook_secret`, `download`) retry 429/5xx/lost
  connections with jittered backoff (see `providers._http.Retrier`).
- A failed task is a `ProviderTask` with status FAILED, not an exception.
- The API key is sent per request (never set on the shared `httpx.AsyncClient`), only to
  the API base URL, and is redacted from every message we build.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

import httpx

from providers._client import ProviderClient
from providers._http import (
    TRANSFER_TIMEOUT,
    UNKNOWN_OUTCOME,
    Redactor,
    as_int,
    body_text,
    error_json,
    json_object,
    parse_retry_after,
    provider_message,
    send,
)
from providers.base import ProviderTask, TaskStatus, UploadedMedia
from providers.errors import (
    InsufficientCredit,
    InvalidRequest,
    ProviderAPIError,
    ProviderServerError,
    RateLimited,
    UnexpectedResponse,
)
from providers.money import usd_to_micros_floor

log = logging.getLogger(__name__)

PROVIDER = "wavespeed"
SYNC_TIMEOUT_CODE = 5004  # sync mode gave up waiting; the task still runs (not an error)
# Sync mode holds the POST open until the task ends or the server gives up (90-120 s).
SYNC_MODE_TIMEOUT = httpx.Timeout(150.0, connect=10.0)

_STATUSES: dict[str, TaskStatus] = {
    "created": TaskStatus.QUEUED,
    "processing": TaskStatus.PROCESSING,
    "completed": TaskStatus.COMPLETED,
    "failed": TaskStatus.FAILED,
    "cancelled": TaskStatus.CANCELLED,
    "timeout": TaskStatus.TIMEOUT,
    "deleted": TaskStatus.DELETED,
}


def parse_wavespeed_task(data: Mapping[str, Any]) -> ProviderTask:
    """A prediction from an envelope's `data`, a whole envelope, or a bare webhook body.

    Unknown statuses become UNKNOWN (not terminal) with `raw_status` kept; outputs may be
    strings or objects with a `url`; `code` 0/200 means "no error".
    """
    if "id" not in data and isinstance(data.get("data"), Mapping):
        data = data["data"]
    task_id = data.get("id")
    if not isinstance(task_id, str) or not task_id.strip():
        raise UnexpectedResponse("wavespeed prediction has no task id (data.id)")
    raw_status = data.get("status")
    raw_status = raw_status if isinstance(raw_status, str) else ""
    code = as_int(data.get("code"))
    timings = data.get("timings")
    inference = as_int(timings.get("inference")) if isinstance(timings, Mapping) else None
    if inference is None:
        inference = as_int(data.get("executionTime"))
    error = data.get("error")
    return ProviderTask(
        provider=PROVIDER,
        task_id=task_id,
        status=_STATUSES.get(raw_status.strip().lower(), TaskStatus.UNKNOWN),
        raw_status=raw_status,
        outputs=_outputs(data.get("outputs")),
        nsfw=_flags(data.get("has_nsfw_contents")),
        error_code=None if code in (None, 0, 200) else code,
        error=error if isinstance(error, str) else "",
        inference_ms=inference,
    )


def _outputs(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    outputs: list[str] = []
    for item in value:
        if isinstance(item, str) and item:
            outputs.append(item)
        elif isinstance(item, Mapping) and isinstance(item.get("url"), str) and item["url"]:
            outputs.append(item["url"])
    return outputs


def _flags(value: Any) -> list[bool]:
    if not isinstance(value, list):
        return []
    return [bool(item) for item in value if isinstance(item, bool | int)]


def _is_sync_wait_expired(envelope: Mapping[str, Any]) -> bool:
    """Sync mode's "still processing" reply (code 5004) is a live task, not a failure."""
    data = envelope.get("data")
    if not isinstance(data, Mapping):
        return False
    codes = {as_int(envelope.get("code")), as_int(data.get("code"))}
    status = data.get("status")
    return SYNC_TIMEOUT_CODE in codes and status in ("created", "processing")


class WaveSpeedClient(ProviderClient):
    """WaveSpeed over one pooled `httpx.AsyncClient`; satisfies `providers.base.VideoProvider`.

    `sleep` and `rng` exist for tests: they replace the real back-off wait and its jitter.
    """

    name = PROVIDER
    default_base_url = "https://api.wavespeed.ai"
    endpoint_example = "/api/v3/openai/sora-2/image-to-video"
    log = log

    # --- tasks ---

    async def submit(
        self, endpoint: str, payload: dict[str, Any], *, webhook_url: str | None = None
    ) -> ProviderTask:
        """Create a task. One POST; never retried (the task may exist and be billed)."""
        path = self._checked_endpoint(endpoint)
        params: dict[str, str] = {}
        if webhook_url is not None:
            if not webhook_url.startswith(("http://", "https://")):
                raise ValueError("webhook_url must start with http:// or https://")
            if payload.get("enable_base64_output"):
                raise InvalidRequest(
                    "wavespeed refuses base64 output together with a webhook; "
                    "drop enable_base64_output or the webhook"
                )
            params["webhook"] = webhook_url
        response, envelope = await self._post(
            path,
            what=f"submit to {path}",
            json=payload,
            outcome_unknown=True,
            params=params,
            request_timeout=SYNC_MODE_TIMEOUT if payload.get("enable_sync_mode") is True else None,
        )
        data = envelope.get("data")
        try:
            if not isinstance(data, Mapping):
                raise UnexpectedResponse("wavespeed submit reply has no data object")
            task = parse_wavespeed_task(data)
        except UnexpectedResponse as exc:
            raise UnexpectedResponse(
                f"{exc}; {UNKNOWN_OUTCOME}",
                status_code=response.status_code,
                body=body_text(response, self._redact),
            ) from None
        log.info("wavespeed submit %s -> task %s (%s)", path, task.task_id, task.raw_status)
        return task

    async def get(self, task_id: str) -> ProviderTask:
        """The task as it is now; retried on 429/5xx/lost connections."""
        path = f"/api/v3/predictions/{_checked_id(task_id)}/result"
        envelope = await self._read(path, what=f"result of {task_id}")
        data = envelope.get("data")
        if not isinstance(data, Mapping):
            raise UnexpectedResponse(f"wavespeed result of {task_id} has no data object")
        task = parse_wavespeed_task(data)
        if task.task_id != task_id:
            raise UnexpectedResponse(
                f"wavespeed answered task {task.task_id!r} when asked for {task_id!r}"
            )
        return task

    # --- account ---

    async def balance_micros(self) -> int:
        """The wallet in micro-dollars, rounded down (the API sends a float of dollars)."""
        envelope = await self._read("/api/v3/balance", what="balance")
        data = envelope.get("data")
        value = data.get("balance") if isinstance(data, Mapping) else None
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise UnexpectedResponse("wavespeed balance reply has no data.balance number")
        try:
            usd = Decimal(str(value))
        except InvalidOperation:
            raise UnexpectedResponse(f"wavespeed balance {value!r} is not a number") from None
        if not usd.is_finite():
            raise UnexpectedResponse(f"wavespeed balance {value!r} is not a number")
        return usd_to_micros_floor(usd)

    async def webhook_secret(self) -> str:
        """The account's `whsec_...` signing secret (read from `data.secret`, else `secret`)."""
        envelope = await self._read("/api/v3/webhook/secret", what="webhook secret")
        data = envelope.get("data")
        secret = data.get("secret") if isinstance(data, Mapping) else None
        if not isinstance(secret, str):
            secret = envelope.get("secret")
        if not isinstance(secret, str) or not secret.strip():
            raise UnexpectedResponse("wavespeed webhook secret reply has no secret")
        return secret.strip()

    # --- media ---

    async def upload(self, data: bytes, *, filename: str, content_type: str) -> UploadedMedia:
        """Upload an input image; returns the `download_url` to pass as `image`.

        Ticket flow: POST /api/v3/media/uploads, then PUT the bytes to the presigned URL
        with only the ticket's headers (never our key). The ticket POST is not retried
        (uploads are quota-limited per organization and a retry could leave an orphan);
        nothing is billed per upload, so the caller may repeat the whole upload. The PUT is
        retried: same URL, same bytes, idempotent.
        """
        if not data:
            raise ValueError("cannot upload an empty file")
        if not filename.strip():
            raise ValueError("an upload needs a filename")
        _, envelope = await self._post(
            "/api/v3/media/uploads",
            what=f"upload ticket for {filename}",
            json={"filename": filename, "size": len(data), "content_type": content_type},
        )
        ticket = envelope.get("data")
        upload = ticket.get("upload") if isinstance(ticket, Mapping) else None
        download_url = ticket.get("download_url") if isinstance(ticket, Mapping) else None
        if not isinstance(upload, Mapping) or not isinstance(download_url, str) or not download_url:
            raise UnexpectedResponse("wavespeed upload ticket lacks data.upload or download_url")
        method = str(upload.get("method", "PUT")).upper()
        put_url = upload.get("url")
        if method != "PUT" or not isinstance(put_url, str) or not put_url.startswith("http"):
            raise UnexpectedResponse(
                f"wavespeed upload ticket asks for {method} to an unusable URL; expected PUT"
            )
        raw_headers = upload.get("headers")
        headers = (
            {str(k): str(v) for k, v in raw_headers.items()}
            if isinstance(raw_headers, Mapping)
            else {}
        )

        async def put_once() -> None:
            put = await send(
                self._http,
                "PUT",
                put_url,
                provider=PROVIDER,
                what=f"upload of {filename}",
                redact=self._redact,
                content=data,
                headers=headers,
                timeout=TRANSFER_TIMEOUT,
            )
            _raise_for_put(put, redact=self._redact)

        await self._retrier.call(put_once, what=f"upload of {filename}")
        size = as_int(ticket.get("size")) if isinstance(ticket, Mapping) else None
        name = ticket.get("filename") if isinstance(ticket, Mapping) else None
        return UploadedMedia(
            url=download_url,
            filename=name if isinstance(name, str) else filename,
            size=size if size is not None else len(data),
        )

    # --- plumbing ---

    def _raise_for_status(
        self, response: httpx.Response, *, what: str, outcome_unknown: bool = False
    ) -> dict[str, Any]:
        """The one place HTTP statuses and envelope codes become errors; returns the envelope.

        WaveSpeed also reports failure as HTTP 200 with an envelope `code` other than 200
        (e.g. an upload refused with code 500); the sync-mode "still processing" 5004 is not
        a failure.
        """
        status = response.status_code
        if status == 200:
            envelope = json_object(response, provider=PROVIDER, what=what, redact=self._redact)
            code = as_int(envelope.get("code"))
            if code is None or code == 200 or _is_sync_wait_expired(envelope):
                return envelope
            raise self._error(
                code, provider_message(envelope), what, response, outcome_unknown, envelope=True
            )
        message = provider_message(error_json(response))
        raise self._error(status, message, what, response, outcome_unknown, envelope=False)

    def _error(
        self,
        code: int,
        message: str,
        what: str,
        response: httpx.Response,
        outcome_unknown: bool,
        *,
        envelope: bool,
    ) -> ProviderAPIError:
        where = f"envelope code {code}" if envelope else f"HTTP {code}"
        said = f": {self._redact(message)[:500]}" if message else ""
        text = f"wavespeed {what} failed ({where}){said}"
        if code == 402 or _says_no_credit(message):
            return InsufficientCredit(
                text, status_code=code, body=body_text(response, self._redact), provider=PROVIDER
            )
        return self._status_error(
            code, text, response, outcome_unknown=outcome_unknown, envelope=envelope
        )


_NO_CREDIT_WORDS = (
    "insufficient balance",
    "insufficient credit",
    "insufficient fund",
    "not enough balance",
    "not_enough_balance",
)


def _says_no_credit(message: str) -> bool:
    """WaveSpeed documents no "wallet empty" status; recognise the usual wordings."""
    lowered = message.lower()
    return any(words in lowered for words in _NO_CREDIT_WORDS)


def _raise_for_put(response: httpx.Response, *, redact: Redactor) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    body = body_text(response, redact)
    text = f"wavespeed upload PUT failed with HTTP {status}"
    if status == 429:
        raise RateLimited(
            text, body=body, retry_after=parse_retry_after(response.headers.get("retry-after"))
        )
    if status >= 500:
        raise ProviderServerError(text, status_code=status, body=body)
    if status == 413:
        raise InvalidRequest(f"{text}: the file is too large", status_code=status, body=body)
    raise ProviderAPIError(text, status_code=status, body=body)


def _checked_id(task_id: str) -> str:
    if not task_id or not task_id.strip():
        raise ValueError("a task id is required")
    return quote(task_id, safe="")
