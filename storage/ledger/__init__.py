"""The spend ledger: reserve -> settle | void against per-user, per-server and global caps.

- rules.py      when a reservation fits: the caps, the conditional writes, the refusals
- steps.py      reserve, settle and void in a transaction: the plain flavour, the careful one
- escrow.py     the bot-wide stripes, and how a bot-wide cap is shared among them
- statements.py the other statements (holds, history, giving back, reading accounts)
- plpgsql.py    the same plain steps as PostgreSQL functions (one round trip each)
- limits.py     caps per scope; reports.py usage, spend, CSV; books.py the books' check
- ledger.py     `Ledger`, the public face of all of it
"""

from storage.ledger.escrow import GLOBAL_STRIPES, stripe_of
from storage.ledger.ledger import Ledger
from storage.ledger.steps import NotPlain

__all__ = ["GLOBAL_STRIPES", "Ledger", "NotPlain", "stripe_of"]
