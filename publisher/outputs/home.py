"""The home page and the monthly archive pages, as an output of a publish run.

`index.html` shows the newest `feeds.limit` articles (summary, date, image), a subscribe form, the
feeds, the tags that have feeds ("Topics", from `publisher.outputs.tags.tag_index`) and the digest
archive. Once there are more articles than that, every article is also listed
on the page of its month, `archive/YYYY-MM/index.html` (months in the site's timezone), and the
home page links to every month under "Older articles".

Each page is rendered only when what it shows changed: its memo key is made of the values the page
displays, the templates, the site settings and publisher's version (never the clock), so the same
inputs give the same bytes and an unchanged page is not rendered again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from publisher import __version__
from publisher.memo import memo_key, memoized, templates_key
from publisher.outputs import Made
from publisher.outputs.tags import tag_index
from publisher.render.archive import ARCHIVE_DIR, Card, DigestLink, Month, month_key, render_home, render_month

if TYPE_CHECKING:  # publisher.pipeline imports this module to list its outputs
    from publisher.pipeline import Archive

log = logging.getLogger(__name__)
HOME = "index.html"
PAGES_ROW = "archive_pages"  # meta row: the archive pages last made, to remove the ones no longer made


def home_made(archive: Archive, *, record: bool) -> Made:
    """home_files(), and the archive pages made before that are made no more (`gone`: a month whose
    articles all went, or every month once the articles fit on the home page again)."""
    files = home_files(archive, record=record)
    pages = sorted(name for name in files if name.startswith(f"{ARCHIVE_DIR}/"))
    saved = archive.store.meta_get(PAGES_ROW)
    before: list[str] = json.loads(saved) if saved else []
    if record and before != pages:
        archive.store.meta_put(PAGES_ROW, json.dumps(pages))
    return Made(files=files, gone=sorted(set(before) - set(pages)))


def home_files(archive: Archive, *, record: bool) -> dict[str, bytes]:
    """index.html and, past `feeds.limit` articles, archive/YYYY-MM/index.html for every month."""
    settings = archive.settings
    newest = archive.newest()
    months = by_month(archive, newest) if len(newest) > settings.feeds.limit else {}
    shared = (__version__, templates_key(settings.paths.templates), settings.site, settings.feeds)
    index = [Month(key, len(slugs)) for key, slugs in months.items()]
    files = {HOME: home_page(archive, newest[:settings.feeds.limit], index, shared, record=record)}
    for position, month in enumerate(index):
        newer = index[position - 1] if position else None
        older = index[position + 1] if position + 1 < len(index) else None
        cards = [card(archive, slug) for slug in months[month.key]]
        name = f"{month.path}index.html"
        key = memo_key((shared, "month", month, newer, older)) + cards_key(cards)
        make = partial(render_month, settings, settings.paths.templates, month, cards, newer, older)
        files[name] = _memoized(archive, name, key, record, make)
    log.info("home page with %d articles, %d monthly archive pages", min(len(newest), settings.feeds.limit),
             len(index))
    return files


def home_page(archive: Archive, slugs: list[str], months: list[Month], shared: tuple[object, ...], *,
              record: bool) -> bytes:
    """index.html: the given articles, the month list, the digest archive, the tags that have feeds."""
    settings = archive.settings
    cards = [card(archive, slug) for slug in slugs]
    digests = digest_links(archive)
    topics = tag_index(archive).topics()
    key = memo_key((shared, "home", months, digests, topics)) + cards_key(cards)
    return _memoized(archive, HOME, key, record,
                     lambda: render_home(settings, settings.paths.templates, cards, months, digests, topics))


def _memoized(archive: Archive, name: str, key: str, record: bool, make: Callable[[], bytes]) -> bytes:
    return memoized(archive.store, archive.settings.paths.output, name, key, make, record=record)


def card(archive: Archive, slug: str) -> Card:
    """What a page shows of an article (its date in the site's timezone)."""
    entry, site = archive.entries[slug], archive.settings.site
    published = archive.identities[slug].published.astimezone(site.tz)
    return Card(entry.title, site.page_url(slug), entry.summary, entry.image, published, entry.reading_minutes,
                entry.author or site.author or None)


def cards_key(cards: list[Card]) -> str:
    """The memo key's part for the cards a page shows (flat and fast: an archive page lists a month)."""
    return repr([(c.title, c.url, c.summary, c.image, c.published.isoformat(), c.minutes, c.author)
                 for c in cards])


def by_month(archive: Archive, newest: list[str]) -> dict[str, list[str]]:
    """Month key -> slugs, both newest first (the month of the publication date, in the site's timezone)."""
    tz = archive.settings.site.tz
    months: dict[str, list[str]] = {}
    for slug in newest:
        months.setdefault(month_key(archive.identities[slug].published.astimezone(tz)), []).append(slug)
    return months


def digest_links(archive: Archive) -> list[DigestLink]:
    """Every digest, newest first, with the title of its first article (when that article is still here)."""
    links = []
    for digest_id, created, slugs in archive.store.digest_history():
        lead = archive.entries[slugs[0]].title if slugs and slugs[0] in archive.entries else None
        links.append(DigestLink(digest_id, created, len(slugs), lead))
    return links


__all__ = ["ARCHIVE_DIR", "home_files", "home_made"]
