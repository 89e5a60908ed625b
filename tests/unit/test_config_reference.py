"""The configuration reference in docs/operations.md is exactly what config_reference renders
from the code's defaults, and it describes every setting the code has."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from assignsvc import config_reference
from assignsvc.cli.main import build_parser
from assignsvc.config import ServerConfig

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def serve_flags() -> set[str]:
    """Every long option of `assignsvc serve` but --help."""
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            serve = action.choices["serve"]
            return {o for a in serve._actions for o in a.option_strings if o.startswith("--") and o != "--help"}
    raise AssertionError("no serve subcommand")


def test_the_page_holds_what_the_code_generates() -> None:
    page = OPERATIONS.read_text()
    assert config_reference.BEGIN in page and config_reference.END in page, "the markers are gone"
    assert config_reference.replace_section(page, config_reference.render()) == page, "run `make docs-config`"


def test_every_config_field_has_a_row() -> None:
    assert config_reference.undescribed() == set()


def test_the_rows_name_the_serve_flags_exactly() -> None:
    assert {s.flag for s in config_reference.SERVE} == serve_flags()


def test_defaults_come_from_the_code(monkeypatch: pytest.MonkeyPatch) -> None:
    # A changed default changes the page: the check is not a comparison of two copies.
    before = config_reference.render()
    monkeypatch.setattr(config_reference, "ServerConfig", lambda: ServerConfig(port=6000))
    after = config_reference.render()
    assert "| `--port` | `ASSIGNSVC_PORT` | `50051` |" in before
    assert "| `--port` | `ASSIGNSVC_PORT` | `6000` |" in after


def test_main_rewrites_only_the_section(tmp_path: Path) -> None:
    page = tmp_path / "ops.md"
    page.write_text(f"# Title\n\n{config_reference.BEGIN}\nstale\n{config_reference.END}\n\nAfter.\n")
    assert config_reference.main([str(page)]) == 0
    text = page.read_text()
    assert text.startswith("# Title\n\n") and text.endswith("\n\nAfter.\n") and "stale" not in text
    assert config_reference.render() in text
