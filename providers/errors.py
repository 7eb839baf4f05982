"""Typed errors for the provider clients, mapped from HTTP in one place per client.

    ProviderError
     ├── ProviderAPIError(status_code, body)        the API answered with an error
     │    ├── AuthenticationError                    401/403: bad, missing or inactive key
     │    ├── InvalidRequest                         400/422: the API refused the parameters
     │    ├── InsufficientCredit                     the wallet is empty
     │    ├── RateLimited(retry_after)               429
     │    ├── NotFound                               404 (unknown task id)
     │    ├── ProviderServerError                    5xx
     │    ├── UnexpectedResponse                     2xx we cannot understand (no task id, not JSON)
     │    ├── OutputExpired                          an output URL answers 403/404 (link lapsed)
     │    └── OutputTooLarge                         an output is bigger than the caller allows
     ├── ProviderConnectionError                     no answer: refused, reset, DNS
     │    ├── ProviderTimeout                        no answer in time
     │    └── RequestNotSent                         never connected: nothing reached the API
     ├── TaskFailed(task)                            the remote job ran and failed
     └── WebhookVerificationError                    a webhook we must not trust

Messages never contain API keys. `ProviderConnectionError` and `ProviderTimeout` on a
*submit* mean the outcome is unknown: the task may exist and be billed. So do
`ProviderServerError` (WaveSpeed's gateway can answer 504 for a task that runs) and
`UnexpectedResponse` on a submit. `RequestNotSent` is the one connection failure that is
definite: no connection was made, so no task exists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from providers.base import ProviderTask


class ProviderError(Exception):
    """Base of every error a provider client raises."""

    retryable: bool = False


class ProviderAPIError(ProviderError):
    """The provider answered, with an HTTP status or envelope code that means failure."""

    def __init__(
        self, message: str, *, status_code: int | None = None, body: str = "", provider: str = ""
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body[:2000]
        self.provider = provider  # "wavespeed" | "novita" when the client knows


class AuthenticationError(ProviderAPIError):
    """The API key is missing, wrong, or not yet activated (WaveSpeed needs a first top-up)."""


class InvalidRequest(ProviderAPIError):
    """The provider refused the parameters; resending the same request cannot succeed."""


class InsufficientCredit(ProviderAPIError):
    """The operator's provider wallet cannot pay for the task."""


class RateLimited(ProviderAPIError):
    """HTTP 429. `retry_after` is in seconds when the provider said, else None."""

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = 429,
        body: str = "",
        retry_after: float | None = None,
        provider: str = "",
    ) -> None:
        super().__init__(message, status_code=status_code, body=body, provider=provider)
        self.retry_after = retry_after


class NotFound(ProviderAPIError):
    """The provider does not know this task id (deleted after 7 days, or never created)."""


class ProviderServerError(ProviderAPIError):
    """HTTP 5xx: the provider is failing or overloaded; safe to retry reads."""

    retryable = True


class ProviderConnectionError(ProviderError):
    """No HTTP answer at all. On a submit, the task may still have been created."""

    retryable = True


class ProviderTimeout(ProviderConnectionError):
    """The request timed out. On a submit, the task may still have been created."""


class TaskFailed(ProviderError):
    """The provider ran the task and it failed; `task.error_code` 1200 means moderation."""

    def __init__(self, task: ProviderTask) -> None:
        reason = task.error or task.raw_status or "failed"
        super().__init__(f"{task.provider} task {task.task_id} failed: {reason}")
        self.task = task


class WebhookVerificationError(ProviderError):
    """A webhook delivery failed its signature or freshness check and must be ignored."""


class UnexpectedResponse(ProviderAPIError):
    """A success status with a reply we cannot read. On a submit, the task may exist."""


class OutputExpired(ProviderAPIError):
    """An output URL answered 403/404: the presigned link lapsed (Novita ~1 h, WaveSpeed 7 days).

    Re-fetching the task may yield fresh links while the task itself is kept.
    """


class OutputTooLarge(ProviderAPIError):
    """An output is larger than the caller's limit; the download was abandoned part-way."""


class RequestNotSent(ProviderConnectionError):
    """No connection could be made (refused, DNS, connect timeout, pool full).

    The request never left this process, so a submit that fails this way created nothing.
    """
