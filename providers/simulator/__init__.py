"""A faithful WaveSpeed + Novita simulator on loopback, for tests, benchmarks and the demo.

    async with Simulator(SimulatorConfig(progression="polls")) as sim:
        client = WaveSpeedClient(base_url=sim.base_url, api_key="sim-key")

It reproduces what the providers document (https://wavespeed.ai/docs/,
https://novita.ai/docs/api-reference/): envelopes, statuses, errors, webhooks, uploads and
expiring outputs. `config.py` lists every knob.
"""

from __future__ import annotations

from providers.simulator.config import Fault, Outcome, SimulatorConfig
from providers.simulator.delivery import Delivery
from providers.simulator.engine import SimTask
from providers.simulator.server import SimStats, Simulator

__all__ = [
    "Delivery",
    "Fault",
    "Outcome",
    "SimStats",
    "SimTask",
    "Simulator",
    "SimulatorConfig",
]
