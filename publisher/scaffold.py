"""`publisher init DIR`: a new site with a commented config and an example article; with `templates=True`
also a copy of the built-in templates to customise (a copied template overrides the built-in one for good,
so it no longer gets publisher's fixes: copy only what you change)."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from publisher.config import SCHEMA
from publisher.errors import ConfigError
from publisher.resources import builtin_templates

BEFORE_SENDING = {
    "site.url": "the public address of the site, e.g. https://news.yoursite.org/ (links in feeds and "
                "emails start with it; localhost works only on this machine)",
    "email.from": "the sender, e.g. \"My News <news@yoursite.org>\" (the default, noreply@ the site.url "
                  "host, is noreply@localhost until site.url is set)",
}


def _toml(value: object) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value).lower() if isinstance(value, bool) else str(value)


def scaffold(directory: Path, now: datetime, *, templates: bool = False) -> list[Path]:
    """Write the new site's files (and, with `templates`, copies of the built-in templates); refuse to
    overwrite anything."""
    source = builtin_templates()
    env = Environment(loader=FileSystemLoader(source / "init"), undefined=StrictUndefined,
                      keep_trailing_newline=True, autoescape=False)
    env.filters["toml"] = _toml
    files = {
        directory / "publisher.toml": env.get_template("publisher.toml.j2").render(
            schema=SCHEMA, before_sending=BEFORE_SENDING),
        directory / "articles" / "welcome.md": env.get_template("welcome.md.j2").render(now=now),
    }
    copies = {directory / "templates" / t.name: t for t in sorted(source.glob("*.j2"))} if templates else {}
    if existing := [p for p in [*files, *copies] if p.exists()]:
        raise ConfigError(f"{existing[0]} already exists", "choose an empty folder for the new site")
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for path, template in copies.items():
        path.parent.mkdir(exist_ok=True)
        shutil.copy2(template, path)
    return [*files, *copies]
