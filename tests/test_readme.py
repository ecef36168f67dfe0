"""The README documents every setting (generated table must be current)."""

from __future__ import annotations

from pathlib import Path

from pipeline.config import settings_table

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_settings_table_is_current() -> None:
    assert settings_table() in README.read_text(), (
        "README settings table is stale: paste pipeline.config.settings_table()"
    )


def test_readme_has_exactly_the_two_setup_commands() -> None:
    text = README.read_text()
    assert "make demo" in text and "make test" in text
    assert "make test" in (README.parent / ".ci" / "run").read_text()
