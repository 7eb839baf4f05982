"""Settings: blanks mean unset, secrets stay secret, bad values are one sentence."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.config import Settings


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


def test_env_example_documents_every_setting_and_nothing_else() -> None:
    import re
    from pathlib import Path

    from bot.config import env_file_warnings, load_settings

    example = Path(__file__).resolve().parents[2] / ".env.example"
    text = example.read_text("utf-8")
    named = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))
    assert named == {name.upper() for name in Settings.model_fields}
    assert env_file_warnings(example) == []
    load_settings(_env_file=example)  # the example itself is a valid configuration
