"""What a person reads when a job ends badly. Always says what happened to the money."""

from __future__ import annotations

from providers.money import format_usd

MODERATION_CODE = 1200


def provider_failed(cost_micros: int, *, reason: str, code: int | None) -> str:
    refund = f"You were not charged: the {format_usd(cost_micros)} hold was released."
    if code == MODERATION_CODE:
        return (
            "The provider's content filter refused this image or prompt, so no clip was made. "
            + refund
        )
    detail = f" ({reason})" if reason else ""
    return f"The provider could not make this clip{detail}. {refund}"


def rejected_before_submit(reason: str) -> str:
    return f"{reason} You were not charged."


def cancelled_before_submit() -> str:
    return "Cancelled before it started. You were not charged."


def cancelled_after_completion(cost_micros: int) -> str:
    return (
        "Cancelled, but the provider had already made the clip, so "
        f"{format_usd(cost_micros)} was charged."
    )


def cancelled_after_failure() -> str:
    return "Cancelled; the provider did not make the clip, so you were not charged."


def outcome_unknown(cost_micros: int, job_id: str) -> str:
    return (
        "The provider did not confirm the submission, so this clip may or may not have been "
        f"made. The {format_usd(cost_micros)} stays reserved until the provider confirms it "
        f"or an operator checks job {job_id} with the provider; you will never be charged "
        "twice."
    )


def output_expired(cost_micros: int) -> str:
    return (
        f"The clip was made ({format_usd(cost_micros)} charged) but its download link "
        "expired before it could be fetched. An operator can look it up with the provider."
    )


def task_not_found(cost_micros: int, job_id: str, task_id: str) -> str:
    return (
        f"The provider kept answering that it does not know task {task_id}, so this clip may "
        f"or may not have been made. The {format_usd(cost_micros)} stays reserved until an "
        f"operator checks that task with the provider (`job {job_id} --resolve settle|void`); "
        "you will never be charged twice."
    )


def no_credit() -> str:
    return "The bot's provider account has run out of credit; the operator must top it up."


def late_task(task_id: str, *, resumed: bool, callback: bool = False) -> str:
    """A task id heard after the job was given up as an unknown outcome (the submit's answer
    came late, or the provider's signed callback named it)."""
    then = (
        "the bot follows it again"
        if resumed
        else "check that task with the provider before resolving this job"
    )
    how = "The provider's signed callback named" if callback else "The provider answered late with"
    return f"{how} task {task_id}: the clip was submitted; {then}."


def cancel_recorded(status: str, cost_micros: int) -> str:
    """What a cancel did, as it stands right after it was asked for."""
    price = format_usd(cost_micros)
    if status == "cancelled":
        return f"Cancelled before it started: the {price} hold was released; nothing was charged."
    if status == "reserved":
        return (
            "Cancel requested: the clip was not submitted yet, so it will be cancelled and its "
            f"{price} hold released."
        )
    return (
        "Cancel requested: the provider has already started, so it will still charge "
        f"{price} if it finishes the clip (nothing if it fails); the clip will be discarded."
    )
