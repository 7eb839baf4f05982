"""The aiohttp application key under which route handlers find their Simulator."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from providers.simulator.server import Simulator

SIM_KEY: web.AppKey[Any] = web.AppKey("simulator")


def sim_of(request: web.Request) -> Simulator:
    sim: Simulator = request.app[SIM_KEY]
    return sim
