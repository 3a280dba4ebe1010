"""RFC 5005 archived feeds (section 4): the articles that left the subscription documents, in fixed pages.

`feed-archive/<N>/rss.xml`, `atom.xml`, `feed.json` (the configured formats), N = 1 for the oldest page.
Which page holds an article is sticky, kept in one meta row of the state (`ROW`): each run drops the ids
that are no longer published (only their pages change; an emptied page stays, so names never shift),
keeps the newest `feeds.limit` of the articles not yet archived for the subscription documents, and
appends the others, oldest first by (first seen, published, id), to the last page until it holds
`feeds.archive_page`, then to new pages. Whenever the last page fills, an empty page follows it, so the
newest archive document is always the partial one and a full page gets its final `next-archive` link
when it fills: its bytes never change again, unless one of its own articles is edited or goes. A change of
`feeds.limit` or `feeds.archive_page` (or a missing or unreadable row) pages every article again.

Each document is rendered only when its memo key (its items, its links, the site settings, publisher's
version) changed or the file is not there with the size it was written with; archive items carry no
related-reading list, so a full page does not depend on rankings. Documents no longer made are `gone`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from publisher import __version__
from publisher.memo import OnDisk, memo_key
from publisher.models import Article, Problem
from publisher.outputs import ARCHIVE_FEEDS, Derived, Made, Placed, place
from publisher.pool import map_pages
from publisher.render import EPOCH, FILENAMES, History, render_feeds_checked, uri

if TYPE_CHECKING:
    from pathlib import Path

    from publisher.config import Settings, SiteSettings
    from publisher.pipeline import Archive

log = logging.getLogger(__name__)
ROW = "feed_archive"  # meta row: {"limit", "page", "pages": [[identity id, ...], ...], "files": Written}
Written = dict[str, list[str | int]]  # archive document -> [memo key sha, sha256, size]
Rendered = tuple[Placed, list[Problem]]  # a page's documents (placed), the articles they left out


@dataclass
class Plan:
    """Which articles go where this run."""

    subscription: list[str]  # slugs of the subscription documents, newest first
    pages: list[list[str]]  # identity ids of each archive page, oldest page first, oldest article first
    slugs: dict[str, str]  # identity id -> slug, of every published article
    files: Written = field(default_factory=dict)  # archive documents written before: name -> [key, sha, size]


@dataclass(frozen=True)
class Saved:
    """The meta row as this module writes it."""

    limit: int
    page: int
    pages: list[list[str]]
    files: Written


def _saved(archive: Archive) -> Saved | None:
    """The meta row, or None when it is missing or not what this module writes."""
    text = archive.store.meta_get(ROW)
    if text is None:
        return None
    try:
        row = json.loads(text)
        saved = Saved(row["limit"], row["page"], row["pages"], row["files"])
        valid = (isinstance(saved.limit, int) and isinstance(saved.page, int) and isinstance(saved.files, dict)
                 and all(isinstance(p, list) and all(isinstance(i, str) for i in p) for p in saved.pages))
    except (ValueError, TypeError, KeyError):
        valid = False
    if not valid:
        log.info("feed archive: the state's page assignment is unreadable; paging every article again")
        return None
    return saved


def plan_archive(archive: Archive) -> Plan:
    """The subscription documents' articles and the archive pages, from the saved assignment."""
    feeds = archive.settings.feeds
    slugs = {archive.identities[s].id: s for s in archive.entries}
    saved = _saved(archive)
    pages: list[list[str]] = []
    if saved is not None and (saved.limit, saved.page) == (feeds.limit, feeds.archive_page):
        pages = [[i for i in page if i in slugs] for page in saved.pages]
    elif saved is not None:
        log.info("feed archive: feeds.limit or feeds.archive_page changed; paging every article again")
    archived = {i for page in pages for i in page}
    waiting = [s for s in archive.newest() if archive.identities[s].id not in archived]
    rest = sorted(waiting[feeds.limit:], key=lambda s: _age(archive, s))
    append(pages, [archive.identities[s].id for s in rest], feeds.archive_page)
    return Plan(waiting[:feeds.limit], pages, slugs, saved.files if saved is not None else {})


def _age(archive: Archive, slug: str) -> tuple[str, str, str]:
    ident = archive.identities[slug]
    return ident.first_seen.isoformat(), ident.published.isoformat(), ident.id


def append(pages: list[list[str]], ids: list[str], size: int) -> None:
    """Append ids to the last page until it holds `size`, then to new pages; a full last page gets an
    empty page after it (the newest page is always the partial one)."""
    for ident in ids:
        if not pages or len(pages[-1]) >= size:
            pages.append([])
        pages[-1].append(ident)
    if pages and len(pages[-1]) >= size:
        pages.append([])


def urls(settings: Settings, folder: str) -> dict[str, str]:
    """Format name -> public URL of the documents in `folder` ('' or 'a/b/'), for the configured formats."""
    return {fmt: settings.site.url + uri(folder) + FILENAMES[fmt] for fmt in settings.feeds.formats}


def folder(number: int) -> str:
    return f"{ARCHIVE_FEEDS}/{number}/"


