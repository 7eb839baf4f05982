"""Errors the service raises to its front doors. `user_message` is safe to show anyone.

SetupError                   the operator's settings cannot work (CLI exit 2, one sentence):
                             a refused token, an unreachable DATABASE_URL

BotError
 ├── RequestRefused          bad input: nothing was charged (CLI exit 2)
 │    ├── QuotaRefused       a cap has no room: says which, what is left, when it resets
 │    ├── ModelDisabled      the operator has not enabled this model (no key or no price)
 │    ├── Paused             /animate is paused on this server by its moderators
 │    └── NotAllowed         e.g. cancelling someone else's job
"""

from __future__ import annotations

from typing import Any


class SetupError(Exception):
    """A setting the operator must change before the process can run (a missing or refused
    token); the message names the setting and the fix, never a secret."""


class BotError(Exception):
    """Base of the service's errors; `user_message` is what a person sees."""

    exit_code = 1

    def __init__(self, user_message: str) -> None:
        super().__init__(user_message)
        self.user_message = user_message


class RequestRefused(BotError):
    """The request was invalid or refused before any money moved. `fields` names the
    options the sentences are about ("image", "duration", "loras" ...), for forms."""

    exit_code = 2

    def __init__(self, user_message: str, *, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(user_message)
        self.fields: dict[str, list[str]] = dict(fields or {})


class QuotaRefused(RequestRefused):
    """A cap had no room; `refusal` is the ledger's structured reason."""

    def __init__(self, user_message: str, refusal: Any) -> None:
        super().__init__(user_message)
        self.refusal = refusal


class ModelDisabled(RequestRefused):
    """The model cannot run here (no API key, no price); the message says how to enable it."""


class NotAllowed(RequestRefused):
    """The person may not do this to this job."""


class Paused(RequestRefused):
    """The server's moderators paused /animate there."""
