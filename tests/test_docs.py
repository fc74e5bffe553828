"""The README is checked: every setting and every CLI option is documented there."""

from __future__ import annotations

from pathlib import Path

import typer

from colretrieve.settings import Settings
from indexer.cli import app

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_setting_is_documented():
    for name in Settings.model_fields:
        assert f"`{name}`" in README and f"`COLRETRIEVE_{name.upper()}`" in README, name


def test_every_cli_command_and_option_is_documented():
    group = typer.main.get_command(app)
    assert len(group.commands) >= 7
    rows = [line for line in README.splitlines() if line.startswith("| `colretrieve ")]
    for name, command in group.commands.items():
        row = next((r for r in rows if r.startswith(f"| `colretrieve {name} ")), None)
        assert row is not None, f"no README table row for {name}"
        options = [o for p in command.params for o in getattr(p, "opts", []) if o[0] == "-"]
        for option in options:
            assert option in row, (name, option)


def test_readme_opens_with_the_two_commands():
    first_block = README.split("```bash", 1)[1].split("```", 1)[0]
    assert "colretrieve quickstart" in first_block
    assert "pytest" in first_block
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert "python -m pytest" in ci and '".[dev]"' in ci
