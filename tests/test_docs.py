"""The README stays true: every setting and every command is documented, and the quick start is there."""

from __future__ import annotations

import click

from publisher.cli import main
from publisher.config import SCHEMA
from tests.conftest import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_documented_with_its_default() -> None:
    for section, fields in SCHEMA.items():
        for key, field in fields.items():
            row = next((line for line in README.splitlines() if line.startswith(f"| `{section}.{key}` |")), None)
            assert row is not None, f"{section}.{key} is missing from the README's table"
            default = f'"{field.default}"' if isinstance(field.default, str) else str(field.default).lower()
            if isinstance(field.default, float):
                default = str(field.default)
            if isinstance(field.default, list):
                default = "[" + ", ".join(f'"{v}"' for v in field.default) + "]"
            assert default in row, f"{section}.{key}: README shows another default than {default}"


def test_every_command_is_documented() -> None:
    assert isinstance(main, click.Group)
    for name in main.commands:
        assert f"`publisher {name}" in README, f"command {name} is missing from the README"


def test_readme_gives_the_two_fresh_machine_commands() -> None:
    assert "pip install . && .venv/bin/publisher publish" in README
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    test_command = next(line for line in README.splitlines() if "pytest" in line and "pip install" in line)
    assert test_command.strip() in ci, ".ci/run must run exactly the README's test command"
