"""`publisher init DIR`: a new site with a commented config, an example article and the templates."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from publisher.config import SCHEMA
from publisher.errors import ConfigError
from publisher.resources import builtin_templates


def _toml(value: object) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value).lower() if isinstance(value, bool) else str(value)


def scaffold(directory: Path, now: datetime) -> list[Path]:
    """Write the new site's files; refuse to overwrite anything."""
    source = builtin_templates()
    env = Environment(loader=FileSystemLoader(source / "init"), undefined=StrictUndefined,
                      keep_trailing_newline=True, autoescape=False)
    env.filters["toml"] = _toml
    files = {
        directory / "publisher.toml": env.get_template("publisher.toml.j2").render(schema=SCHEMA),
        directory / "articles" / "welcome.md": env.get_template("welcome.md.j2").render(now=now),
    }
    if existing := [p for p in files if p.exists()]:
        raise ConfigError(f"{existing[0]} already exists", "choose an empty folder for the new site")
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    created = list(files)
    target = directory / "templates"
    for template in sorted(source.glob("*.j2")):
        target.mkdir(exist_ok=True)
        if not (target / template.name).exists():
            shutil.copy2(template, target / template.name)
            created.append(target / template.name)
    return created
