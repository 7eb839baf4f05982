"""Start-up time of the command line: how long `python -m bot models` takes, beside what
the interpreter alone takes in the same run.

    python bench/startup.py [--runs N] [--json]

Each command runs N times (default 21) as a fresh process, interleaved so background load
hits all alike; the figure is the median wall time, with the fastest and slowest. The
reference is `python -c pass` (the interpreter's own start), so the ratio says how many
interpreter starts the command costs. `models` reads no network; with a provider key set it
also reads the database for refused keys (the "with a key" row: a migrated SQLite file).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

KEY = {"WAVESPEED_API_KEY": "startup-bench-key"}
# name -> (arguments, environment added)
COMMANDS: dict[str, tuple[list[str], dict[str, str]]] = {
    "reference: python -c pass": (["-c", "pass"], {}),
    "python -m bot models": (["-m", "bot", "models"], {}),
    "python -m bot models --json": (["-m", "bot", "models", "--json"], {}),
    "models, with a key and a database": (["-m", "bot", "models"], KEY),
    "python -m bot --help": (["-m", "bot", "--help"], {}),
}


def measure(runs: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WAVESPEED", "NOVITA"))}
    env["PYTHONPATH"] = str(ROOT)
    with tempfile.TemporaryDirectory() as cwd:
        subprocess.run(
            [sys.executable, "-m", "bot", "migrate"], cwd=cwd, env=env, check=True,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(runs):
            for name, (argv, extra) in COMMANDS.items():
                start = time.perf_counter()
                subprocess.run(
                    [sys.executable, *argv], cwd=cwd, env={**env, **extra}, check=True,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
                times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    times = measure(args.runs)
    reference = statistics.median(times["reference: python -c pass"])
    rows = {
        name: {
            "median_s": round(statistics.median(t), 4),
            "min_s": round(min(t), 4),
            "max_s": round(max(t), 4),
            "ratio_to_reference": round(statistics.median(t) / reference, 1),
        }
        for name, t in times.items()
    }
    if args.json:
        print(json.dumps({"runs": args.runs, "commands": rows}))
        return
    print(f"{'command':<36} {'median':>8} {'min':>8} {'max':>8}  x python -c pass")
    for name, row in rows.items():
        print(
            f"{name:<36} {row['median_s']:>7.3f}s {row['min_s']:>7.3f}s {row['max_s']:>7.3f}s"
            f"  {row['ratio_to_reference']:>5.1f}"
        )


if __name__ == "__main__":
    main()
