"""Render: articles -> bytes. Feed formats are rows of one table (name, file, media type, renderer).

One article never stops the feeds: when the set fails to render, each article is rendered alone, the
ones that fail are reported as Problems and the feeds are rendered without them (`isolate`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar
from urllib.parse import quote

from publisher.config import SiteSettings
from publisher.errors import OutputError, PublisherError
from publisher.models import Article, Problem

log = logging.getLogger(__name__)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
URI_SAFE = "!#$%&'()*+,/:;=?@[]~"  # RFC 3986 reserved characters, '%' and '~' (unreserved ones stay anyway)
FIX = "fix or remove the article"
T = TypeVar("T")
R = TypeVar("R")


def uri(value: str) -> str:
    """An IRI (or a sloppy URL) as a URI: characters that may not appear in a URI are percent-encoded as
    UTF-8 (RFC 3987 section 3.1); a valid URI is returned unchanged."""
    return quote(value, safe=URI_SAFE)


@dataclass(frozen=True)
class History:
    """RFC 5005 section 4 links of one archive document (or of the subscription document, which has only
    `prev`): format name -> public URL of that format's document. JSON Feed follows `prev` as next_url."""

    current: dict[str, str] = field(default_factory=dict)  # the subscription documents (archives only)
    prev: dict[str, str] = field(default_factory=dict)  # prev-archive: the next older archive document
    next: dict[str, str] = field(default_factory=dict)  # next-archive: the next newer archive document
    archive: bool = False  # an archive document (fh:archive), not a subscription document


@dataclass(frozen=True)
class FeedContext:
    """Everything a feed renderer needs. `updated` is the newest article's date, never the clock."""

    site: SiteSettings
    articles: Sequence[Article]
    feed_urls: dict[str, str]  # format name -> public URL of that feed (rel="self")
    hubs: tuple[str, ...] = ()  # WebSub hubs the feeds announce
    title: str = ""  # the feed's title; empty: the site's title
    history: History | None = None  # RFC 5005 archive links
    since: datetime = EPOCH  # `updated` of a document without articles (an empty newest archive page)
    feed_id: str = ""  # Atom's feed <id>; empty: the site's URL (the main feeds and their archive)
    # What one format's renderer built that another format of the same document reuses (feedgen's
    # generator serves RSS and Atom): never part of the document's identity.
    shared: dict[str, object] = field(default_factory=dict, compare=False, repr=False)

    @property
    def feed_title(self) -> str:
        return self.title or self.site.title

    @property
    def author(self) -> str:
        """Atom needs an author: the site's, else the site's title."""
        return self.site.author or self.site.title

    @property
    def updated(self) -> datetime:
        return max((a.modified for a in self.articles), default=self.since)


@dataclass(frozen=True)
class FeedFormat:
    name: str
    filename: str
    media_type: str
    render: Callable[[FeedContext], bytes]


def feed_formats() -> tuple[FeedFormat, ...]:
    """The table of feed formats (imports the renderers lazily: feedgen is slow to import)."""
    from publisher.render import feeds, jsonfeed

    return (
        FeedFormat("rss", FILENAMES["rss"], "application/rss+xml", feeds.render_rss),
        FeedFormat("atom", FILENAMES["atom"], "application/atom+xml", feeds.render_atom),
        FeedFormat("json", FILENAMES["json"], "application/feed+json", jsonfeed.render_json),
    )


FILENAMES = {"rss": "rss.xml", "atom": "atom.xml", "json": "feed.json"}


def feed_names(names: Sequence[str]) -> list[str]:
    """The files of the configured formats, without importing any renderer."""
    return [FILENAMES[name] for name in names]


def isolate(items: Sequence[T], make: Callable[[Sequence[T]], R], source: Callable[[T], str],
            what: str) -> tuple[R, list[Problem], list[T]]:
    """make(items), or, when that raises, make() of the items that render alone: (result, one Problem per
    item left out, the items kept). A failure that is no one item's (the empty set fails too: settings
    or templates) is raised as it came, or as an OutputError when it is not a PublisherError."""
    try:
        return make(items), [], list(items)
    except Exception as first:  # any error: the culprit is searched for below, and reported
        log.info("%s failed for the whole set (%s); rendering each article alone", what, first)
        if _error(make, []) is not None:
            if isinstance(first, PublisherError):
                raise
            raise OutputError(f"{what}: cannot be rendered: {first}",
                              "check the site settings and templates") from first
    kept, problems = [], []
    for item in items:
        error = _error(make, [item])
        if error is None:
            kept.append(item)
        else:
            text = error.message if isinstance(error, PublisherError) else f"{type(error).__name__}: {error}"
            text = (text.splitlines() or [""])[0]
            problems.append(Problem(source(item), f"cannot be rendered into {what}: {text}", FIX))
    try:
        return make(kept), problems, kept
    except Exception as e:  # several articles that fail only together
        raise OutputError(f"{what}: cannot be rendered: {e}", "run with -v and report the articles named") from e


def _error(make: Callable[[Sequence[T]], object], items: Sequence[T]) -> Exception | None:
    """The exception make(items) raises, or None."""
    try:
        make(items)
    except Exception as e:
        return e
    return None


def render_feeds_checked(site: SiteSettings, articles: Sequence[Article], names: Sequence[str],
                         hubs: Sequence[str] = (), *, folder: str = "", title: str = "",
                         history: History | None = None,
                         since: datetime = EPOCH, feed_id: str = "") -> tuple[dict[str, bytes], list[Problem]]:
    """filename -> bytes for each configured format, and a Problem for each article left out because
    it could not be rendered (the others are still published). `folder` ('' or 'a/b/') is where the
    files go below the output folder (the file names then start with it); `title` replaces the site's
    title; `history` adds RFC 5005 links; `since` is the date of a document with no articles; `feed_id`
    is a feed's own Atom id (a tag feed's), where it is not the site's."""
    formats = [f for f in feed_formats() if f.name in names]
    urls = {f.name: site.url + uri(folder) + f.filename for f in feed_formats()}

    def make(chosen: Sequence[Article]) -> dict[str, bytes]:
        context = FeedContext(site, chosen, urls, tuple(hubs), title, history, since, feed_id)
        return {folder + f.filename: f.render(context) for f in formats}

    files, problems, _ = isolate(articles, make, lambda a: a.entry.source, "the feeds")
    return files, problems


def render_feeds(site: SiteSettings, articles: Sequence[Article], names: Sequence[str]) -> dict[str, bytes]:
    """filename -> bytes for each configured format; articles that cannot be rendered are left out with
    a logged warning (render_feeds_checked returns them as Problems)."""
    files, problems = render_feeds_checked(site, articles, names)
    for problem in problems:
        log.warning("%s", problem)
    return files
