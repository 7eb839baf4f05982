"""`python -m bot models` and `python -m bot quote`, through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main

ENV_NAMES = ("WAVESPEED_API_KEY", "NOVITA_API_KEY", "PRICE_OVERRIDES")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No stray keys, overrides or .env from the machine running the tests."""
    monkeypatch.chdir(tmp_path)
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def json_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


def test_models_json_lists_every_model_with_options_prices_and_state(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WAVESPEED_API_KEY", "ws-secret-key")
    code, out, err = run(capsys, "models", "--json")
    assert code == 0
    rows = {row["id"]: row for row in json_lines(out)}
    assert list(rows) == ["openvideo", "openvideo-lora", "sora-2", "wan-2.2-fast", "wan-2.1"]
    assert "ws-secret-key" not in out + err
    ov = rows["openvideo-lora"]
    assert ov["enabled"] is True and ov["reason"] == ""
    assert ov["durations"] == list(range(3, 21))
    assert ov["resolutions"] == ["480p", "720p", "1080p"]
    assert ov["presets"] == ["tuned", "original"]
    assert ov["loras"][0]["max_count"] == 13 and "omninft" in ov["loras"][0]["keys"]
    assert ov["price"]["amounts_micros"] == {"480p": 30_000, "720p": 50_000, "1080p": 70_000}
    row = {"resolution": "720p", "duration": 8, "cost_micros": 400_000, "cost_usd": "0.40"}
    assert row in ov["prices"]
    assert rows["sora-2"]["resolutions"] == [] and rows["sora-2"]["seed_max"] is None
    wan = rows["wan-2.1"]
    assert wan["enabled"] is False and wan["price"] is None and wan["prices"] == []
    assert "NOVITA_API_KEY" in wan["reason"] and "PRICE_OVERRIDES" in wan["reason"]


def test_models_without_keys_says_why_each_is_disabled(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "models", "--json")
    assert code == 0
    for row in json_lines(out):
        assert row["enabled"] is False
        key = "NOVITA_API_KEY" if row["provider"] == "novita" else "WAVESPEED_API_KEY"
        assert key in row["reason"]


def test_models_with_novita_key_and_override_enables_wan21(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOVITA_API_KEY", "nv-key")
    monkeypatch.setenv("PRICE_OVERRIDES", '{"wan-2.1": {"480p": "0.30", "720p": "0.45"}}')
    code, out, _ = run(capsys, "models", "--json")
    assert code == 0
    wan = json_lines(out)[-1]
    assert wan["id"] == "wan-2.1" and wan["enabled"] is True
    assert wan["prices"] == [
        {"resolution": "480p", "duration": 5, "cost_micros": 300_000, "cost_usd": "0.30"},
        {"resolution": "720p", "duration": 5, "cost_micros": 450_000, "cost_usd": "0.45"},
    ]
    assert wan["price"]["source"] == "PRICE_OVERRIDES (operator)"


def test_models_human_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "models")
    assert code == 0
    assert "openvideo-lora" in out and "DISABLED" in out
    assert "$0.05/s at 720p" in out
    assert "$0.16 per 8 s clip" in out
    assert "https://wavespeed.ai/docs/docs-api/openai/openai-sora-2-image-to-video" in out


def test_models_refuses_bad_overrides(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRICE_OVERRIDES", '{"wan-2.1": 0.3}')
    code, out, err = run(capsys, "models", "--json")
    assert code == 2
    assert out == ""
    assert err.startswith("error: PRICE_OVERRIDES is not usable: ") and '"0.30"' in err
    assert len(err.strip().splitlines()) == 1


def test_bad_override_json_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRICE_OVERRIDES", "{not json")
    code, out, err = run(capsys, "quote", "--model", "sora-2", "--json")
    assert code == 2 and out == ""
    assert err.startswith("error: PRICE_OVERRIDES is not JSON: use a JSON object such as")


def test_quote_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys,
        "quote",
        "--model",
        "openvideo-lora",
        "--duration",
        "8",
        "--resolution",
        "720p",
        "--lora",
        "omninft=0.8",
        "--preset",
        "original",
        "--json",
    )
    assert code == 0 and err == ""
    assert json_lines(out) == [
        {
            "model": "openvideo-lora",
            "cost_micros": 400_000,
            "cost_usd": "0.40",
            "billed_seconds": 8,
            "duration": 8,
            "resolution": "720p",
            "basis": "$0.05/s x 8 s at 720p",
        }
    ]


@pytest.mark.parametrize(
    ("argv", "cost_usd", "billed"),
    [
        (["--model", "openvideo"], "0.10", 5),
        (["--model", "openvideo", "--duration", "3", "--resolution", "1080p"], "0.30", 5),
        (["--model", "sora-2", "--duration", "20"], "2.00", 20),
        (["--model", "wan-2.2-fast", "--duration", "8"], "0.16", None),
        (
            [
                "--model",
                "wan-2.2-fast",
                "--lora",
                "https://h/l.safetensors?v=2=1.5",
                "--high-noise-lora",
                "https://h/h.safetensors=1",
                "--low-noise-lora",
                "https://h/l2.safetensors=0.5",
            ],
            "0.10",
            None,
        ),
    ],
)
def test_quote_prices(
    capsys: pytest.CaptureFixture[str], argv: list[str], cost_usd: str, billed: int | None
) -> None:
    code, out, _ = run(capsys, "quote", *argv, "--json")
    assert code == 0
    (row,) = json_lines(out)
    assert row["cost_usd"] == cost_usd and row["billed_seconds"] == billed


def test_quote_human_output_mentions_a_missing_key(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "quote", "--model", "sora-2", "--duration", "8")
    assert code == 0
    assert out.splitlines()[0] == "sora-2: $0.80 ($0.10/s x 8 s)"
    assert "WAVESPEED_API_KEY" in out


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--model", "sora-2", "--duration", "7"], "choose 4, 8, 12, 16 or 20"),
        (["--model", "sora-2", "--resolution", "720p"], "sora-2 takes no resolution"),
        (["--model", "openvideo", "--lora", "omninft=1"], "openvideo takes no LoRAs"),
        (["--model", "openvideo-lora", "--lora", "omnift=1"], "did you mean 'omninft'?"),
        (["--model", "openvideo-lora", "--lora", "omninft"], "KEY=SCALE"),
        (["--model", "openvideo-lora", "--lora", "omninft=7"], "out of range: use 0 to 4"),
        (["--model", "openvideo", "--seed", "99999999999"], "seed 99999999999 is out of range"),
        (["--model", "openvideo", "--duration", "five"], "is not a whole number"),
        (["--model", "nope"], "unknown model 'nope'"),
        ([], "choose a model with --model"),
        (["--model", "wan-2.1"], "PRICE_OVERRIDES"),
    ],
)
def test_quote_refusals_exit_2_with_one_sentence(
    capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str
) -> None:
    code, out, err = run(capsys, "quote", *argv, "--json")
    assert code == 2
    assert out == ""
    assert err.startswith("error: ") and fragment in err
    assert len(err.strip().splitlines()) == 1


def test_quote_reports_every_problem_together(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        capsys,
        "quote",
        "--model",
        "openvideo-lora",
        "--duration",
        "30",
        "--lora",
        "omnift=1",
        "--lora",
        "sulphur=9",
    )
    assert code == 2
    assert "duration 30" in err and "omnift" in err and "scale 9" in err


def test_quote_wan21_with_override(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "PRICE_OVERRIDES", '{"wan-2.1": {"per_clip": {"480p": "0.3", "720p": "0.5"}}}'
    )
    code, out, _ = run(capsys, "quote", "--model", "wan-2.1", "--resolution", "720p", "--json")
    assert code == 0
    row = json_lines(out)[0]
    assert (row["cost_micros"], row["cost_usd"], row["billed_seconds"]) == (500_000, "0.50", None)


def test_quote_of_a_model_turned_off_by_override(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRICE_OVERRIDES", '{"sora-2": null}')
    code, _, err = run(capsys, "quote", "--model", "sora-2")
    assert code == 2 and "turned off by PRICE_OVERRIDES" in err
