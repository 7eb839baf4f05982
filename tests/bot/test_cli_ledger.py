"""`usage`, `limits`, `migrate` and `ledger` as an operator types them."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path

import pytest

from bot.cli import main
from storage import Scopes, open_database


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
        (["usage", "--user", ":"], "bad ID"),
    ],
)
def test_bad_limits_are_refused_with_exit_2(run, argv: list[str], expected: str) -> None:
    code, out, err = run(*argv)
    assert code == 2 and out == ""
    assert expected in err and err.count("\n") == 1


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
    assert caps[("server", "daily")]["used"] == 650_000

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
    assert code == 0 and json.loads(out)["by_model"] == {"sora-2": 400_000}


def test_migrate_is_idempotent(run) -> None:
    assert run("migrate")[0] == 0
    code, out, _ = run("migrate")
    assert code == 0 and "up to date" in out.lower()
