"""`usage`, `limits`, `migrate` and `ledger` as an operator types them."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import time
from pathlib import Path

import pytest

from bot.cli import main
from storage import LimitDefaults, Limits, QuotaExceeded, Scopes, open_database
from tests.fixtures_db import FakeClock


@pytest.fixture
def run(
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("USER_DAILY_CAP_USD", "5")

    def invoke(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def test_limits_set_show_and_back_to_default(run) -> None:
    code, _, err = run("limits", "set", "--user", "alice", "--daily", "0.25", "--per-hour", "3")
    assert code == 0, err
    code, out, _ = run("limits", "show", "--user", "alice", "--json")
    shown = json.loads(out)
    assert shown["daily_micros"] == 250_000
    assert shown["jobs_per_hour"] == 3

    assert run("limits", "set", "--user", "alice", "--daily", "none")[0] == 0
    assert json.loads(run("limits", "show", "--user", "alice", "--json")[1])["daily_micros"] is None
    assert run("limits", "set", "--user", "alice", "--daily", "default")[0] == 0
    assert (
        json.loads(run("limits", "show", "--user", "alice", "--json")[1])["daily_micros"]
        == 5_000_000
    )


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["limits", "set", "--user", "alice", "--daily", "lots"], "--daily"),
        (["limits", "set", "--user", "alice", "--daily", "-1"], "--daily"),
        (["limits", "set", "--user", "alice", "--concurrent", "1.5"], "--concurrent"),
        (["usage", "--user", ":"], "--user ':' is not an ID"),
        # Numbers an operator can mistype are bounded, the same on both backends: one
        # sentence, exit 2, never an OverflowError (SQLite) or a DataError (PostgreSQL).
        (["limits", "set", "--user", "alice", "--daily", "99999999999999999999"], "--daily"),
        (["limits", "set", "--global", "--monthly", "1000000000.01"], "0 to 1000000000"),
        (["limits", "set", "--user", "alice", "--per-hour", "99999999999999999999"], "0 to"),
        (["limits", "set", "--server", "s", "--concurrent", "1000001"], "0 to 1000000"),
        (["jobs", "--limit", "-1"], "--limit '-1' is not allowed: use a whole number from 1"),
        (["jobs", "--limit", "99999999999999999999999"], "--limit"),
        (["ledger", "report", "--days", "99999999999"], "--days '99999999999' is not allowed"),
        (["ledger", "report", "--days", "0"], "from 1 to 3660"),
        # IDs that only worked by luck before.
        (["limits", "set", "--user", "a:b:c", "--daily", "1"], "--user 'a:b:c' is not an ID"),
        (["usage", "--user", "alice", "--server", ""], "--server '' is not an ID"),
        (["limits", "show", "--user", "Alice Smith"], "is not an ID"),
    ],
)
def test_bad_limits_are_refused_with_exit_2(run, argv: list[str], expected: str) -> None:
    code, out, err = run(*argv)
    assert code == 2 and out == ""
    assert expected in err and err.count("\n") == 1
    assert "Error" not in err  # a sentence, not an exception name


def test_the_largest_caps_fit_on_both_backends(run) -> None:
    code, _, err = run("limits", "set", "--user", "alice", "--daily", "1000000000",
                       "--per-hour", "1000000")  # fmt: skip
    assert code == 0, err
    shown = json.loads(run("limits", "show", "--user", "alice", "--json")[1])
    assert shown["daily_micros"] == 1_000_000_000_000_000
    assert shown["daily_usd"] == "1000000000.00"
    assert shown["jobs_per_hour"] == 1_000_000


def test_usage_and_export_show_what_the_ledger_holds(
    run, database_url: str, tmp_path: Path
) -> None:
    async def record() -> None:
        async with await open_database(database_url) as db:
            alice = Scopes("cli:alice", "discord:g1")
            await db.ledger.reserve("k1", alice, 400_000, model="sora-2")
            await db.ledger.settle("k1")
            await db.ledger.reserve("k2", alice, 250_000, model="openvideo")

    asyncio.run(record())

    code, out, _ = run("usage", "--user", "alice", "--server", "discord:g1", "--json")
    assert code == 0
    caps = {(c["scope_kind"], c["cap"]): c for c in json.loads(out)["caps"]}
    daily = caps[("user", "daily")]
    assert (daily["spent"], daily["held"], daily["remaining"]) == (400_000, 250_000, 4_350_000)
    assert (daily["spent_usd"], daily["held_usd"], daily["limit_usd"]) == ("0.40", "0.25", "5.00")
    assert daily["unit"] == "micros" and daily["resets_at"].endswith("T00:00:00Z")
    assert "used" not in daily  # spent + held; not a third field to keep in step
    server = caps[("server", "daily")]
    assert server["spent"] + server["held"] == 650_000
    hourly = caps[("user", "jobs_per_hour")]
    assert hourly["unit"] == "jobs" and "spent_usd" not in hourly

    code, out, _ = run("usage", "--user", "alice")
    assert code == 0 and "$4.35" in out

    target = tmp_path / "ledger.csv"
    assert run("ledger", "export", "--out", str(target))[0] == 0
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert [(r["kind"], r["key"], r["amount_micros"]) for r in rows] == [
        ("reserve", "k1", "400000"),
        ("settle", "k1", "400000"),
        ("reserve", "k2", "250000"),
    ]

    code, out, _ = run("ledger", "report", "--json")
    report = json.loads(out)
    assert code == 0 and report["by_model"] == [
        {"model": "sora-2", "spent_micros": 400_000, "spent_usd": "0.40"}
    ]
    assert (report["total_micros"], report["total_usd"]) == (400_000, "0.40")


def test_migrate_is_idempotent(run) -> None:
    assert run("migrate")[0] == 0
    code, out, _ = run("migrate")
    assert code == 0 and "up to date" in out.lower()


def test_purge_says_what_went_and_what_stays(run, database_url: str, tmp_path: Path) -> None:
    async def refused_long_ago() -> None:
        clock = FakeClock(time.time() - 40 * 86_400)
        defaults = LimitDefaults(user=Limits(daily_micros=1))
        async with await open_database(database_url, defaults=defaults, clock=clock) as db:
            with pytest.raises(QuotaExceeded):
                await db.ledger.reserve("old", Scopes("cli:alice"), 400_000)

    asyncio.run(refused_long_ago())
    old_clip, new_clip = tmp_path / "clips/aaa111/aaa111.mp4", tmp_path / "clips/bbb222/x.mp4"
    for clip in (old_clip, new_clip):
        clip.parent.mkdir(parents=True)
        clip.write_bytes(b"mp4")
    month_ago = time.time() - 30 * 86_400
    os.utime(old_clip, (month_ago, month_ago))
    code, out, err = run("purge", "--json")
    assert code == 0, err
    assert json.loads(out) == {
        "refused_holds": 1, "refused_holds_days": 30, "input_images": 0, "clips": 1,
        "input_images_days": 7,
    }  # fmt: skip
    assert not old_clip.exists() and new_clip.exists()
    code, out, _ = run("purge")
    assert out.startswith("deleted 0 refused reservation(s) older than 30 day(s), and 0 input")
    assert "the ledger's entries are kept" in out
    code, _, err = run("purge", "--older-than", "0")
    assert code == 2 and "--older-than '0' is not allowed" in err
    rows = list(csv.DictReader(io.StringIO(run("ledger", "export")[1])))
    assert [r["kind"] for r in rows] == ["refuse"]  # the history of the refusal stays
