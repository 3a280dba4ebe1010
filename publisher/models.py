"""Frozen data types that cross stage boundaries (load -> enrich -> render -> write)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong with one input file: an error skips the article, a warning does not."""

    path: str
    message: str
    hint: str = ""
    line: int | None = None
    severity: Severity = "error"

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        text = f"{where}: {self.message}"
        return f"{text}; {self.hint}" if self.hint else text


@dataclass(frozen=True, slots=True)
class SourceFile:
    """An article file found in the articles folder."""

    path: str  # where to read it (a str: a Path per file costs time on large archives)
    rel: str  # path relative to the articles folder, with forward slashes
    mtime_ns: int
    size: int


@dataclass(frozen=True, slots=True)
class Document:
    """What a reader makes of one source file, before enrichment. `body_html` is not yet sanitized."""

    source: str
    slug: str
    title: str
    body_html: str
    content_hash: str
    date: datetime | None = None
    updated: datetime | None = None
    author: str | None = None
    summary: str | None = None
    tags: tuple[str, ...] = ()
    image: str | None = None
    draft: bool = False
    references: tuple[str, ...] = ()
    guid: str | None = None
    warnings: tuple[Problem, ...] = ()
    link: str | None = None  # front matter `link:`: the original, published elsewhere first
    image_alt: str | None = None
    lines: tuple[tuple[str, int], ...] = ()  # (field, line in the file) for messages, e.g. ("title", 2)


@dataclass(frozen=True, slots=True)
class Entry:
    """An enriched article without its HTML body (cheap to keep for the whole archive)."""

    source: str
    slug: str
    title: str
    summary: str
    reading_minutes: int
    content_hash: str
    date: datetime | None = None
    updated: datetime | None = None
    author: str | None = None
    tags: tuple[str, ...] = ()
    image: str | None = None
    draft: bool = False
    references: tuple[str, ...] = ()
    guid: str | None = None
    link: str | None = None  # the original, published elsewhere first (feeds and digest link to it)
    image_alt: str | None = None


@dataclass(frozen=True, slots=True)
class Identity:
    """What the state database fixed for an article on first sight (and on later edits)."""

    id: str
    published: datetime
    updated: datetime | None
    first_seen: datetime


@dataclass(frozen=True, slots=True)
class Link:
    title: str
    url: str


@dataclass(frozen=True, slots=True)
class Article:
    """An article ready to render: entry, identity, public URL, sanitized HTML and related links."""

    entry: Entry
    identity: Identity
    url: str
    html: str
    related: tuple[Link, ...] = ()

    @property
    def modified(self) -> datetime:
        """The time of the last change: `updated`, else `published`."""
        return self.identity.updated or self.identity.published


@dataclass(frozen=True, slots=True)
class Digest:
    """One digest: its id (YYYY-MM-DD, then -2, -3 on the same day), when it was made, what it carries."""

    id: str
    created: datetime
    articles: tuple[Article, ...]


@dataclass(frozen=True, slots=True)
class RenderedDigest:
    """A digest rendered once; `html` and `text` hold the unsubscribe placeholder delivery fills."""

    digest: Digest
    html: str
    text: str
    shown: int  # articles that fit under the size limit


@dataclass(frozen=True, slots=True)
class PublishReport:
    """What one publish run did, for the one-line summary."""

    read: int
    published: int
    skipped: int
    written: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    problems: tuple[Problem, ...] = field(default_factory=tuple)
    hidden: int = 0  # drafts and articles dated in the future
    digest: str | None = None  # id of the digest made by this run
    removed: tuple[str, ...] = ()  # files no longer made (pages of articles gone), removed by this run

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "error")
