"""What may be deleted, and when: rows that carry no money.

The ledger's entries (every reserve, refusal, settle and void) are never deleted, and neither
are holds that carry money or a job's outcome (held, settled, voided). A *refused* hold
carries no money: it only lets a replay of the same event get the same refusal, which a
platform stops doing within minutes, so it may go after a retention period. A job's
prepared input image is kept for retries and re-rolls, then may go too.
"""

from __future__ import annotations

from dataclasses import dataclass

from storage.backend import Backend


@dataclass(frozen=True)
class Purged:
    refused_holds: int
    input_images: int


async def purge_refused_holds(backend: Backend, *, older_than: float) -> int:
    """Delete refused holds made before `older_than` (unix seconds); how many went."""
    rows = await backend.write(
        lambda tx: tx.fetch(
            "DELETE FROM holds WHERE status = 'refused' AND created_at < $1 RETURNING key",
            float(older_than),
        )
    )
    return len(rows)
