"""Set-up shared by the provider client tests: recorded back-off waits, scripted HTTP replies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import httpx

from providers._client import ProviderClient

Handler = Callable[[httpx.Request], httpx.Response]
C = TypeVar("C", bound=ProviderClient)


class Sleeps:
    """Records the waits the retrier asked for instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def scripted_client(
    cls: type[C], key: str, base_url: str, handler: Handler, **kwargs: Any
) -> tuple[C, list[httpx.Request]]:
    """A client whose every request is answered by `handler`, and the requests it sent.

    Back-off waits are recorded, not slept, unless the test passes its own `sleep`.
    """
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    http = httpx.AsyncClient(transport=httpx.MockTransport(record))
    kwargs.setdefault("sleep", Sleeps())
    return cls(key, base_url=base_url, http=http, **kwargs), seen
