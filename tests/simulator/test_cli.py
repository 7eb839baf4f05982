"""`python -m bot simulator`: the listening line comes first, and the server answers."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from bot.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_prints_listening_line_first_then_serves_until_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "simulator", "--port", "0", "--clip-mode", "static",
         "--api-key", "k1", "--render-s", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        match = re.fullmatch(r"listening on (http://127\.0\.0\.1:(\d+))\n", first)
        assert match, f"first line was {first!r}"
        base = match.group(1)
        with httpx.Client(base_url=base, trust_env=False) as client:
            ok = client.get("/api/v3/balance", headers={"Authorization": "Bearer k1"})
            assert ok.status_code == 200
            assert client.get("/api/v3/balance").status_code == 401
            assert client.get("/_sim/stats").json()["tasks"] == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--failure-rate", "2"], "failure_rate"),
        (["--concurrency-cap", "0"], "concurrency_cap"),
    ],
)
def test_bad_options_exit_2_with_one_sentence(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulator", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: bad simulator option") and needle in captured.err


def test_bad_render_range_is_an_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["simulator", "--render-s", "6-2"])
    assert exc.value.code == 2
    assert "--render-s" in capsys.readouterr().err
