"""The reader's pages of the site: the home page (index.html), the monthly archive pages
(archive/YYYY-MM/index.html) and, in a month of many articles, its earlier pages
(archive/YYYY-MM/page/N/index.html), from `index.html.j2`, `archive.html.j2` and `archive_page.html.j2`
(a site may override each).

What they show arrives as small frozen values (`Card`, `Month`, `DigestLink`), which are also what
the pages' memo keys are made of (`publisher.outputs.home`). Dates read as people write them
("29 November 2026"), in English whatever the machine's locale, in the site's timezone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from publisher.config import Settings
from publisher.render import feed_formats, uri
from publisher.render.templates import render
from publisher.tagslug import Topic

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
FEED_LABELS = {"rss": "RSS", "atom": "Atom", "json": "JSON Feed"}  # as readers name them
ARCHIVE_DIR = "archive"  # archive/YYYY-MM/index.html: a name of the output folder no slug may take


@dataclass(frozen=True)
class Card:
    """One article as a page lists it. `published` is in the site's timezone."""

    title: str
    url: str
    summary: str
    image: str | None
    published: datetime
    minutes: int
    author: str | None


@dataclass(frozen=True)
class Month:
    """A month that has an archive page: key "2026-11" and how many articles it holds."""

    key: str
    count: int

    @property
    def path(self) -> str:
        """The page's folder below the site's root, e.g. archive/2026-11/."""
        return f"{ARCHIVE_DIR}/{self.key}/"

    @property
    def label(self) -> str:
        year, month = self.key.split("-")
        return f"{MONTHS[int(month) - 1]} {year}"


@dataclass(frozen=True)
class MonthPage:
    """An earlier page of a month: page `number` holds the month's articles `first` to `last`, counted from
    its oldest (so a page, once full, keeps what it holds while newer articles arrive)."""

    key: str  # the month, "2026-11"
    number: int
    first: int
    last: int

    @property
    def path(self) -> str:
        """The page's folder below the site's root, e.g. archive/2026-11/page/3/."""
        return f"{ARCHIVE_DIR}/{self.key}/page/{self.number}/"


@dataclass(frozen=True)
class PageLink:
    """Where a pager link leads: the folder below the site's root and what the link says."""

    path: str
    label: str


@dataclass(frozen=True)
class DigestLink:
    """A digest in the archive: id (its file digests/<id>.html), when it was made, its first article."""

    id: str
    created: datetime
    count: int
    lead: str | None  # the first article's title, None when that article is gone


def human_date(when: datetime) -> str:
    """29 November 2026 (whatever the locale)."""
    return f"{when.day} {MONTHS[when.month - 1]} {when.year}"


def month_key(when: datetime) -> str:
    return f"{when.year:04}-{when.month:02}"


def _feeds(settings: Settings) -> list[dict[str, str]]:
    return [{"type": f.media_type, "url": settings.site.url + f.filename, "name": f.name,
             "label": FEED_LABELS.get(f.name, f.name.upper())}
            for f in feed_formats() if f.name in settings.feeds.formats]


def topic_feeds(settings: Settings, topic: Topic) -> dict[str, Any]:
    """A tag that has feeds, for a page: its name, article count, title (as its feeds are titled) and
    its feeds in the configured formats (`url`: the first of them, what the tag's name links to)."""
    feeds = [{"type": f.media_type, "url": settings.site.url + uri(topic.folder + f.filename), "name": f.name,
              "label": FEED_LABELS.get(f.name, f.name.upper())}
             for f in feed_formats() if f.name in settings.feeds.formats]
    return {"name": topic.name, "slug": topic.slug, "count": topic.count, "feeds": feeds,
            "url": feeds[0]["url"] if feeds else "", "title": f"{settings.site.title}: {topic.name}"}


def _card(card: Card) -> dict[str, Any]:
    return {"title": card.title, "url": card.url, "summary": card.summary, "image": card.image,
            "iso": card.published.isoformat(), "date": human_date(card.published), "minutes": card.minutes,
            "author": card.author}


def _digest(link: DigestLink, settings: Settings) -> dict[str, Any]:
    local = link.created.astimezone(settings.site.tz)
    more = link.count - 1 if link.lead else link.count
    return {"id": link.id, "url": f"digests/{link.id}.html", "iso": local.isoformat(), "date": human_date(local),
            "lead": link.lead, "more": more, "count": link.count}


def _month(month: Month, settings: Settings) -> dict[str, Any]:
    return {"key": month.key, "label": month.label, "count": month.count, "path": month.path,
            "url": settings.site.url + month.path, "year": month.key[:4]}


def _common(settings: Settings) -> dict[str, Any]:
    return {"site": settings.site, "feeds": _feeds(settings), "subscribe_url": settings.site.url + "subscribe"}


def render_home(settings: Settings, templates: Path, cards: Sequence[Card], months: Sequence[Month],
                digests: Sequence[DigestLink], topics: Sequence[Topic] = ()) -> bytes:
    """index.html: cards newest first, months newest first (empty: no archive pages), digests newest first,
    the tags that have feeds (most articles first)."""
    html = render(templates, "index.html.j2", **_common(settings), articles=[_card(c) for c in cards],
                  months=[_month(m, settings) for m in months], digests=[_digest(d, settings) for d in digests],
                  topics=[topic_feeds(settings, t) for t in topics])
    return html.encode("utf-8")


def _page(page: MonthPage, settings: Settings) -> dict[str, Any]:
    return {"number": page.number, "first": page.first, "last": page.last, "path": page.path,
            "url": settings.site.url + page.path}


def _link(link: PageLink | None, settings: Settings) -> dict[str, str] | None:
    return {"url": settings.site.url + link.path, "label": link.label} if link else None


def render_month(settings: Settings, templates: Path, month: Month, cards: Sequence[Card],
                 newer: Month | None, older: Month | None, pages: Sequence[MonthPage] = ()) -> bytes:
    """archive/YYYY-MM/index.html: the month's newest articles (every one unless it has earlier `pages`),
    newest first, its earlier pages (newest first) and the neighbouring months."""
    html = render(templates, "archive.html.j2", **_common(settings), month=_month(month, settings),
                  articles=[_card(c) for c in cards], newer=_month(newer, settings) if newer else None,
                  older=_month(older, settings) if older else None,
                  pages=[_page(p, settings) for p in reversed(pages)])
    return html.encode("utf-8")


def render_month_page(settings: Settings, templates: Path, month: Month, page: MonthPage, cards: Sequence[Card],
                      newer: PageLink, older: PageLink | None) -> bytes:
    """archive/YYYY-MM/page/N/index.html: an earlier page of the month, newest first, with links to the
    newer and the older page (the month's page; the older month). Shows nothing that changes while newer
    articles arrive (not the month's count), so it stays as written."""
    named = {k: v for k, v in _month(month, settings).items() if k != "count"}  # the count grows: not shown
    html = render(templates, "archive_page.html.j2", **_common(settings), month=named,
                  page=_page(page, settings), articles=[_card(c) for c in cards], newer=_link(newer, settings),
                  older=_link(older, settings))
    return html.encode("utf-8")

