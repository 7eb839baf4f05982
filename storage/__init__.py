"""Storage: the spend ledger and the durable job store, on SQLite or PostgreSQL."""

from providers.money import format_usd
from storage.database import Database, open_database
from storage.errors import (
    DuplicateJob,
    IdempotencyConflict,
    InvalidLedgerTransition,
    InvalidTransition,
    JobError,
    LedgerError,
    NothingToResolve,
    QuotaExceeded,
    StorageError,
    UnknownJob,
    UnknownReservation,
)
from storage.jobs import JobStore
from storage.keys import KeyStore
from storage.ledger import Ledger
from storage.migrate import migrate
from storage.models import (
    ACTIVE,
    CapUsage,
    CreateResult,
    Job,
    JobEvent,
    JobStatus,
    KeyRefusal,
    LedgerEntry,
    LimitDefaults,
    Limits,
    NewJob,
    Refusal,
    Reservation,
    SavedLora,
    Scopes,
    StoredImage,
)
from storage.retention import Purged
from storage.servers import ServerStore

__all__ = [
    "ACTIVE",
    "CapUsage",
    "CreateResult",
    "Database",
    "DuplicateJob",
    "IdempotencyConflict",
    "InvalidLedgerTransition",
    "InvalidTransition",
    "Job",
    "JobError",
    "JobEvent",
    "JobStatus",
    "JobStore",
    "KeyRefusal",
    "KeyStore",
    "Ledger",
    "LedgerEntry",
    "LedgerError",
    "LimitDefaults",
    "Limits",
    "NewJob",
    "NothingToResolve",
    "Purged",
    "QuotaExceeded",
    "Refusal",
    "Reservation",
    "SavedLora",
    "Scopes",
    "ServerStore",
    "StorageError",
    "StoredImage",
    "UnknownJob",
    "UnknownReservation",
    "format_usd",
    "migrate",
    "open_database",
]
