"""Settings: money parsed exactly, blanks mean unset, secrets stay secret."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from bot.config import Settings, micros_to_usd, usd_to_micros


@pytest.mark.parametrize(
    ("usd", "micros"),
    [("0.40", 400_000), ("5", 5_000_000), ("0.000001", 1), (Decimal("19.99"), 19_990_000)],
)
def test_dollars_to_micros_is_exact(usd: str | Decimal, micros: int) -> None:
    assert usd_to_micros(usd) == micros


def test_sub_micro_precision_is_refused_not_rounded() -> None:
    with pytest.raises(ValueError, match="finer than one micro-dollar"):
        usd_to_micros("0.0000001")


@pytest.mark.parametrize(
    ("micros", "text"),
    [(400_000, "$0.40"), (5_000_000, "$5.00"), (1_234, "$0.001234"), (-250_000, "-$0.25")],
)
def test_micros_to_usd(micros: int, text: str) -> None:
    assert micros_to_usd(micros) == text


def test_blank_keys_are_unset_and_none_means_no_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAVESPEED_API_KEY", "")
    monkeypatch.setenv("USER_DAILY_CAP_USD", "none")
    monkeypatch.setenv("USER_CONCURRENT_JOBS", "")
    settings = Settings(_env_file=None)
    assert settings.wavespeed_api_key is None
    assert settings.user_daily_cap_usd is None
    assert settings.user_concurrent_jobs is None


def test_secrets_never_show_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAVESPEED_API_KEY", "ws-very-secret-key")
    settings = Settings(_env_file=None)
    assert "ws-very-secret-key" not in repr(settings)
    assert "ws-very-secret-key" not in str(settings.model_dump())


def test_bad_cap_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER_DAILY_CAP_USD", "-1")
    with pytest.raises(ValidationError, match="cannot be negative"):
        Settings(_env_file=None)
