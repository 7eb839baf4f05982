"""CLI commands (placeholder until its issue lands)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    del sub


__all__ = ["argparse", "register"]
