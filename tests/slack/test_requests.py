"""HTTP mode refuses what Slack did not sign: forged, stale, unsigned and replayed requests
get 401 and do nothing (no modal, no job, no Web API call)."""

from __future__ import annotations

import time

import pytest

from bot.slack_adapter.blocks import REQUEST_EVENT
from tests.slack import payloads
from tests.slack.conftest import SlackHarness
from tests.slack.fake_slack import by_metadata


def _nothing_happened(slack: SlackHarness) -> None:
    assert [c.method for c in slack.fake.calls if c.method != "auth.test"] == []
    assert slack.fake.views == {} and slack.fake.responses == []


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda body: payloads.signed(body, secret="not-the-secret"), id="forged"),
        pytest.param(
            lambda body: payloads.signed(body, timestamp=int(time.time()) - 6 * 60), id="stale"
        ),
        pytest.param(lambda body: {}, id="unsigned"),
        pytest.param(
            lambda body: {**payloads.signed(body), "X-Slack-Signature": "v0=" + "0" * 64},
            id="wrong-signature",
        ),
    ],
)
async def test_a_request_slack_did_not_sign_is_refused_and_does_nothing(
    slack: SlackHarness, headers: object
) -> None:
    body = payloads.slash("/animate", "waves", response_url=slack.fake.response_url())
    status, text = await slack.post(body, headers=headers(body))  # type: ignore[operator]
    await slack.settle()
    assert status == 401 and "invalid request" in text
    _nothing_happened(slack)


async def test_a_tampered_body_is_refused(slack: SlackHarness) -> None:
    body = payloads.slash("/animate", "waves", user="U1")
    headers = payloads.signed(body)
    status, _ = await slack.post(body.replace("U1", "U2"), headers=headers)
    await slack.settle()
    assert status == 401
    _nothing_happened(slack)


async def test_a_replayed_request_is_refused_and_does_nothing_twice(slack: SlackHarness) -> None:
    image = slack.image()
    view = await slack.open_modal("waves")
    body = payloads.interaction(payloads.submission(view, image=[image]))
    headers = payloads.signed(body)
    first, _ = await slack.post(body, headers=headers)
    await slack.settle()
    again, text = await slack.post(body, headers=headers)
    await slack.settle()
    assert (first, again) == (200, 401) and "invalid request" in text
    jobs = await slack.app.db.jobs.list_jobs(limit=10)
    assert len(jobs) == 1
    assert len(by_metadata(slack.fake.messages["C1"], REQUEST_EVENT)) == 1  # one reply


async def test_a_signed_request_within_five_minutes_is_taken(slack: SlackHarness) -> None:
    body = payloads.slash("/animate", "waves", response_url=slack.fake.response_url())
    status, _ = await slack.post(
        body, headers=payloads.signed(body, timestamp=int(time.time()) - 240)
    )
    await slack.settle()
    assert status == 200 and len(slack.fake.views) == 1
