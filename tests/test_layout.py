"""The dependency direction the README promises, checked on the source: providers/ and
storage/ never import bot/; the composition root imports no front door."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("package", ["providers", "storage"])
def test_providers_and_storage_never_import_bot(package: str) -> None:
    for path in (ROOT / package).rglob("*.py"):
        bad = {m for m in imports_of(path) if m == "bot" or m.startswith("bot.")}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_storage_does_not_import_provider_clients() -> None:
    for path in (ROOT / "storage").rglob("*.py"):
        bad = {m for m in imports_of(path) if m.startswith("providers") and m != "providers.money"}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


FRONT_DOORS = ("bot.cli", "bot.discord_adapter", "bot.slack_adapter", "bot.web", "bot.chat")


@pytest.mark.parametrize("module", ["app", "service", "runner", "submitter", "caps", "database"])
def test_the_core_imports_no_front_door(module: str) -> None:
    bad = {
        m
        for m in imports_of(ROOT / "bot" / f"{module}.py")
        if any(m == door or m.startswith(door + ".") for door in FRONT_DOORS)
    }
    assert not bad, f"bot/{module}.py imports {sorted(bad)}"


def test_nothing_cites_documents_outside_the_project() -> None:
    outside = ("PROVIDERS.md", "ARCHITECTURE.md", "PLATFORMS.md", "STYLE.md", "../shared")
    for path in ROOT.rglob("*"):
        if not path.is_file() or any(p in path.parts for p in (".venv", ".git", "__pycache__")):
            continue
        if path.suffix not in (".py", ".md", ".sql", ".toml", ".example", ".txt", ""):
            continue
        text = path.read_text("utf-8", errors="replace")
        cited = [name for name in outside if name in text and path.name != "test_layout.py"]
        assert not cited, f"{path.relative_to(ROOT)} cites {cited}"
