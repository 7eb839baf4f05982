"""Typed storage errors. Callers catch the narrowest one they can act on.

StorageError
 ├── LedgerError
 │    ├── QuotaExceeded(refusal)       a cap has no room; `refusal.message()` is for people
 │    ├── IdempotencyConflict          a key was reused with different contents
 │    ├── UnknownReservation           settle/void of a key the ledger never held
 │    └── InvalidLedgerTransition      e.g. settling a voided hold, voiding a settled one
 └── JobError
      ├── DuplicateJob                 a job id that already exists for another event
      ├── UnknownJob                   no job with that id
      ├── InvalidTransition(job, current)   compare-and-set on the status failed
      └── NothingToResolve(job, hold)  an operator resolution found no unknown outcome held
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from storage.models import Job, JobStatus, Refusal


class StorageError(Exception):
    """Base of every error the storage layer raises on purpose."""


class LedgerError(StorageError):
    """The ledger refused an operation; no money moved."""


class QuotaExceeded(LedgerError):
    """A reservation would break a cap. The refusal is recorded under its key."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.message())
        self.refusal = refusal


class IdempotencyConflict(LedgerError):
    """The key already names a reservation with a different amount or scopes."""


class UnknownReservation(LedgerError):
    """No reservation was ever held under this key."""


class InvalidLedgerTransition(LedgerError):
    """The reservation's status does not allow this step (e.g. settle after void)."""


class JobError(StorageError):
    """The job store refused an operation."""


class DuplicateJob(JobError):
    """A job with this id already exists (for another platform event)."""


class UnknownJob(JobError):
    """No job with this id."""


class InvalidTransition(JobError):
    """The job was not in an expected status; nothing was changed."""

    def __init__(self, job: Job, current: JobStatus, to: JobStatus | None = None) -> None:
        target = f" to {to.value}" if to is not None else ""
        super().__init__(f"job {job.id} is {current.value}; it cannot move{target}")
        self.job = job
        self.current = current
        self.to = to


class NothingToResolve(JobError):
    """`resolve_hold` found no unknown outcome to end: the job is not expired, or its hold was
    already settled or voided (by another operator, a moment earlier). Nothing changed."""

    def __init__(self, job: Job, hold_status: str | None) -> None:
        if job.status.value == "expired" and hold_status in ("settled", "voided"):
            text = (
                f"job {job.id} was already resolved: its hold is {hold_status}; nothing was "
                "changed"
            )
        else:
            text = (
                f"job {job.id} has no unresolved hold (status {job.status.value}); only an "
                "expired job whose hold is still held can be resolved"
            )
        super().__init__(text)
        self.job = job
        self.hold_status = hold_status
