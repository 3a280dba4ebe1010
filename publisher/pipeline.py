"""publish(): load -> enrich -> render -> write, as one short function over named stages.

Which articles are published is decided in `publisher.selection`; the memos that skip unchanged work
are in `publisher.memo`; the read-only commands built on `prepare` (preview, related report) are in
`publisher.readonly`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Protocol

from publisher import __version__
from publisher.config import Settings, SiteSettings
from publisher.enrich.reading import Reading, relate
from publisher.errors import ArticleError
from publisher.load import EXTENSIONS, forget_folders, read, scan_checked
from publisher.memo import FirstLook, Scanned, first_look, remember_run, unchanged_run
from publisher.models import (
    Article,
    Entry,
    Identity,
    Link,
    Problem,
    PublishReport,
    SourceFile,
)
from publisher.outputs import OUTPUTS, Context, Derived, Made
from publisher.pool import pool, worker_count
from publisher.selection import free_slugs, unique_ids, unique_slugs, visible
from publisher.write import compare_outputs, remove_outputs, write_outputs

if TYPE_CHECKING:  # SQLAlchemy is not imported by the parsing workers, which import this module
    from publisher.store import Store

log = logging.getLogger(__name__)
CACHE_VERSION = "3"  # 2: entries cleaned at the load boundary (issue 9); 3: link and image_alt (issue 11)
STATE_HINT = "fix the article (see the reason), or report it with the file attached"
SAVE_EVERY = 500  # parsed files written to the cache at a time
PARALLEL_FROM = 1000  # parse in several processes (publisher.pool) from this many changed files


class Progress(Protocol):
    """Told the number of files once, then each time one is done (the CLI draws a bar)."""

    def start(self, total: int, label: str = ...) -> None: ...  # label: the stage, as in enrich.reading

    def advance(self, done: int) -> None: ...


@dataclass
class Loaded:
    """The archive as read this run: entries and problems (the HTML waits in the state's cache)."""

    entries: list[Entry] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    skipped: int = 0


def fingerprint(site: SiteSettings) -> str:
    """What, besides a file's bytes, shapes its parsed and enriched form."""
    key = f"{CACHE_VERSION}|{__version__}|{site.url}|{site.permalink}|{site.timezone}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


Parsed = tuple[SourceFile, Entry, str, tuple[Problem, ...]] | Problem


def read_one(source: SourceFile, site: SiteSettings) -> Parsed:
    """Load and enrich one file: (source, entry, html, warnings), or the Problem that skips it."""
    from publisher.enrich import enrich  # nh3 is only needed when a file changed

    try:
        doc = read(source, site.tz)
        entry, html = enrich(doc, site)
    except ArticleError as e:
        return Problem(e.path, e.message, e.hint, e.line, e.severity)
    if not entry.summary:
        empty = Problem(source.rel, "empty summary: the article has no paragraph of text", "add 'summary:' "
                        "to the front matter or a paragraph to the text", None, "warning")
        return source, entry, html, (*doc.warnings, empty)
    return source, entry, html, doc.warnings


def read_many(todo: Sequence[SourceFile], site: SiteSettings) -> Iterator[Parsed]:
    """Parse files in order; many files are spread over the CPU cores."""
    workers = worker_count()
    forget_folders()  # folders are resolved afresh each run (workers start with nothing known)
    if len(todo) < PARALLEL_FROM or workers < 2:
        yield from (read_one(source, site) for source in todo)
        return
    with pool(workers) as executor:
        yield from executor.map(read_one, todo, [site] * len(todo), chunksize=256)


def load_entries(files: Sequence[SourceFile], store: Store, site: SiteSettings, *, use_cache: bool = True,
                 progress: Progress | None = None) -> Loaded:
    """Parse and enrich new or changed files; take unchanged ones from the cache."""
    key = fingerprint(site)
    cached = store.cached(key) if use_cache else {}
    loaded, fresh, todo = Loaded(), [], []
    for source in files:
        hit = cached.get(source.rel)
        if hit and hit[:2] == (source.mtime_ns, source.size):
            loaded.entries.append(hit[2])
        else:
            todo.append(source)
    if progress:
        progress.start(len(todo))
    for result in read_many(todo, site):
        if progress:
            progress.advance(1)
        if isinstance(result, Problem):
            loaded.problems.append(result)
            loaded.skipped += 1
            continue
        source, entry, html, warnings = result
        loaded.problems.extend(warnings)
        loaded.entries.append(entry)
        fresh.append((source, entry, html))
        if len(fresh) >= SAVE_EVERY:  # into the state as we go: the HTML is not all held at once
            save(store, fresh, key, loaded)
    save(store, fresh, key, loaded)
    store.forget_sources({f.rel for f in files})
    return loaded


def save(store: Store, fresh: list[tuple[SourceFile, Entry, str]], key: str, loaded: Loaded) -> None:
    """Cache the parsed files; one the state refuses is reported and left out (the rest go on)."""
    refused = store.save_cache(fresh, key)
    fresh.clear()
    if refused:
        loaded.entries = [e for e in loaded.entries if e.source not in refused]
        loaded.skipped += len(refused)
        loaded.problems += [Problem(path, f"the state database refused the article: {reason}", STATE_HINT)
                            for path, reason in sorted(refused.items())]


@dataclass
class Archive:
    """Every published article of this run, with identities and related-reading lists (slugs)."""

    settings: Settings
    store: Store
    loaded: Loaded
    entries: dict[str, Entry]
    identities: dict[str, Identity]
    related: dict[str, list[str]] = field(default_factory=dict)

    def html_of(self, slugs: Iterable[str]) -> dict[str, str]:
        """slug -> sanitized HTML, from this run or the cache."""
        sources = {self.entries[s].source: s for s in slugs}
        html = self.store.html_for(sources)
        return {slug: html[src] for src, slug in sources.items()}

    def newest(self, limit: int | None = None) -> list[str]:
        """Slugs newest first; ties broken by slug, so the order never depends on the file system."""
        return self._newest_first[:limit]

    @cached_property
    def _newest_first(self) -> list[str]:
        """Sorted once: every output asks, and the articles do not change once the archive is made."""
        identities = self.identities
        return sorted(self.entries, key=lambda s: (-identities[s].published.timestamp(), s))

    def articles(self, slugs: Sequence[str]) -> list[Article]:
        """Attach identity (in the site's timezone), URL, HTML and related links."""
        html = self.html_of(slugs)
        return [self._article(self.entries[s], html[s]) for s in slugs]

    def _article(self, entry: Entry, html: str) -> Article:
        tz = self.settings.site.tz
        ident = self.identities[entry.slug]
        local = Identity(ident.id, ident.published.astimezone(tz),
                         ident.updated.astimezone(tz) if ident.updated else None, ident.first_seen)
        links = tuple(Link(self.entries[s].title, self.settings.site.page_url(s))
                      for s in self.related.get(entry.slug, []) if s in self.entries)
        url = entry.link or self.settings.site.page_url(entry.slug)  # an original elsewhere: feeds link to it
        return Article(entry, local, url, html, links)


@dataclass
class Run:
    """What the first stages made of the articles: the archive plus counts and problems for the report."""

    archive: Archive
    read: int
    skipped: int
    hidden: int
    problems: list[Problem]
    reading: Reading
    unrendered: int = 0  # published articles the feeds left out (they could not be rendered)

    @property
    def published(self) -> int:
        return len(self.archive.entries) - self.unrendered

    def left_out(self, problems: Sequence[Problem]) -> None:
        """Count and report articles a later stage left out."""
        self.problems += problems
        gone = {p.path for p in problems} & {e.source for e in self.archive.entries.values()}
        self.unrendered += len(gone)
        self.skipped += len(gone)

    def report(self, written: Sequence[str] = (), unchanged: Sequence[str] = (),
               digest: str | None = None, removed: Sequence[str] = ()) -> PublishReport:
        return PublishReport(read=self.read, published=self.published, skipped=self.skipped,
                             written=tuple(written), unchanged=tuple(unchanged), problems=tuple(self.problems),
                             hidden=self.hidden, digest=digest, removed=tuple(removed))

    def wake(self, now: datetime) -> datetime | None:
        """When the next waiting article (not a draft, dated after `now`) is due."""
        due = [e.date for e in self.archive.loaded.entries if not e.draft and e.date and e.date > now]
        return min(due) if due else None


def prepare(settings: Settings, store: Store, now: datetime, *, use_cache: bool = True,
            progress: Progress | None = None, scanned: Scanned | None = None) -> Run:
    """load -> enrich -> identities -> related reading."""
    files, scan_problems = scan_checked(settings.paths.articles, EXTENSIONS) if scanned is None else scanned
    loaded = load_entries(files, store, settings.site, use_cache=use_cache, progress=progress)
    shown, reserved = free_slugs(visible(loaded.entries, now), settings)
    known = store.articles()  # one read of the articles table: for both rules, then for record
    ids = known.ids()  # id -> (slug, source)
    kept, clashes = unique_slugs(shown, dict(ids.values()))
    kept, claims = unique_ids(kept, ids)
    identities, refused = store.record(kept, now, settings.site.url, known=known)
    del known, ids  # 22,250 rows: not held through related reading (peak memory)
    stored = [Problem(e.source, f"the state database refused the article: {refused[e.slug]}", STATE_HINT)
              for e in kept if e.slug in refused]
    kept = [e for e in kept if e.slug not in refused]
    archive = Archive(settings, store, loaded, {e.slug: e for e in kept}, identities)
    reading = relate(archive.entries, identities, store, archive.html_of, settings.related, progress=progress)
    archive.related = reading.slugs()
    left_out = reserved + clashes + claims + stored
    refused_files = sum(p.severity == "error" for p in scan_problems)  # found, then refused (a link leading out)
    waiting = len(loaded.entries) - len(shown) - len(reserved)
    return Run(archive, len(files) + refused_files, loaded.skipped + len(left_out) + refused_files, waiting,
               [*scan_problems, *loaded.problems, *left_out, *reading.problems], reading)


def make_outputs(run: Run, ctx: Context) -> Made:
    """Every output of the table, in order (the home page lists the digest made before it)."""
    total = Made()
    ctx = ctx if ctx.derived is not None else replace(ctx, derived=Derived(run.archive))
    for output in OUTPUTS:
        made = output.make(run.archive, ctx)
        run.left_out(made.left_out)
        run.problems += made.notes  # still published: reported, not skipped
        total.add(made)
    total.gone = [name for name in total.gone if name not in total.files and name not in total.written]
    return total


def publish(settings: Settings, now: datetime, *, dry_run: bool = False, use_cache: bool = True,
            force_digest: bool = False, progress: Progress | None = None,
            look: FirstLook | None = None) -> PublishReport:
    """Read the articles, record their identities, make every output, and write it (unless dry_run).
    `look`: the run's start (memo.first_look), when the caller made it already."""
    check = not (dry_run or force_digest)  # whether a run with nothing changed is skipped
    if look is None or look.checked != check:
        look = first_look(settings, now, check=check)  # the last run's memo from an SQLite file, no SQLAlchemy
    if look.same is not None:
        return look.same
    key = look.key
    from publisher.store import open_store

    with open_store(settings.paths.state, write=not dry_run) as store:
        if check and look.saved is None and (same := unchanged_run(store.meta_get("last_publish"), key, now,
                                                                   settings.paths.output)):
            return same
        run = prepare(settings, store, now, use_cache=use_cache, progress=progress, scanned=look.scanned)
        made = make_outputs(run, Context(now, force_digest, record=not dry_run, progress=progress))
        try:
            if not dry_run:
                remember_run(store, key, run.report(), run.wake(now), made.files, {**made.kept, **made.written})
        except BaseException:
            made.discard_staged()
            raise
    if dry_run:
        written, unchanged = compare_outputs(settings.paths.output, made.files)
    else:
        written, unchanged = write_outputs(settings.paths.output, made.files, made.staged)
    removed = made.gone if dry_run else remove_outputs(settings.paths.output, made.gone)
    log.info("published %d articles, wrote %d files, removed %d", run.published, len(written) + len(made.written),
             len(removed))
    return run.report([*written, *made.written], [*unchanged, *made.kept], made.digest, removed)
