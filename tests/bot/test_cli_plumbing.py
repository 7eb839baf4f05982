"""What every command shares: its name, broken pipes, settings errors, the database URL."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import BROKEN_PIPE_EXIT, main
from storage import NewJob, Scopes, open_database

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "SYSTEMROOT")}
    return {**keep, "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}", **extra}


def _into_a_closed_pipe(argv: list[str], tmp_path: Path) -> subprocess.CompletedProcess[bytes]:
    """Run the CLI with stdout a pipe whose reader is gone (`... | head` that has finished)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "bot", *argv],
            stdout=write_end, stderr=subprocess.PIPE, cwd=tmp_path, env=_env(tmp_path),
            timeout=60, check=False,
        )  # fmt: skip
    finally:
        os.close(write_end)


def test_models_json_into_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    proc = _into_a_closed_pipe(["models", "--json"], tmp_path)
    assert proc.stderr == b""  # no "error: BrokenPipeError", no "Exception ignored"
    assert proc.returncode == BROKEN_PIPE_EXIT  # what a shell reports for `yes | head`


def test_jobs_json_into_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    async def two_jobs() -> None:
        async with await open_database(f"sqlite:///{tmp_path / 'bot.db'}") as db:
            for n in (1, 2):
                new = NewJob(
                    id=f"job-{n}", platform="cli", event_id=f"e{n}", user_id="cli:bob",
                    server_id=None, model="openvideo", provider="wavespeed", params={},
                    prompt="x", image_ref="x.png", cost_micros=100_000,
                )  # fmt: skip
                await db.jobs.create_reserved(new, Scopes("cli:bob"), ledger_key=f"k{n}")

    asyncio.run(two_jobs())
    proc = _into_a_closed_pipe(["jobs", "--json"], tmp_path)
    assert (proc.returncode, proc.stderr) == (BROKEN_PIPE_EXIT, b"")


def test_the_command_names_itself(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])  # the `animatebot` console script
    assert capsys.readouterr().out.startswith("usage: animatebot ")
    with pytest.raises(SystemExit):
        main(["--help"], prog="python -m bot")
    help_text = capsys.readouterr().out
    assert help_text.startswith("usage: python -m bot ")
    for command in ("models", "animate", "doctor", "purge", "simulator"):
        assert command in help_text


def test_models_loads_neither_the_simulator_nor_the_database_driver(tmp_path: Path) -> None:
    code = (
        "import sys; from bot.cli import main; main(['models']); "
        "print(sorted(m for m in ('aiohttp', 'av', 'asyncpg', 'providers.simulator') "
        "if m in sys.modules))"
    )
    out = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
        env=_env(tmp_path), timeout=60, check=True,
    ).stdout  # fmt: skip
    assert out.splitlines()[-1] == "[]"


@pytest.mark.parametrize(
    ("variable", "value", "sentence"),
    [
        ("USER_DAILY_CAP_USD", "abc", "USER_DAILY_CAP_USD='abc' is not allowed: use a dollar "
         "amount such as 5 or 0.25"),
        ("PRICE_OVERRIDES", "notjson", "PRICE_OVERRIDES is not JSON: use a JSON object"),
        ("PRICE_OVERRIDES", '{"wan-2.1": 0.3}', 'PRICE_OVERRIDES is not usable: wan-2.1 price: '
         'write USD as a string such as "0.30"'),
        ("LOG_LEVEL", "bogus", "LOG_LEVEL='bogus' is not allowed (not a log level): use one of "
         "DEBUG, INFO, WARNING, ERROR, CRITICAL."),
        ("LEASE_S", "0", "LEASE_S='0' is not allowed: use a number (more than 0"),
        ("USER_CONCURRENT_JOBS", "-2", "USER_CONCURRENT_JOBS='-2' is not allowed"),
        ("DATABASE_URL", "mysql://u:hunter2@db/x", "DATABASE_URL is not allowed (not a "
         "database URL): use sqlite:///FILE.db"),
    ],
)  # fmt: skip
def test_a_bad_setting_is_one_sentence_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    variable: str, value: str, sentence: str,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(variable, value)
    assert main(["models"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"error: {sentence}")
    assert err.count("\n") == 1 and "hunter2" not in err and "pydantic" not in err


def test_keys_in_dotenv_that_are_not_settings_are_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("USER_DAILY_CAP=1\nLOG_LEVEL=WARNING\nFAVOURITE_COLOUR=red\n")
    assert main(["models"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "warning: .env sets USER_DAILY_CAP, which is not a setting (did you mean "
        "USER_DAILY_CAP_USD?); it is ignored",
        "warning: .env sets FAVOURITE_COLOUR, which is not a setting; it is ignored",
    ]


def test_an_unreachable_database_names_database_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    monkeypatch.setenv("DATABASE_URL", "postgresql://bot:s3cret@127.0.0.1:1/animatebot")
    assert main(["usage", "--user", "bob"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "error: Could not open the database at "
        "DATABASE_URL=postgresql://bot:***@127.0.0.1:1/animatebot: the connection was refused"
    )
    assert "s3cret" not in err and err.count("\n") == 1 and "fix DATABASE_URL" in err


@pytest.mark.parametrize("command", ["web", "serve", "slack", "discord"])
def test_the_long_running_processes_say_a_bad_setting_in_one_sentence(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    command: str,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WEB_PORT", "abc")
    assert main([command]) == 2
    _, err = capsys.readouterr()
    assert err.startswith("error: WEB_PORT='abc' is not allowed")
    assert err.count("\n") == 1 and "pydantic" not in err
