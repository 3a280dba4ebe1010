"""Render: articles -> bytes. Feed formats are rows of one table (name, file, media type, renderer)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from publisher.config import SiteSettings
from publisher.models import Article

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class FeedContext:
    """Everything a feed renderer needs. `updated` is the newest article's date, never the clock."""

    site: SiteSettings
    articles: Sequence[Article]
    feed_urls: dict[str, str]  # format name -> public URL of that feed

    @property
    def author(self) -> str:
        """Atom needs an author: the site's, else the site's title."""
        return self.site.author or self.site.title

    @property
    def updated(self) -> datetime:
        return max((a.modified for a in self.articles), default=EPOCH)


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


def render_feeds(site: SiteSettings, articles: Sequence[Article], names: Sequence[str]) -> dict[str, bytes]:
    """filename -> bytes for each configured format."""
    formats = [f for f in feed_formats() if f.name in names]
    context = FeedContext(site, articles, {f.name: site.url + f.filename for f in feed_formats()})
    return {f.filename: f.render(context) for f in formats}
