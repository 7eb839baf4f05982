"""The durable job store: every job, its status history and its lease.

A status change is a compare-and-set (`expect`) written in ONE transaction with its history
row, its field updates and its ledger step, so the money always follows the job. Runners claim
due jobs with a lease (PostgreSQL: `FOR UPDATE SKIP LOCKED`); a lease that lapses lets another
runner take the job over.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import asdict
from typing import Any, Literal, TypeVar

from storage.backend import Backend, Tx, in_list, placeholders
from storage.errors import (
    DuplicateJob,
    InvalidTransition,
    NothingToResolve,
    QuotaExceeded,
    UnknownJob,
)
from storage.ledger import Ledger, NotPlain
from storage.models import (
    ACTIVE,
    CreateResult,
    Job,
    JobEvent,
    JobStatus,
    NewJob,
    Refusal,
    Scopes,
    StoredImage,
)
from storage.notify import NOTIFY_SQL

T = TypeVar("T")
_JSON_FIELDS = frozenset({"params", "sink", "meta"})
# fields `update()` and `transition(**fields)` may change; status has its own path
UPDATABLE = frozenset(
    {
        "provider_task_id", "meta", "sink", "next_check_at", "poll_count", "progress_percent",
        "submit_started_at", "output_url", "delivered_ref", "cancel_requested", "status_reason",
        "error_code", "channel_id", "thread_id", "message_id", "deadline_at",
    }
)  # fmt: skip
_ACTIVE_SQL = in_list(sorted(s.value for s in ACTIVE))
_NEW_COLUMNS = (
    "id", "platform", "event_id", "user_id", "server_id", "model", "provider", "params", "prompt",
    "image_ref", "cost_micros", "channel_id", "thread_id", "message_id", "sink", "meta",
    "next_check_at", "deadline_at", "lease_owner", "lease_until",
)  # fmt: skip
_INSERT_JOB = (
    f"INSERT INTO jobs ({', '.join(_NEW_COLUMNS)}, status, ledger_key, created_at, updated_at)"  # noqa: S608
    f" VALUES ({placeholders(1, len(_NEW_COLUMNS) + 4)})"
    " ON CONFLICT (platform, event_id) DO NOTHING RETURNING *"
)
_INSERT_INPUT = (
    "INSERT INTO job_inputs (job_id, slot, data, content_type, filename, width, height,"
    " created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
)
_EVENT = (
    "INSERT INTO job_events (job_id, at, from_status, to_status, note) VALUES ($1, $2, $3, $4, $5)"
)


def _db_value(name: str, value: Any) -> Any:
    if name in _JSON_FIELDS:
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    if name == "cancel_requested":
        return 1 if value else 0
    if name in {"next_check_at", "deadline_at", "submit_started_at", "lease_until"} and (
        value is not None
    ):
        return float(value)
    return value


def _set_clause(fields: dict[str, Any], start: int) -> tuple[str, list[Any]]:
    unknown = set(fields) - UPDATABLE
    if unknown:
        raise ValueError(
            f"cannot update job field(s) {sorted(unknown)}; allowed: {sorted(UPDATABLE)}"
        )
    parts, args = [], []
    for i, (name, value) in enumerate(sorted(fields.items())):
        parts.append(f"{name} = ${start + i}")
        args.append(_db_value(name, value))
    return ", ".join(parts), args


class JobStore:
    """Jobs, their transitions and leases. See the module docstring."""

    def __init__(
        self, backend: Backend, ledger: Ledger, clock: Callable[[], float] = time.time
    ) -> None:
        self._db = backend
        self._ledger = ledger
        self._clock = clock

    async def create_reserved(
        self,
        new: NewJob,
        scopes: Scopes,
        *,
        ledger_key: str,
        inputs: Mapping[str, StoredImage] | None = None,
    ) -> CreateResult:
        """Reserve the job's cost and record the job with its prepared input images
        (`inputs` by slot: 'image', 'last_image'), atomically; a repeated event is a no-op."""
        if scopes.user_id != new.user_id or scopes.server_id != new.server_id:
            raise ValueError("scopes must name the job's own user and server")
        now = self._clock()
        values = [_db_value(c, getattr(new, c)) for c in _NEW_COLUMNS]

        async def run(tx: Tx, plain: bool) -> CreateResult | Refusal:
            # The job row first: a concurrent duplicate of the same event waits on it here and
            # then finds it, before touching the ledger.
            row = await tx.fetchrow(
                _INSERT_JOB, *values, JobStatus.RESERVED.value, ledger_key, now, now
            )
            if row is None:
                existing = await tx.fetchrow(
                    "SELECT * FROM jobs WHERE platform = $1 AND event_id = $2",
                    new.platform, new.event_id,
                )  # fmt: skip
                if existing is None:  # pragma: no cover - the conflict was on the id
                    raise DuplicateJob(f"job id {new.id!r} already exists")
                return CreateResult(Job.from_row(existing), created=False)
            outcome = await self._ledger.reserve_in(
                tx, ledger_key, scopes, new.cost_micros, new.model, f"job {new.id}", now,
                plain_only=plain,
            )  # fmt: skip
            if isinstance(outcome, Refusal):
                # keep the recorded refusal, drop the job: it never existed for anyone else
                await tx.execute("DELETE FROM jobs WHERE id = $1", new.id)
                return outcome
            for slot, image in (inputs or {}).items():
                await tx.execute(_INSERT_INPUT, new.id, slot, *_input_values(image), now)
            await tx.execute(_EVENT, new.id, now, None, JobStatus.RESERVED.value, "reserved")
            return CreateResult(Job.from_row(row), created=True)

        await self._ledger.purge_now_and_then(now)
        try:
            result = await self._plain_first(run)
        except Exception as exc:
            if _is_unique_violation(exc):
                raise DuplicateJob(f"job id {new.id!r} already exists") from exc
            raise
        if isinstance(result, Refusal):
            raise QuotaExceeded(result)
        return result

    async def _plain_first(self, run: Callable[[Tx, bool], Awaitable[T]]) -> T:
        """A write whose ledger step is first tried plain (fewest statements); when it is not
        plain, nothing was kept and the write runs again with the careful step."""
        try:
            return await self._db.write(lambda tx: run(tx, True))
        except NotPlain:
            return await self._db.write(lambda tx: run(tx, False))

    async def has_input(self, job_id: str, slot: str = "image") -> bool:
        """Whether a job's input image is still kept (without reading it)."""
        found = await self._db.read(
            lambda tx: tx.fetchval(
                "SELECT 1 FROM job_inputs WHERE job_id = $1 AND slot = $2", job_id, slot
            )
        )
        return found is not None

    async def get_input(self, job_id: str, slot: str = "image") -> StoredImage | None:
        """A job's prepared input image (None once purged, or for a job that had none)."""
        row = await self._db.read(
            lambda tx: tx.fetchrow(
                "SELECT * FROM job_inputs WHERE job_id = $1 AND slot = $2", job_id, slot
            )
        )
        if row is None:
            return None
        return StoredImage(
            data=bytes(row["data"]),
            content_type=row["content_type"],
            filename=row["filename"],
            width=int(row["width"]),
            height=int(row["height"]),
        )

    async def purge_inputs(self, *, older_than: float) -> int:
        """Drop input images stored before `older_than` (retention); how many went."""
        rows = await self._db.write(
            lambda tx: tx.fetch(
                "DELETE FROM job_inputs WHERE created_at < $1 RETURNING job_id", float(older_than)
            )
        )
        return len(rows)

    async def get(self, job_id: str) -> Job | None:
        row = await self._db.read(
            lambda tx: tx.fetchrow("SELECT * FROM jobs WHERE id = $1", job_id)
        )
        return None if row is None else Job.from_row(row)

    async def get_by_event(self, platform: str, event_id: str) -> Job | None:
        row = await self._db.read(
            lambda tx: tx.fetchrow(
                "SELECT * FROM jobs WHERE platform = $1 AND event_id = $2", platform, event_id
            )
        )
        return None if row is None else Job.from_row(row)

    async def find_by_task(self, provider: str, task_id: str) -> Job | None:
        row = await self._db.read(
            lambda tx: tx.fetchrow(
                "SELECT * FROM jobs WHERE provider = $1 AND provider_task_id = $2"
                " ORDER BY created_at DESC LIMIT 1",
                provider,
                task_id,
            )
        )
        return None if row is None else Job.from_row(row)

    async def list_jobs(
        self,
        *,
        status: JobStatus | Collection[JobStatus] | None = None,
        user_id: str | None = None,
        limit: int = 100,
    ) -> list[Job]:
        """Newest first."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            # SQLite reads a negative LIMIT as "no limit", PostgreSQL refuses it: refuse here
            raise ValueError(f"limit must be a whole number >= 0, got {limit!r}")
        where: list[str] = []
        args: list[Any] = []
        if status is not None:
            wanted = (
                [JobStatus(status).value]
                if isinstance(status, str)
                else [JobStatus(s).value for s in status]
            )
            if not wanted:
                return []
            where.append(f"status IN ({placeholders(len(args) + 1, len(wanted))})")
            args.extend(wanted)
        if user_id is not None:
            args.append(user_id)
            where.append(f"user_id = ${len(args)}")
        args.append(int(limit))
        sql = (
            "SELECT * FROM jobs"  # noqa: S608 - fragments are built here from constants
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + f" ORDER BY created_at DESC, id DESC LIMIT ${len(args)}"
        )
        rows = await self._db.read(lambda tx: tx.fetch(sql, *args))
        return [Job.from_row(r) for r in rows]

    async def history(self, job_id: str) -> list[JobEvent]:
        rows = await self._db.read(
            lambda tx: tx.fetch("SELECT * FROM job_events WHERE job_id = $1 ORDER BY id", job_id)
        )
        return [
            JobEvent(
                job_id=r["job_id"],
                at=float(r["at"]),
                from_status=None if r["from_status"] is None else JobStatus(r["from_status"]),
                to_status=JobStatus(r["to_status"]),
                note=r["note"],
            )
            for r in rows
        ]

    async def update(self, job_id: str, **fields: Any) -> Job:
        """Change non-status fields (see UPDATABLE)."""
        now = self._clock()
        fields = dict(fields)
        sets, args = _set_clause(fields, 3) if fields else ("", [])
        sql = (
            "UPDATE jobs SET updated_at = $2"  # noqa: S608 - column names come from UPDATABLE
            + (f", {sets}" if sets else "")
            + " WHERE id = $1 RETURNING *"
        )
        row = await self._db.write(lambda tx: tx.fetchrow(sql, job_id, now, *args))
        if row is None:
            raise UnknownJob(f"no job with id {job_id!r}")
        return Job.from_row(row)

    async def transition(
        self,
        job_id: str,
        to: JobStatus,
        *,
        expect: Collection[JobStatus],
        reason: str = "",
        ledger: Literal["settle", "void"] | None = None,
        settle_micros: int | None = None,
        **fields: Any,
    ) -> Job:
        """Compare-and-set the status with history, fields and ledger step in ONE transaction."""
        to = JobStatus(to)
        expected = {JobStatus(s) for s in expect}
        if ledger not in (None, "settle", "void"):
            raise ValueError(f"ledger must be 'settle', 'void' or None, got {ledger!r}")
        if settle_micros is not None and ledger != "settle":
            raise ValueError("settle_micros only goes with ledger='settle'")
        now = self._clock()
        fields = dict(fields)
        fields.setdefault("status_reason", reason)
        sets, args = _set_clause(fields, 4)

        async def run(tx: Tx, plain: bool) -> Job:
            job = await self._locked_job(tx, job_id)
            if job.status not in expected:
                raise InvalidTransition(job, job.status, to)
            row = await tx.fetchrow(
                f"UPDATE jobs SET status = $2, updated_at = $3, {sets}"  # noqa: S608
                " WHERE id = $1 RETURNING *",
                job_id, to.value, now, *args,
            )  # fmt: skip
            assert row is not None
            await tx.execute(_EVENT, job_id, now, job.status.value, to.value, reason)
            note = f"job {job_id}: {reason}"
            if ledger == "settle":
                await self._ledger.settle_in(
                    tx, job.ledger_key, settle_micros, note, now, plain_only=plain
                )
            elif ledger == "void":
                await self._ledger.void_in(tx, job.ledger_key, note, now, plain_only=plain)
            return Job.from_row(row)

        return await self._plain_first(run)

    async def _locked_job(self, tx: Tx, job_id: str) -> Job:
        """The job re-read inside `tx` (on PostgreSQL, locked until it commits)."""
        row = await tx.fetchrow(
            f"SELECT * FROM jobs WHERE id = $1{self._db.for_update}",  # noqa: S608
            job_id,
        )
        if row is None:
            raise UnknownJob(f"no job with id {job_id!r}")
        return Job.from_row(row)

    async def resolve_hold(
        self, job_id: str, outcome: Literal["settle", "void"], *, note: str
    ) -> Job:
        """An operator's verdict on an unknown outcome, once: the expired job's hold is
        settled or voided in ONE transaction that re-reads (and, on PostgreSQL, locks) the job
        and its hold first, so of two overlapping resolutions one wins and the other gets
        `NothingToResolve`."""
        if outcome not in ("settle", "void"):
            raise ValueError(f"outcome must be 'settle' or 'void', got {outcome!r}")
        now = self._clock()

        async def run(tx: Tx) -> Job:
            job = await self._locked_job(tx, job_id)
            hold = await tx.fetchval(
                f"SELECT status FROM holds WHERE key = $1{self._db.for_update}",  # noqa: S608
                job.ledger_key,
            )
            if job.status is not JobStatus.EXPIRED or hold != "held":
                raise NothingToResolve(job, hold)
            meta = {**job.meta, "resolved": {"outcome": outcome, "at": now, "note": note}}
            row = await tx.fetchrow(
                "UPDATE jobs SET status_reason = $2, meta = $3, updated_at = $4"
                " WHERE id = $1 RETURNING *",
                job_id, note, _db_value("meta", meta), now,
            )  # fmt: skip
            assert row is not None
            status = JobStatus.EXPIRED.value
            await tx.execute(_EVENT, job_id, now, status, status, note)
            if outcome == "settle":
                await self._ledger.settle_in(tx, job.ledger_key, None, f"job {job_id}: {note}", now)
            else:
                await self._ledger.void_in(tx, job.ledger_key, f"job {job_id}: {note}", now)
            return Job.from_row(row)

        return await self._db.write(run)

    async def record_late_task(
        self, job_id: str, task_id: str, *, resumed: str, recorded: str, resume_at: float
    ) -> Job:
        """A submit answered with a task id after the job had moved on without it (its lease
        lapsed and it was expired as an unknown outcome). The id is recorded whatever the
        job's state, so the operator can check it at the provider; and if the hold is still
        held and no one resolved it, the job is followed again (expired -> submitted). The
        history gets `resumed` or `recorded` as its note."""
        now = self._clock()

        async def run(tx: Tx) -> Job:
            job = await self._locked_job(tx, job_id)
            if job.provider_task_id not in (None, task_id):
                raise InvalidTransition(job, job.status)  # another task: never overwrite it
            hold = await tx.fetchval("SELECT status FROM holds WHERE key = $1", job.ledger_key)
            resume = (
                job.status is JobStatus.EXPIRED
                and hold == "held"
                and "resolved" not in job.meta
            )
            to = JobStatus.SUBMITTED if resume else job.status
            note = resumed if resume else recorded
            row = await tx.fetchrow(
                "UPDATE jobs SET provider_task_id = $2, status = $3, status_reason = $4,"
                " next_check_at = $5, updated_at = $6 WHERE id = $1 RETURNING *",
                job_id, task_id, to.value, note if resume else job.status_reason,
                float(resume_at) if resume else job.next_check_at, now,
            )  # fmt: skip
            assert row is not None
            await tx.execute(_EVENT, job_id, now, job.status.value, to.value, note)
            return Job.from_row(row)

        return await self._db.write(run)

    async def claim_due(self, owner: str, *, now: float, limit: int, lease_s: float) -> list[Job]:
        """Lease up to `limit` due ACTIVE jobs to `owner`, earliest next_check_at first."""
        if limit <= 0:
            return []
        # While leased, next_check_at is the lease's end: if the owner dies, that is when
        # the job falls due again, and next_due_at needs no look at leases.
        sql = (
            "UPDATE jobs SET lease_owner = $1, lease_until = $2, next_check_at = $2,"  # noqa: S608
            " nudged_at = NULL WHERE id IN ("
            f" SELECT id FROM jobs WHERE status IN ({_ACTIVE_SQL})"
            " AND next_check_at <= $3 AND (lease_until IS NULL OR lease_until < $3)"
            f" ORDER BY next_check_at LIMIT $4{self._db.skip_locked}) RETURNING *"
        )
        rows = await self._db.write(
            lambda tx: tx.fetch(sql, owner, float(now + lease_s), float(now), int(limit))
        )
        jobs = [Job.from_row(r) for r in rows]
        jobs.sort(key=lambda j: (j.next_check_at or 0.0, j.id))
        return jobs

    async def renew(
        self, owner: str, job_ids: Collection[str], *, now: float, lease_s: float
    ) -> int:
        """Extend `owner`'s leases; returns how many it still held."""
        ids = list(job_ids)
        if not ids:
            return 0
        sql = (
            "UPDATE jobs SET lease_until = $2, next_check_at = $2"  # noqa: S608
            " WHERE lease_owner = $1"
            f" AND id IN ({placeholders(3, len(ids))}) RETURNING id"
        )
        rows = await self._db.write(lambda tx: tx.fetch(sql, owner, float(now + lease_s), *ids))
        return len(rows)

    async def begin_submit(
        self, job_id: str, owner: str, *, now: float, lease_s: float, meta: dict[str, Any]
    ) -> Job | None:
        """Mark the moment before the provider POST, in one compare-and-set: only the lease
        holder, only a reserved job not yet submitted and not cancelled. None = do not submit
        (the lease was lost, the job moved on, or a cancel arrived). The lease is renewed."""
        row = await self._db.write(
            lambda tx: tx.fetchrow(
                "UPDATE jobs SET submit_started_at = $3, lease_until = $4, next_check_at = $4,"
                " meta = $5, updated_at = $3"
                " WHERE id = $1 AND lease_owner = $2 AND status = 'reserved'"
                " AND cancel_requested = 0 AND submit_started_at IS NULL RETURNING *",
                job_id,
                owner,
                float(now),
                float(now + lease_s),
                _db_value("meta", meta),
            )
        )
        return None if row is None else Job.from_row(row)

    async def release(
        self, job_id: str, owner: str, *, next_check_at: float | None, **fields: Any
    ) -> float | None:
        """Give the lease back, say when the job is next due (None = not due) and, in the
        same statement, record `fields` (see UPDATABLE): one write per poll.

        A provider callback that arrived while the lease was held (`nudge`) makes the job due
        now whatever `next_check_at` says. Returns when the job is next due."""
        sets, args = _set_clause(fields, 5) if fields else ("", [])
        sql = (
            "UPDATE jobs SET lease_owner = NULL, lease_until = NULL,"  # noqa: S608
            " next_check_at = CASE WHEN nudged_at IS NULL THEN CAST($3 AS DOUBLE PRECISION)"
            " ELSE $4 END, nudged_at = NULL, updated_at = $4"
            + (f", {sets}" if sets else "")
            + " WHERE id = $1 AND lease_owner = $2 RETURNING next_check_at"
        )
        due = None if next_check_at is None else float(next_check_at)
        rows = await self._db.write(
            lambda tx: tx.fetch(sql, job_id, owner, due, self._clock(), *args)
        )
        if not rows:
            return due
        value = rows[0]["next_check_at"]
        return None if value is None else float(value)

    async def nudge(self, job_id: str, *, max_callbacks: int) -> bool:
        """A provider called back about this job: make it due now (or, while a runner or a
        submit holds its lease, as soon as the lease is released) and wake the runners of
        every process (PostgreSQL NOTIFY, sent on commit). False when the job is not active
        or has already honoured `max_callbacks` callbacks (duplicates cost nothing)."""
        now = self._clock()
        update = (
            "UPDATE jobs SET nudged_at = $2, callbacks = callbacks + 1, updated_at = $2,"  # noqa: S608
            " next_check_at = CASE WHEN lease_until IS NULL OR lease_until < $2 THEN $2"
            " ELSE next_check_at END"
            f" WHERE id = $1 AND status IN ({_ACTIVE_SQL}) AND callbacks < $3 RETURNING id"
        )

        async def run(tx: Tx) -> bool:
            row = await tx.fetchrow(update, job_id, now, int(max_callbacks))
            if row is not None and self._db.name == "postgres":
                await tx.execute(NOTIFY_SQL, job_id)
            return row is not None

        return await self._db.write(run)

    async def catch_up(self, *, within_s: float) -> int:
        """Jobs with the provider, not leased, whose next look is more than `within_s` away
        (a callback's safety net, a slow job) are looked at within `within_s` instead,
        spread over that time: a callback that came while no endpoint listened (a restart,
        a deploy) is then found at once rather than at the next safety-net poll. How many."""
        now = self._clock()
        rows = await self._db.write(
            lambda tx: tx.fetch(
                # the fraction of a second a job was created at spreads them out
                "UPDATE jobs SET next_check_at = CAST($1 AS DOUBLE PRECISION)"
                " + CAST($2 AS DOUBLE PRECISION) * ABS(created_at - CAST(created_at AS BIGINT))"
                " WHERE status IN ('submitted', 'processing')"
                " AND next_check_at > CAST($1 AS DOUBLE PRECISION) + CAST($2 AS DOUBLE PRECISION)"
                " AND (lease_until IS NULL OR lease_until < $1) RETURNING id",
                now,
                float(within_s),
            )
        )
        return len(rows)

    async def put_input(self, job_id: str, slot: str, image: StoredImage) -> None:
        """Keep a job's prepared input image unless one is already kept for that slot."""
        now = self._clock()
        await self._db.write(
            lambda tx: tx.execute(
                _INSERT_INPUT + " ON CONFLICT (job_id, slot) DO NOTHING",
                job_id,
                slot,
                *_input_values(image),
                now,
            )
        )

    async def next_due_at(self) -> float | None:
        """The earliest time `claim_due` could return a job (a leased job: its lease's end)."""
        value = await self._db.read(
            lambda tx: tx.fetchval(
                f"SELECT next_check_at FROM jobs WHERE status IN ({_ACTIVE_SQL})"  # noqa: S608
                " AND next_check_at IS NOT NULL ORDER BY next_check_at LIMIT 1"
            )
        )
        return None if value is None else float(value)

    async def count_by_status(self) -> dict[str, int]:
        rows = await self._db.read(
            lambda tx: tx.fetch("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status")
        )
        return {r["status"]: int(r["n"]) for r in rows}


def _input_values(image: StoredImage) -> tuple[bytes, str, str, int, int]:
    return (bytes(image.data), image.content_type, image.filename, image.width, image.height)


def _is_unique_violation(exc: Exception) -> bool:
    name = type(exc).__name__
    return name == "UniqueViolationError" or (
        name == "IntegrityError" and "UNIQUE" in str(exc).upper()
    )


def job_to_dict(job: Job) -> dict[str, Any]:
    """JSON-friendly view of a job (for CLIs and logs)."""
    out = asdict(job)
    out["status"] = job.status.value
    return out
