"""Small checks the Discord tests share."""

from __future__ import annotations

from bot.app import App


async def money_moved(app: App) -> list[str]:
    """Every reserve or settle in the ledger (a refusal must add none)."""
    entries = await app.db.ledger.entries()
    moved = [e for e in entries if e.kind in ("reserve", "settle")]
    return [f"{e.kind} {e.key} {e.amount_micros}" for e in moved]