def subscription_history(settings: Settings, plan: Plan) -> History | None:
    """The subscription documents' prev-archive link to the newest archive page (None: no archive)."""
    return History(prev=urls(settings, folder(len(plan.pages)))) if plan.pages else None


def page_history(settings: Settings, number: int, count: int) -> History:
    """Page `number` of `count`: current, prev-archive (older), next-archive (newer), fh:archive."""
    return History(current=urls(settings, ""),
                   prev=urls(settings, folder(number - 1)) if number > 1 else {},
                   next=urls(settings, folder(number + 1)) if number < count else {}, archive=True)


@dataclass(frozen=True)
class Job:
    """One archive page whose documents are rendered this run: the formats to render and their memo key."""

    number: int
    slugs: list[str]
    formats: list[str]
    history: History
    since: datetime
    key: str


def archive_made(archive: Archive, plan: Plan, *, record: bool, derived: Derived | None = None) -> Made:
    """Every archive document: rendered when its key changed (files staged), else kept; and the ones
    made before that are made no more (`gone`). Records the assignment when `record`."""
    settings = archive.settings
    made, now = Made(), Written()
    shared = memo_key((__version__, settings.site))
    texts = (derived or Derived(archive)).texts()
    with OnDisk(settings.paths.output) as on_disk:
        jobs = [job for number in range(1, len(plan.pages) + 1)
                if (job := _page(archive, plan, number, Keyed(shared, texts, on_disk), made, now)) is not None]
    for job, (placed, problems) in zip(jobs, render_pages(archive, jobs, record=record), strict=True):
        made.left_out += problems
        for name, size in placed.sizes.items():  # with an article left out: rendered again next time (and reported)
            now[name] = ["" if problems else job.key, placed.digests[name], size]
        made.take(placed)
    made.gone = sorted(set(plan.files) - set(now))
    if record:
        row = {"limit": settings.feeds.limit, "page": settings.feeds.archive_page, "pages": plan.pages,
               "files": dict(sorted(now.items()))}
        text = json.dumps(row, separators=(",", ":"))
        if archive.store.meta_get(ROW) != text:
            archive.store.meta_put(ROW, text)
    log.info("feed archive: %d pages, %d documents rendered, %d unchanged, %d to remove", len(plan.pages),
             len(made.written) + len(made.files), len(made.kept), len(made.gone))
    return made


@dataclass(frozen=True)
class Keyed:
    """What the keys of every archive page share: the site's part, each article's memo-key text
    (memo.article_text, made once a run), the output folder opened once."""

    shared: str
    texts: dict[str, str]
    on_disk: OnDisk


def _page(archive: Archive, plan: Plan, number: int, keyed: Keyed, made: Made, now: Written) -> Job | None:
    """One archive page's documents: kept when their key and size are as written (None), else the Job
    that renders them."""
    settings = archive.settings
    slugs = [plan.slugs[i] for i in plan.pages[number - 1]]
    history = page_history(settings, number, len(plan.pages))
    items = items_text(keyed.texts, slugs)
    since = _since(archive, plan, number) if not slugs else EPOCH
    key = hashlib.sha256((keyed.shared + memo_key((history, since)) + items).encode()).hexdigest()
    todo = []
    for fmt in settings.feeds.formats:
        name = folder(number) + FILENAMES[fmt]
        old = plan.files.get(name)
        if old and old[0] == key and keyed.on_disk.still_written(name, old[2]):
            made.kept[name], now[name] = int(old[2]), old
        else:
            todo.append(fmt)
    return Job(number, slugs, todo, history, since, key) if todo else None


def items_text(texts: Mapping[str, str], slugs: Sequence[str]) -> str:
    """`repr([memo.article_key(...) of each article])`, put together from each one's memo.article_text."""
    return "[(" + "), (".join([texts[s] for s in slugs]) + ")]" if slugs else "[]"


def render_pages(archive: Archive, jobs: Sequence[Job], *, record: bool) -> Iterator[Rendered]:
    """The documents of each job, in order, staged (`record`) or compared where they were rendered: in
    worker processes from pool.PARALLEL_PAGES pages on (the pages are independent), each page's articles
    read from the state only when its turn comes."""
    settings = archive.settings
    calls = ((settings.site, archive.articles(job.slugs), job.formats, folder(job.number), job.history, job.since,
              settings.paths.output, record) for job in jobs)
    return map_pages(render_page, calls, len(jobs))


def render_page(site: SiteSettings, articles: Sequence[Article], formats: Sequence[str], where: str,
                history: History, since: datetime, output: Path, record: bool) -> Rendered:
    """One archive page's documents, placed in the output folder (run in a worker process: everything it
    needs comes as arguments, and what it sends back is small)."""
    files, problems = render_feeds_checked(site, articles, formats, folder=where, history=history, since=since)
    return place(output, files, record=record, hashed=True), problems


def _since(archive: Archive, plan: Plan, number: int) -> datetime:
    """The date of an empty page: the newest change among the pages before it (not 1970, which the W3C
    validator calls implausible), so it moves only when those articles do."""
    identities = [archive.identities[plan.slugs[i]] for page in plan.pages[:number - 1] for i in page]
    newest = max((ident.updated or ident.published for ident in identities), default=EPOCH)
    return newest.astimezone(archive.settings.site.tz)
