"""Where the built-in templates live: inside the wheel (publisher/templates) or the repo's templates/."""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def builtin_templates() -> Path:
    for candidate in (PACKAGE / "templates", PACKAGE.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("publisher's templates folder is missing; reinstall publisher")
