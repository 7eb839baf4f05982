"""Async Novita client for the async task API (`wan-i2v`): submit, poll, output download.

The protocol is Novita's (https://novita.ai/docs/api-reference/model-apis-wan-i2v,
model-apis-task-result, model-apis-webhook). Same promises as the WaveSpeed client: one POST per
submit (never retried), reads retried with jittered backoff, a failed task returned (not
raised), the key only ever in the Authorization header of requests to the API base URL.
Novita webhooks are unsigned: `novita_webhook_task_id` reads only the task id from one, and
the caller re-fetches the task before believing anything.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from collections.abc import Mapping
from typing import Any

import httpx

from providers._client import ProviderClient
from providers._http import (
    UNKNOWN_OUTCOME,
    as_int,
    body_text,
    error_json,
    json_object,
)
from providers.base import ProviderTask, TaskStatus
from providers.errors import (
    InsufficientCredit,
    UnexpectedResponse,
)
from providers.money import MICROS_PER_USD

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


class NovitaClient(ProviderClient):
    """Novita over one pooled `httpx.AsyncClient`; satisfies `providers.base.VideoProvider`.

    `sleep` and `rng` exist for tests: they replace the real back-off wait and its jitter.
    """

    name = PROVIDER
    default_base_url = "https://api.novita.ai"
    endpoint_example = "/v3/async/wan-i2v"
    log = log

    async def submit(
        self, endpoint: str, payload: dict[str, Any], *, webhook_url: str | None = None
    ) -> ProviderTask:
        """Create a task (e.g. endpoint "/v3/async/wan-i2v"). One POST; never retried.

        The webhook goes in `extra.webhook.url`; the caller's payload is not modified.
        """
        self._checked_endpoint(endpoint)
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
        response, reply = await self._post(endpoint, what=what, json=body, outcome_unknown=True)
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
        reply = await self._read(
            "/v3/async/task-result", what=f"result of {task_id}", params={"task_id": task_id}
        )
        task = parse_novita_task(reply)
        if task.task_id != task_id:
            raise UnexpectedResponse(
                f"novita answered task {task.task_id!r} when asked for {task_id!r}"
            )
        return task

    async def balance_micros(self) -> int:
        """The account's available balance in micro-dollars: the cheapest authenticated
        call (a free read), used to check the key. Novita sends 1/10000 USD as a string
        (https://novita.ai/docs/api-reference/basic-get-user-balance)."""
        reply = await self._read("/openapi/v1/billing/balance/detail", what="balance")
        value = reply.get("availableBalance")
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise UnexpectedResponse("novita balance reply has no availableBalance")
        try:
            units = int(str(value).strip())
        except ValueError:
            raise UnexpectedResponse(f"novita balance {value!r} is not a number") from None
        return units * (MICROS_PER_USD // 10_000)

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
        data = error_json(response)
        reason = data.get("reason") if isinstance(data, Mapping) else None
        reason = reason if isinstance(reason, str) else ""
        message = data.get("message") if isinstance(data, Mapping) else None
        message = message if isinstance(message, str) else ""
        said = " ".join(part for part in (reason, self._redact(message)[:500]) if part)
        text = f"novita {what} failed (HTTP {status})" + (f": {said}" if said else "")
        if reason == "NOT_ENOUGH_BALANCE" or status == 402:
            raise InsufficientCredit(
                text, status_code=status, body=body_text(response, self._redact), provider=PROVIDER
            )
        raise self._status_error(status, text, response, outcome_unknown=outcome_unknown)
