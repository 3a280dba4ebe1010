"""The Jinja2 environment: a site's own templates/ folder overrides the built-in templates.

Autoescaping is on for .mjml.j2 and .html.j2 and off for .txt.j2; undefined variables are errors
(StrictUndefined), reported as a TemplateProblem naming the template and line.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateError,
    TemplateSyntaxError,
)

from publisher.errors import PublisherError
from publisher.resources import builtin_templates


class TemplateProblem(PublisherError):
    """A template does not parse or uses a variable that does not exist."""


def _autoescape(name: str | None) -> bool:
    return bool(name) and str(name).endswith((".mjml.j2", ".html.j2"))


@cache
def environment(site_templates: Path) -> Environment:
    loaders = [FileSystemLoader(str(site_templates))] if site_templates.is_dir() else []
    env = Environment(loader=ChoiceLoader([*loaders, FileSystemLoader(str(builtin_templates()))]),
                      autoescape=_autoescape, undefined=StrictUndefined, keep_trailing_newline=True,
                      trim_blocks=True, lstrip_blocks=True)
    return env


def render(site_templates: Path, name: str, **context: Any) -> str:
    """Render one template; errors name the template (and line) and say what to do."""
    env = environment(site_templates)
    try:
        return env.get_template(name).render(**context)
    except TemplateSyntaxError as e:
        raise TemplateProblem(f"{e.filename or name}:{e.lineno}: template syntax error: {e.message}",
                              "fix the template, or delete it to use the built-in one") from e
    except TemplateError as e:
        raise TemplateProblem(f"{name}: template error: {e.message}",
                              "fix the template, or delete it to use the built-in one") from e

