"""The home page and the monthly archive pages, as an output of a publish run.

`index.html` shows the newest `feeds.limit` articles (summary, date, image), a subscribe form, the
feeds, the tags that have feeds ("Topics", from `publisher.outputs.tags.tag_index`) and the digest
archive. Once there are more articles than that, every article is also listed on exactly one page of
its month (months in the site's timezone), and the home page links to every month under "Older
articles". A month's page, `archive/YYYY-MM/index.html`, lists its articles; past 2 * PAGE - 1 of them it
lists only the newest ones and links to the month's earlier pages, `archive/YYYY-MM/page/N/index.html`:
full pages of PAGE articles counted from the month's oldest, so that a new article changes the month's
own page and leaves the earlier pages as they are (as Hugo paginates, numbered the other way round, the
way RFC 5005 numbers archived feed pages).

Each page is rendered only when what it shows changed: its memo key is made of the values the page
displays, the templates, the site settings and publisher's version (never the clock), so the same
inputs give the same bytes and an unchanged page is not rendered again. Adding an article to a month of
tens of thousands renders the home page and that month's own page (a new earlier page once every PAGE
articles), not the whole month.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from publisher import __version__
from publisher.memo import OnDisk, memo_key, memoized, templates_key
from publisher.outputs import Derived, Made, Placed, place
from publisher.pool import map_pages
from publisher.render.archive import (
    ARCHIVE_DIR,
    Card,
    DigestLink,
    Month,
    MonthPage,
    PageLink,
    month_key,
    render_home,
    render_month,
    render_month_page,
)

if TYPE_CHECKING:  # publisher.pipeline imports this module to list its outputs
    from publisher.config import Settings
    from publisher.pipeline import Archive

log = logging.getLogger(__name__)
HOME = "index.html"
PAGES_ROW = "archive_pages"  # meta row: the archive pages last made, to remove the ones no longer made
MONTH_PAGES_ROW = "archive_month_pages"  # meta row: the earlier month pages written, name -> [key sha, size]
PAGE = 100  # articles on an earlier page of a month; its own page shows PAGE to 2 * PAGE - 1


@dataclass(frozen=True)
class Plan:
    """What the home output shows: the months with their articles (slugs newest first; none while every
    article fits on the home page), the months as listed, and the inputs every page shares."""

    newest: list[str]  # every article, newest first
    months: dict[str, list[str]]
    index: list[Month]
    shared: tuple[object, ...]


def plan(archive: Archive) -> Plan:
    """The articles by month (months in the site's timezone) once they no longer fit on the home page."""
    settings = archive.settings
    newest = archive.newest()
    months = by_month(archive, newest) if len(newest) > settings.feeds.limit else {}
    shared = (__version__, templates_key(settings.paths.templates), settings.site, settings.feeds)
    return Plan(newest, months, [Month(key, len(slugs)) for key, slugs in months.items()], shared)


def home_made(archive: Archive, *, record: bool, derived: Derived | None = None) -> Made:
    """home_files(), the earlier pages of each month (`month_pages`), and the archive pages made before
    that are made no more (`gone`: a month whose articles all went, or every month once the articles fit on
    the home page again, or the earlier pages of a month that shrank)."""
    shown = plan(archive)
    made = Made(files=_home_files(archive, shown, derived or Derived(archive), record=record))
    month_pages(archive, shown, made, record=record)
    pages = sorted(name for name in [*made.files, *made.written, *made.kept] if name.startswith(f"{ARCHIVE_DIR}/"))
    saved = archive.store.meta_get(PAGES_ROW)
    before: list[str] = json.loads(saved) if saved else []
    if record and before != pages:
        archive.store.meta_put(PAGES_ROW, json.dumps(pages))
    made.gone = sorted(set(before) - set(pages))
    return made


def home_files(archive: Archive, *, record: bool) -> dict[str, bytes]:
    """index.html and, past `feeds.limit` articles, archive/YYYY-MM/index.html for every month (the month's
    newest articles: see `split_month`; its earlier pages are made by home_made)."""
    return _home_files(archive, plan(archive), Derived(archive), record=record)


def _home_files(archive: Archive, shown: Plan, derived: Derived, *, record: bool) -> dict[str, bytes]:
    settings, index = archive.settings, shown.index
    files = {HOME: home_page(archive, shown.newest[:settings.feeds.limit], index, shown.shared, record=record,
                             derived=derived)}
    for position, month in enumerate(index):
        newer = index[position - 1] if position else None
        older = index[position + 1] if position + 1 < len(index) else None
        head, earlier = split_month(month.key, shown.months[month.key])
        pages = [page for page, _ in earlier]
        cards = [card(archive, slug) for slug in head]
        name = f"{month.path}index.html"
        key = memo_key((shown.shared, "month", month, newer, older, pages)) + cards_key(cards)
        make = partial(render_month, settings, settings.paths.templates, month, cards, newer, older, pages)
        files[name] = _memoized(archive, name, key, record, make)
    log.info("home page with %d articles, %d monthly archive pages", min(len(shown.newest), settings.feeds.limit),
             len(index))
    return files


def split_month(key: str, slugs: list[str]) -> tuple[list[str], list[tuple[MonthPage, list[str]]]]:
    """The month's own page (newest first) and its earlier pages, oldest page first, each newest first.
    Earlier pages are full pages of PAGE articles counted from the month's oldest, so a page keeps what
    it holds while newer articles arrive; the month's own page shows the rest: PAGE to 2 * PAGE - 1
    articles (all of them in a month of fewer)."""
    full = max(0, len(slugs) // PAGE - 1)
    oldest_first = slugs[::-1]
    earlier = [(MonthPage(key, n + 1, n * PAGE + 1, (n + 1) * PAGE), oldest_first[n * PAGE:(n + 1) * PAGE][::-1])
               for n in range(full)]
    return slugs[:len(slugs) - full * PAGE], earlier


def month_pages(archive: Archive, shown: Plan, made: Made, *, record: bool) -> None:
    """archive/YYYY-MM/page/N/index.html of every month that has them: rendered (and staged) only when what
    the page shows changed or the file is not as written, else `kept`; the state keeps, in one meta row,
    each page's input key and size (as it does for the article pages). Many pages are rendered and staged
    in worker processes."""
    settings = archive.settings
    saved = archive.store.meta_get(MONTH_PAGES_ROW)
    known: dict[str, list[str | int]] = json.loads(saved) if saved else {}
    now: dict[str, list[str | int]] = {}
    jobs: list[tuple[str, str, tuple[Any, ...]]] = []  # name, key, the arguments of render_month_page
    with OnDisk(settings.paths.output) as on_disk:
        for position, month in enumerate(shown.index):
            older = shown.index[position + 1] if position + 1 < len(shown.index) else None
            _, earlier = split_month(month.key, shown.months[month.key])
            for n, (page, slugs) in enumerate(earlier):
                links = _page_links(month, earlier, n, older)
                name = f"{page.path}index.html"
                key = hashlib.sha256((memo_key((shown.shared, "month page", page, *links))
                                      + slugs_key(archive, slugs)).encode()).hexdigest()
                old = known.get(name)
                if old and old[0] == key and on_disk.still_written(name, old[1]):
                    made.kept[name], now[name] = int(old[1]), old
                    continue
                jobs.append((name, key, (month, page, [card(archive, slug) for slug in slugs], *links)))
    calls = ((settings, name, args, record) for name, _, args in jobs)
    for (name, key, _), placed in zip(jobs, map_pages(place_month_page, calls, len(jobs)), strict=True):
        made.take(placed)
        now[name] = [key, placed.sizes[name]]
    if record and now != known:
        archive.store.meta_put(MONTH_PAGES_ROW, json.dumps(now, sort_keys=True, separators=(",", ":")))
    log.info("earlier month pages: %d rendered, %d unchanged", len(jobs), len(now) - len(jobs))


def place_month_page(settings: Settings, name: str, args: tuple[Any, ...], record: bool) -> Placed:
    """One earlier month page rendered and placed in the output folder (in a worker process, too)."""
    data = render_month_page(settings, settings.paths.templates, *args)
    return place(settings.paths.output, {name: data}, record=record)


def _page_links(month: Month, earlier: list[tuple[MonthPage, list[str]]], n: int,
                older: Month | None) -> tuple[PageLink, PageLink | None]:
    """(newer, older) of earlier page n: the next page or the month's own page; the page before or, from
    the first page, the older month."""
    label = month.label
    newer = (PageLink(earlier[n + 1][0].path, f"{label}, page {n + 2}") if n + 1 < len(earlier)
             else PageLink(month.path, f"{label}, newest"))
    if n:
        return newer, PageLink(earlier[n - 1][0].path, f"{label}, page {n}")
    return newer, PageLink(older.path, older.label) if older else None


def slugs_key(archive: Archive, slugs: list[str]) -> str:
    """The memo key's part for the cards of these articles, made straight from the entries (what `card`
    shows; the site's timezone, URL and author are in the shared part of the key)."""
    entries, identities = archive.entries, archive.identities
    return repr([(e.title, slug, e.summary, e.image, identities[slug].published.timestamp(), e.reading_minutes,
                  e.author) for slug in slugs for e in (entries[slug],)])


def home_page(archive: Archive, slugs: list[str], months: list[Month], shared: tuple[object, ...], *,
              record: bool, derived: Derived | None = None) -> bytes:
    """index.html: the given articles, the month list, the digest archive, the tags that have feeds."""
    settings = archive.settings
    cards = [card(archive, slug) for slug in slugs]
    digests = digest_links(archive)
    topics = (derived or Derived(archive)).tags().topics()
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
    tz, identities = archive.settings.site.tz, archive.identities
    months: dict[int, list[str]] = {}  # year * 100 + month: cheaper to make than the key, once an article
    keys: dict[int, str] = {}
    for slug in newest:
        local = identities[slug].published.astimezone(tz)
        if (slugs := months.get(number := local.year * 100 + local.month)) is None:
            slugs = months[number] = []
            keys[number] = month_key(local)
        slugs.append(slug)
    return {keys[number]: slugs for number, slugs in months.items()}


def digest_links(archive: Archive) -> list[DigestLink]:
    """Every digest, newest first, with the title of its first article (when that article is still here)."""
    links = []
    for digest_id, created, slugs in archive.store.digest_history():
        lead = archive.entries[slugs[0]].title if slugs and slugs[0] in archive.entries else None
        links.append(DigestLink(digest_id, created, len(slugs), lead))
    return links


__all__ = ["ARCHIVE_DIR", "PAGE", "home_files", "home_made", "split_month"]
