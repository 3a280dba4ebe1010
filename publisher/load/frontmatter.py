"""YAML front matter, read deliberately.

PyYAML's BaseLoader keeps every scalar a string, so YAML 1.1 surprises never happen silently:
`guid: 0123` stays "0123", `title: 2024` stays "2024", and `draft: no` is interpreted here, on
purpose, as false. Each value is then converted by the table FIELDS, with the line it came from.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from publisher.errors import ArticleError
from publisher.load.source import xml_clean

BIG_ESCAPE = re.compile(r"\\U([0-9A-Fa-f]{8})")
BOOLEANS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


@dataclass(frozen=True)
class Raw:
    value: str | list[str]
    line: int


def split(rel: str, text: str) -> tuple[str | None, str, int]:
    """Return (front matter, body, line number where the body starts)."""
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        return None, text, 1
    for i, line in enumerate(lines[1:], 1):
        if line.strip() in ("---", "..."):
            return "\n".join(lines[1:i]), "\n".join(lines[i + 1:]), i + 2
    raise ArticleError(rel, "front matter is not closed", "end it with a line holding only ---", 1)


def _value(rel: str, node: yaml.Node, key: str) -> str | list[str]:
    if isinstance(node, yaml.ScalarNode):
        return str(node.value)
    if isinstance(node, yaml.SequenceNode) and all(isinstance(n, yaml.ScalarNode) for n in node.value):
        return [str(n.value) for n in node.value]
    raise ArticleError(rel, f"front matter '{key}' must be a value or a list of values",
                       "", node.start_mark.line + 2)


def _line_of_bad_escape(source: str) -> int:
    for number, line in enumerate(source.split("\n"), 2):
        if any(int(code, 16) > sys.maxunicode for code in BIG_ESCAPE.findall(line)):
            return number
    return 1


def parse_yaml(rel: str, source: str) -> dict[str, Raw]:
    """Front matter text -> {key: Raw(value, line)}; errors name the line."""
    try:
        node = yaml.compose(source, Loader=yaml.BaseLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 2 if mark else 1
        problem = getattr(e, "problem", None) or str(e).split("\n")[0]
        raise ArticleError(rel, f"broken front matter: {problem}", "fix the YAML between the --- lines",
                           line) from e
    except ValueError as e:  # PyYAML's chr() on an escape such as "\U00110000"
        raise ArticleError(rel, "broken front matter: an escape names no Unicode character",
                           "use escapes up to \\U0010FFFF", _line_of_bad_escape(source)) from e
    if node is None:
        return {}
    if not isinstance(node, yaml.MappingNode):
        raise ArticleError(rel, "front matter must be a mapping of key: value lines",
                           "for example 'title: My post'", node.start_mark.line + 2)
    found: dict[str, Raw] = {}
    for key_node, value_node in node.value:
        key = xml_clean(str(key_node.value))[0]  # a key only ever shows in messages
        found[key] = Raw(_value(rel, value_node, key), key_node.start_mark.line + 2)
    return found


def _text(raw: Raw, rel: str, key: str, tz: ZoneInfo) -> str:
    if isinstance(raw.value, list):
        raise ArticleError(rel, f"'{key}' must be a single value, not a list", "", raw.line)
    return raw.value.strip()


def _list(raw: Raw, rel: str, key: str, tz: ZoneInfo) -> tuple[str, ...]:
    items = raw.value if isinstance(raw.value, list) else raw.value.split(",")
    return tuple(dict.fromkeys(item.strip() for item in items if item.strip()))


def _bool(raw: Raw, rel: str, key: str, tz: ZoneInfo) -> bool:
    text = _text(raw, rel, key, tz).lower()
    if text not in BOOLEANS:
        text = xml_clean(text)[0]
        raise ArticleError(rel, f"'{key}: {text}' is not true or false", f"write {key}: true or {key}: false",
                           raw.line)
    return BOOLEANS[text]


def _datetime(raw: Raw, rel: str, key: str, tz: ZoneInfo) -> datetime:
    text = _text(raw, rel, key, tz)
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), tz)
        value = datetime.fromisoformat(text.replace(" ", "T", 1))
    except ValueError as e:
        text = xml_clean(text)[0]
        raise ArticleError(rel, f"'{key}: {text}' is not a date",
                           f"write {key}: 2026-11-25 or {key}: 2026-11-25T09:30:00+01:00", raw.line) from e
    return value if value.tzinfo else value.replace(tzinfo=tz)


Converter = Callable[[Raw, str, str, ZoneInfo], Any]
FIELDS: dict[str, Converter] = {
    "title": _text, "date": _datetime, "updated": _datetime, "author": _text, "summary": _text,
    "tags": _list, "slug": _text, "image": _text, "draft": _bool, "related": _list, "guid": _text,
    "link": _text, "image_alt": _text,
}
ALIASES = {"categories": "tags", "modified": "updated", "lastmod": "updated", "description": "summary",
           "id": "guid"}


def convert(rel: str, raw: dict[str, Raw], tz: ZoneInfo) -> tuple[dict[str, Any], dict[str, int], list[str]]:
    """Typed values, the line of each, and one warning per unknown key (with the closest valid key)."""
    values: dict[str, Any] = {}
    lines: dict[str, int] = {}
    unknown: list[str] = []
    for key, item in raw.items():
        name = ALIASES.get(key.lower(), key.lower())
        if name not in FIELDS:
            close = difflib.get_close_matches(name, list(FIELDS), n=1, cutoff=0.6)
            unknown.append(f"unknown front matter key '{key}' ignored"
                           + (f"; did you mean '{close[0]}'?" if close else ""))
            continue
        values[name] = FIELDS[name](item, rel, key, tz)
        lines[name] = item.line
    return values, lines, unknown
