"""The README is a user's guide that stays true: its configuration table is the settings
declaration's, and it stays short (measurements live in docs/)."""

from __future__ import annotations

import re
from pathlib import Path

from exchange.settings import reference_markdown

README = Path(__file__).resolve().parents[2] / "README.md"
_BLOCK = re.compile(r"<!-- settings:start -->\n(.*?)<!-- settings:end -->", re.DOTALL)


def test_the_configuration_table_is_generated_from_the_settings_declaration() -> None:
    block = _BLOCK.search(README.read_text())
    assert block is not None, "README lost its settings markers"
    assert block.group(1) == reference_markdown(), (
        "regenerate the README's table: `uv run exchange config` between the settings markers"
    )


def test_the_readme_is_a_guide_not_a_lab_notebook() -> None:
    text = README.read_text()
    assert len(text.encode()) <= 13_000
    for command in ("make run", "make test"):
        assert command in text
