"""publish(): load -> enrich -> render -> write, as one short function over named stages."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from publisher import __version__
from publisher.config import Settings, SiteSettings
from publisher.enrich import enrich, page_url
from publisher.errors import ArticleError
from publisher.load import EXTENSIONS, read, scan
from publisher.models import Article, Entry, Identity, Problem, PublishReport, SourceFile
from publisher.render import render_feeds
from publisher.store import Store, open_store
from publisher.write import compare_outputs, write_outputs

log = logging.getLogger(__name__)
CACHE_VERSION = "1"


class Progress(Protocol):
    """Told the number of files once, then each time one is done (the CLI draws a bar)."""

    def start(self, total: int) -> None: ...

    def advance(self, done: int) -> None: ...


@dataclass
class Loaded:
    """The archive as read this run: entries by source, HTML of freshly parsed files, problems."""

    entries: list[Entry] = field(default_factory=list)
    fresh_html: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    skipped: int = 0


def fingerprint(site: SiteSettings) -> str:
    """What, besides a file's bytes, shapes its parsed and enriched form."""
    key = f"{CACHE_VERSION}|{__version__}|{site.url}|{site.permalink}|{site.timezone}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def load_entries(files: Sequence[SourceFile], store: Store, site: SiteSettings, *, use_cache: bool = True,
                 progress: Progress | None = None) -> Loaded:
    """Parse and enrich new or changed files; take unchanged ones from the cache."""
    key = fingerprint(site)
    cached = store.cached(key) if use_cache else {}
    loaded, fresh = Loaded(), []
    if progress:
        progress.start(len(files))
    for source in files:
        if progress:
            progress.advance(1)
        hit = cached.get(source.rel)
        if hit and hit[:2] == (source.mtime_ns, source.size):
            loaded.entries.append(hit[2])
        else:
            try:
                doc = read(source, site.tz)
            except ArticleError as e:
                loaded.problems.append(Problem(e.path, e.message, e.hint, e.line))
                loaded.skipped += 1
                continue
            entry, html = enrich(doc, site)
            loaded.problems.extend(doc.warnings)
            loaded.entries.append(entry)
            loaded.fresh_html[source.rel] = html
            fresh.append((source, entry, html))
    store.save_cache(fresh, key)
    store.forget_sources({f.rel for f in files})
    return loaded


def visible(entries: Sequence[Entry], now: datetime) -> list[Entry]:
    """Drafts and articles dated in the future wait for their time."""
    return [e for e in entries if not e.draft and (e.date is None or e.date <= now)]


def unique_slugs(entries: Sequence[Entry], known: dict[str, str]) -> tuple[list[Entry], list[Problem]]:
    """One article per slug: the one the state already knows, else the first by path."""
    by_slug: dict[str, list[Entry]] = {}
    for entry in entries:
        by_slug.setdefault(entry.slug, []).append(entry)
    kept, problems = [], []
    for slug, group in by_slug.items():
        group.sort(key=lambda e: (e.source != known.get(slug), e.source))
        kept.append(group[0])
        problems += [Problem(e.source, f"slug '{slug}' is already used by {group[0].source}",
                             "give one of them another slug (front matter 'slug:' or a new file name)")
                     for e in group[1:]]
    return kept, problems


def newest(entries: Sequence[Entry], identities: dict[str, Identity], limit: int) -> list[Entry]:
    """Newest first; ties broken by slug, so the order never depends on the file system."""
    return sorted(entries, key=lambda e: (-identities[e.slug].published.timestamp(), e.slug))[:limit]


def articles_for(entries: Sequence[Entry], identities: dict[str, Identity], loaded: Loaded,
                 store: Store, site: SiteSettings) -> list[Article]:
    """Attach identity, URL and HTML (from this run or the cache) to the entries to render."""
    html = dict(loaded.fresh_html)
    html.update(store.html_for(e.source for e in entries if e.source not in html))
    tz = site.tz
    result = []
    for e in entries:
        ident = identities[e.slug]
        local = Identity(ident.id, ident.published.astimezone(tz),
                         ident.updated.astimezone(tz) if ident.updated else None)
        result.append(Article(e, local, page_url(site, e.slug), html[e.source]))
    return result


def publish(settings: Settings, now: datetime, *, dry_run: bool = False, use_cache: bool = True,
            progress: Progress | None = None) -> PublishReport:
    """Read the articles, record their identities, render the feeds and write them (unless dry_run)."""
    files = scan(settings.paths.articles, EXTENSIONS)
    with open_store(settings.paths.state, write=not dry_run) as store:
        loaded = load_entries(files, store, settings.site, use_cache=use_cache, progress=progress)
        shown = visible(loaded.entries, now)
        kept, clashes = unique_slugs(shown, store.known_sources())
        identities = store.record(kept, now, settings.site.url)
        top = articles_for(newest(kept, identities, settings.feeds.limit), identities, loaded, store,
                           settings.site)
        outputs = render_feeds(settings.site, top, settings.feeds.formats)
    write = compare_outputs if dry_run else write_outputs
    written, unchanged = write(settings.paths.output, outputs)
    log.info("published %d articles, wrote %s", len(kept), written)
    return PublishReport(read=len(files), published=len(kept), skipped=loaded.skipped + len(clashes),
                         written=tuple(written), unchanged=tuple(unchanged),
                         problems=tuple(loaded.problems + clashes),
                         hidden=len(loaded.entries) - len(shown))
