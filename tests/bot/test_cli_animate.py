"""`python -m bot animate|jobs|job|run` as an operator types them (real simulator and DB)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from providers.simulator import Fault, Simulator
from tests.bot.conftest import env_for, settings_for


@pytest.fixture
def cli(
    simulator: Simulator,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> Callable[..., Any]:
    """Run the CLI in a thread (the simulator keeps serving on this loop); returns
    (exit status, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)

    async def run(*argv: str, **settings: Any) -> tuple[int, str, str]:
        for name, value in env_for(settings_for(simulator, database_url, **settings)).items():
            monkeypatch.setenv(name, value)
        capsys.readouterr()
        code = await asyncio.to_thread(main, list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


async def test_animate_json_writes_the_clip_and_reports_the_charge(
    cli: Any, png_file: Path, tmp_path: Path
) -> None:
    code, out, err = await cli(
        "animate",
        str(png_file),
        "--prompt",
        "leaves fall",
        "--user",
        "bob",
        "--model",
        "sora-2",
        "--duration",
        "4",
        "--out",
        "clips",
        "--json",
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "delivered"
    assert result["charged_micros"] == 400_000 == result["cost_micros"]
    assert result["cost_usd"] == result["charged_usd"] == "0.40"
    assert result["created_at"].endswith("Z") and result["cancel_requested"] is False
    assert Path(result["output"]) == tmp_path / "clips" / f"{result['job_id']}.mp4"
    assert Path(result["output"]).stat().st_size > 0
    assert out.count("\n") == 1  # --json: one object on stdout, progress went to stderr
    assert "submitted" in err

    code, out, _ = await cli("jobs", "--json")
    assert code == 0 and json.loads(out)["job_id"] == result["job_id"]
    code, out, _ = await cli("job", result["job_id"], "--json")
    history = [h["to"] for h in json.loads(out)["history"]]
    assert history == ["reserved", "submitted", "processing", "completed", "delivered"]


async def test_invalid_request_exits_2_with_one_sentence(cli: Any, png_file: Path) -> None:
    code, out, err = await cli(
        *f"animate {png_file} --prompt x --user bob --model sora-2 --duration 7 --json".split()
    )
    assert code == 2 and out == ""
    assert err.strip() == ("error: duration 7 is not offered by sora-2: choose 4, 8, 12, 16 or 20")


async def test_over_the_cap_exits_2_and_charges_nothing(cli: Any, png_file: Path) -> None:
    code, out, err = await cli(
        *f"animate {png_file} --prompt x --user bob --model sora-2 --duration 8 --json".split(),
        user_daily_cap_usd="0.50",
    )
    assert code == 2 and out == ""
    assert "This clip costs $0.80, but only $0.50 is left of your daily limit" in err
    code, out, _ = await cli("usage", "--user", "bob", "--json", user_daily_cap_usd="0.50")
    assert code == 0
    caps = {(c["scope_kind"], c["cap"]): c for c in json.loads(out)["caps"]}
    assert caps[("user", "daily")]["remaining"] == 500_000
    assert all(c["spent"] == c["held"] == 0 for c in caps.values())


async def test_missing_image_file_is_bad_input(cli: Any, tmp_path: Path) -> None:
    code, _, err = await cli(
        "animate", str(tmp_path / "nope.png"), "--prompt", "x", "--user", "bob"
    )
    assert code == 2 and "is not a file" in err


async def test_no_wait_then_run_once_follows_the_job(cli: Any, png_file: Path) -> None:
    code, out, err = await cli(
        "animate", str(png_file), "--prompt", "x", "--user", "bob", "--no-wait", "--json"
    )
    assert code == 0, err
    job_id = json.loads(out)["job_id"]
    assert json.loads(out)["status"] == "submitted"
    for _ in range(5):  # each pass polls what is due; the simulator finishes on the 2nd poll
        code, _, err = await cli("run", "--once")
        assert code == 0, err
        code, out, _ = await cli("job", job_id, "--json")
        if json.loads(out)["status"] == "delivered":
            break
    assert json.loads(out)["status"] == "delivered"


async def test_operator_resolves_an_unknown_outcome(
    cli: Any, png_file: Path, simulator: Simulator
) -> None:
    simulator.add_fault(
        Fault(
            method="POST",
            path_prefix="/api/v3/wavespeed-ai",
            after_handler=True,
            drop_connection=True,
        )
    )
    code, out, _ = await cli("animate", str(png_file), "--prompt", "x", "--user", "bob", "--json")
    result = json.loads(out)
    assert code == 1 and result["status"] == "expired" and result["held_micros"] == 100_000

    code, out, err = await cli("job", result["job_id"], "--resolve", "void", "--json")
    assert code == 0, err
    after = json.loads(out)
    assert after["held_micros"] == 0 and after["charged_micros"] == 0
    code, _, err = await cli("job", result["job_id"], "--resolve", "settle")
    assert code == 2 and "was already resolved: its hold is voided" in err


async def test_cli_event_id_reused_for_another_request_exits_2(cli: Any, png_file: Path) -> None:
    base = ("animate", str(png_file), "--prompt", "p", "--user", "alice", "--no-wait")
    code, _, err = await cli(*base, "--event-id", "E1", "--duration", "5")
    assert code == 0, err
    code, _, err = await cli(*base, "--event-id", "E1", "--duration", "10")
    assert code == 2
    assert err.strip() == (
        "error: Event id E1 was already used for a different request (another image, options"
        " or person); nothing was reserved. Use a new event id."
    )
    code, out, err = await cli(*base, "--event-id", "E1", "--duration", "5")
    assert code == 0 and "already handled" in out, err


async def test_two_operators_resolving_at_once_one_wins_one_is_told(
    cli: Any, png_file: Path, simulator: Simulator, database_url: str, tmp_path: Path
) -> None:
    simulator.add_fault(
        Fault(method="POST", path_prefix="/api/v3/wavespeed-ai", after_handler=True,
              drop_connection=True)
    )  # fmt: skip
    code, out, _ = await cli("animate", str(png_file), "--prompt", "x", "--user", "bob", "--json")
    job_id = json.loads(out)["job_id"]
    assert code == 1 and json.loads(out)["held_micros"] == 100_000

    env = {**os.environ, **env_for(settings_for(simulator, database_url))}

    async def resolve(outcome: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "job", job_id, "--resolve", outcome, "--json",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
            cwd=tmp_path,
        )  # fmt: skip
        stdout, stderr = await proc.communicate()
        assert proc.returncode is not None
        return proc.returncode, stdout.decode(), stderr.decode()

    results = await asyncio.gather(resolve("void"), resolve("settle"))
    assert sorted(code for code, _, _ in results) == [0, 2]
    (_, won, _), (_, _, lost) = sorted(results)
    assert lost.startswith(f"error: job {job_id} was already resolved: its hold is ")
    assert lost.count("\n") == 1 and "Error" not in lost
    after = json.loads(won)
    assert after["held_micros"] == 0
    notes = [h["note"] for h in after["history"]]
    assert sum(n.startswith("operator resolved the hold") for n in notes) == 1


async def test_run_delivers_where_the_job_says_and_records_an_absolute_path(
    cli: Any, png_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = await cli(
        *f"animate {png_file} --prompt x --user bob --no-wait --out wanted --json".split()
    )
    assert code == 0, err
    job_id = json.loads(out)["job_id"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # `run` started in another directory
    for _ in range(5):
        code, out, err = await cli("run", "--once")
        assert code == 0, err
        code, out, _ = await cli("job", job_id, "--json")
        if json.loads(out)["status"] == "delivered":
            break
    output = Path(json.loads(out)["output"])
    assert output == tmp_path / "wanted" / f"{job_id}.mp4"
    assert output.is_absolute() and output.stat().st_size > 0
    assert not (elsewhere / "animate-out").exists()
    code, out, _ = await cli("jobs", "--json")
    assert json.loads(out.splitlines()[0])["output"] == str(output)


async def test_cancel_says_what_was_recorded(cli: Any, png_file: Path) -> None:
    code, out, err = await cli(
        *f"animate {png_file} --prompt x --user bob --no-wait --json".split()
    )
    job_id = json.loads(out)["job_id"]
    code, out, err = await cli("job", job_id, "--cancel")
    assert code == 0, err
    assert (
        "Cancel requested: the provider has already started, so it will still charge $0.10 "
        "if it finishes the clip (nothing if it fails); the clip will be discarded."
    ) in out.splitlines()
    assert "cancel_requested: True" in out
    code, out, _ = await cli("job", job_id, "--json")
    assert json.loads(out)["cancel_requested"] is True


async def test_cancel_before_submission_says_nothing_was_charged(
    cli: Any, png_file: Path, simulator: Simulator
) -> None:
    simulator.add_fault(Fault(method="POST", path_prefix="/api/v3/wavespeed-ai", status=429))
    code, out, err = await cli(
        *f"animate {png_file} --prompt x --user bob --no-wait --json".split()
    )
    assert json.loads(out)["status"] == "reserved", err
    code, out, err = await cli("job", json.loads(out)["job_id"], "--cancel")
    assert code == 0, err
    assert (
        "Cancelled before it started: the $0.10 hold was released; nothing was charged."
    ) in out.splitlines()
    assert "status: cancelled" in out
