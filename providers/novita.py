"""Async Novita client for the async task API (`wan-i2v`): submit, poll, output download.

Protocol facts are in PROVIDERS.md §1.2. Same promises as the WaveSpeed client: one POST per
submit (never retried), reads retried with jittered backoff, a failed task returned (not
raised), the key only ever in the Authorization header of requests to the API base URL.
Novita webhooks are unsigned: `novita_webhook_task_id` reads only the task id from one, and
the caller re-fetches the task before believing anything.
"""

from __future__ import annotations

import copy
import json
import logging
import random
import re
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import SecretStr

from providers._http import (
    UNKNOWN_OUTCOME,
    Redactor,
    Retrier,
    Sleep,
    as_int,
    as_secret,
    body_text,
    json_object,
    make_http_client,
    parse_retry_after,
    send,
)
from providers._http import download as download_output
from providers.base import ProviderTask, TaskStatus
from providers.errors import (
    AuthenticationError,
    InsufficientCredit,
    InvalidRequest,
    NotFound,
    ProviderAPIError,
    ProviderServerError,
    RateLimited,
    UnexpectedResponse,
)

log = logging.getLogger(__name__)

PROVIDER = "novita"
WEBHOOK_EVENT = "ASYNC_TASK_RESULT"

_STATUSES: dict[str, TaskStatus] = {
    "TASK_STATUS_QUEUED": TaskStatus.QUEUED,
    "TASK_STATUS_PROCESSING": TaskStatus.PROCESSING,
    "TASK_STATUS_SUCCEED": TaskStatus.COMPLETED,
    "TASK_STATUS_FAILED": TaskStatus.FAILED,
}
# Task ids are UUIDs in practice; anything outside this shape in an unsigned body is ignored.
_TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")


def parse_novita_task(data: Mapping[str, Any]) -> ProviderTask:
    """A task from a task-result reply (or a webhook's `payload`, which has the same shape).

    Numeric fields may arrive as strings (`video_url_ttl: "3600"`); both are accepted.
    Statuses outside the four documented ones become UNKNOWN, not an error.
    """
    task = data.get("task")
    if not isinstance(task, Mapping):
        raise UnexpectedResponse("novita task result has no task object")
    task_id = task.get("task_id")
    if not isinstance(task_id, str) or not task_id.strip():
        raise UnexpectedResponse("novita task result has no task.task_id")
    raw_status = task.get("status")
    raw_status = raw_status if isinstance(raw_status, str) else ""
    reason = task.get("reason")
    outputs: list[str] = []
    ttls: list[int] = []
    videos = data.get("videos")
    for video in videos if isinstance(videos, list) else []:
        if not isinstance(video, Mapping):
            continue
        url = video.get("video_url")
        if isinstance(url, str) and url:
            outputs.append(url)
            ttl = as_int(video.get("video_url_ttl"))
            if ttl is not None:
                ttls.append(ttl)
    return ProviderTask(
        provider=PROVIDER,
        task_id=task_id,
        status=_STATUSES.get(raw_status.strip().upper(), TaskStatus.UNKNOWN),
        raw_status=raw_status,
        outputs=outputs,
        error=reason if isinstance(reason, str) else "",
        progress_percent=as_int(task.get("progress_percent")),
        eta_s=as_int(task.get("eta")),
        output_ttl_s=min(ttls) if ttls else None,
    )


def novita_webhook_task_id(body: bytes) -> str | None:
    """The task id from a Novita webhook body, or None when it is not a task-result event.

    The body is UNTRUSTED (Novita signs nothing): use the id only to re-fetch the task with
    `NovitaClient.get`, and only after checking the unguessable token in the webhook URL.
    """
    try:
        event = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(event, Mapping) or event.get("event_type") != WEBHOOK_EVENT:
        return None
    payload = event.get("payload")
    task = payload.get("task") if isinstance(payload, Mapping) else None
    task_id = task.get("task_id") if isinstance(task, Mapping) else None
    if isinstance(task_id, str) and _TASK_ID.fullmatch(task_id):
        return task_id
    return None


class NovitaClient:
    """Novita over one pooled `httpx.AsyncClient`; satisfies `providers.base.VideoProvider`.

    `sleep` and `rng` exist for tests: they replace the real back-off wait and its jitter.
    """

    name = PROVIDER

    def __init__(
        self,
        api_key: str | SecretStr,
        *,
        base_url: str = "https://api.novita.ai",
        http: httpx.AsyncClient | None = None,
        timeout: httpx.Timeout | None = None,
        max_retries: int = 3,
        max_retry_wait_s: float = 60.0,
        sleep: Sleep | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._key = as_secret(api_key)
        self._redact = Redactor(self._key)
        self.base_url = base_url.rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        self._owns_http = http is None
        self._http = http or make_http_client(timeout)
        self._timeout = timeout
        self._retrier = Retrier(
            provider=PROVIDER,
            max_retries=max_retries,
            max_wait_s=max_retry_wait_s,
            sleep=sleep,
            rng=rng,
            logger=log,
        )

    def __repr__(self) -> str:
        return f"NovitaClient(base_url={self.base_url!r})"

    async def __aenter__(self) -> NovitaClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def submit(
        self, endpoint: str, payload: dict[str, Any], *, webhook_url: str | None = None
    ) -> ProviderTask:
        """Create a task (e.g. endpoint "/v3/async/wan-i2v"). One POST; never retried.

        The webhook goes in `extra.webhook.url`; the caller's payload is not modified.
        """
        if not endpoint.startswith("/") or endpoint.startswith("//") or "://" in endpoint:
            raise ValueError(f"endpoint must be a path such as /v3/async/wan-i2v, got {endpoint!r}")
        body = payload
        if webhook_url is not None:
            if not webhook_url.startswith(("http://", "https://")):
                raise ValueError("webhook_url must start with http:// or https://")
            body = copy.deepcopy(payload)
            extra = body.get("extra")
            extra = dict(extra) if isinstance(extra, Mapping) else {}
            webhook = extra.get("webhook")
            webhook = dict(webhook) if isinstance(webhook, Mapping) else {}
            webhook["url"] = webhook_url
            extra["webhook"] = webhook
            body["extra"] = extra
        what = f"submit to {endpoint}"
        response = await send(
            self._http,
            "POST",
            self.base_url + endpoint,
            provider=PROVIDER,
            what=what,
            redact=self._redact,
            outcome_unknown=True,
            json=body,
            headers=self._headers(json_body=True),
            **self._timeout_kw(),
        )
        reply = self._raise_for_status(response, what=what, outcome_unknown=True)
        task_id = reply.get("task_id")
        if not isinstance(task_id, str) or not task_id.strip():
            raise UnexpectedResponse(
                f"novita {what} reply has no task_id; {UNKNOWN_OUTCOME}",
                status_code=response.status_code,
                body=body_text(response, self._redact),
            )
        log.info("novita submit %s -> task %s", endpoint, task_id)
        return ProviderTask(provider=PROVIDER, task_id=task_id, status=TaskStatus.QUEUED)

    async def get(self, task_id: str) -> ProviderTask:
        """The task as it is now; retried on 429/5xx/lost connections."""
        if not task_id or not task_id.strip():
            raise ValueError("a task id is required")
        what = f"result of {task_id}"

        async def once() -> dict[str, Any]:
            response = await send(
                self._http,
                "GET",
                self.base_url + "/v3/async/task-result",
                provider=PROVIDER,
                what=what,
                redact=self._redact,
                params={"task_id": task_id},
                headers=self._headers(),
                **self._timeout_kw(),
            )
            return self._raise_for_status(response, what=what)

        task = parse_novita_task(await self._retrier.call(once, what=what))
        if task.task_id != task_id:
            raise UnexpectedResponse(
                f"novita answered task {task.task_id!r} when asked for {task_id!r}"
            )
        return task

    async def download(self, url: str, *, max_bytes: int) -> bytes:
        """Fetch an output clip (presigned S3, ~1 h; no key sent); `OutputExpired` on 403/404."""
        return await download_output(
            self._http,
            url,
            max_bytes=max_bytes,
            provider=PROVIDER,
            redact=self._redact,
            retrier=self._retrier,
        )

    def _headers(self, *, json_body: bool = False) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self._key.get_secret_value()}"}
        if json_body:
            headers["Content-Type"] = "application/json"
        return headers

    def _timeout_kw(self) -> dict[str, Any]:
        return {"timeout": self._timeout} if self._timeout is not None else {}

    def _raise_for_status(
        self, response: httpx.Response, *, what: str, outcome_unknown: bool = False
    ) -> dict[str, Any]:
        """The one place Novita HTTP statuses become errors; returns the JSON reply on 200.

        Error bodies look like `{"code":400,"reason":"INVALID_REQUEST_BODY","message":...}`;
        403 with reason NOT_ENOUGH_BALANCE is an empty wallet, other 401/403 a key problem.
        """
        status = response.status_code
        if status == 200:
            return json_object(response, provider=PROVIDER, what=what, redact=self._redact)
        try:
            data = response.json()
        except (ValueError, UnicodeDecodeError):
            data = None
        reason = data.get("reason") if isinstance(data, Mapping) else None
        reason = reason if isinstance(reason, str) else ""
        message = data.get("message") if isinstance(data, Mapping) else None
        message = message if isinstance(message, str) else ""
        said = " ".join(part for part in (reason, self._redact(message)[:500]) if part)
        text = f"novita {what} failed (HTTP {status})" + (f": {said}" if said else "")
        kw: dict[str, Any] = {"status_code": status, "body": body_text(response, self._redact)}
        if reason == "NOT_ENOUGH_BALANCE" or status == 402:
            raise InsufficientCredit(text, **kw)
        if status in (401, 403):
            raise AuthenticationError(text, **kw)
        if status in (400, 413, 422):
            raise InvalidRequest(text, **kw)
        if status == 404:
            raise NotFound(text, **kw)
        if status == 429:
            raise RateLimited(
                text, retry_after=parse_retry_after(response.headers.get("retry-after")), **kw
            )
        if status >= 500:
            raise ProviderServerError(
                f"{text}; {UNKNOWN_OUTCOME}" if outcome_unknown else text, **kw
            )
        if 200 <= status < 300:
            raise UnexpectedResponse(
                f"{text}; only HTTP 200 counts as success"
                + (f"; {UNKNOWN_OUTCOME}" if outcome_unknown else ""),
                **kw,
            )
        raise ProviderAPIError(text, **kw)
