"""publish(): load -> enrich -> render -> write, as one short function over named stages."""

from __future__ import annotations

import hashlib
import html as htmllib
import json
import logging
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from publisher import __version__
from publisher.config import Settings, SiteSettings
from publisher.digests import next_digest, remember
from publisher.enrich.reading import Reading, relate
from publisher.errors import ArticleError
from publisher.load import EXTENSIONS, read, scan_checked
from publisher.models import (
    Article,
    Entry,
    Identity,
    Link,
    Problem,
    PublishReport,
    SourceFile,
)
from publisher.render import feed_names, render_feeds_checked
from publisher.write import compare_outputs, safe_join, write_outputs

if TYPE_CHECKING:  # SQLAlchemy is not imported by the parsing workers, which import this module
    from publisher.store import Store

log = logging.getLogger(__name__)
CACHE_VERSION = "2"  # 2: entries cleaned at the load boundary (issue 9)
STATE_HINT = "fix the article (see the reason), or report it with the file attached"
SAVE_EVERY = 500  # parsed files written to the cache at a time
PARALLEL_FROM = 1000  # parse in several processes from this many changed files
# Workers start from a fork server (that has imported the parsers once), never by forking the caller:
# the scheduler calls publish from a thread, and forking a threaded process can deadlock the child.
WORKER_START = "forkserver"
WORKER_PRELOAD = ["publisher.pipeline", "publisher.enrich", "publisher.load.text", "publisher.load.markdown"]
Scanned = tuple[Sequence[SourceFile], Sequence[Problem]]


class Progress(Protocol):
    """Told the number of files once, then each time one is done (the CLI draws a bar)."""

    def start(self, total: int) -> None: ...

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
    workers = min(os.cpu_count() or 1, 4)
    if len(todo) < PARALLEL_FROM or workers < 2:
        yield from (read_one(source, site) for source in todo)
        return
    context = multiprocessing.get_context(WORKER_START)
    context.set_forkserver_preload(WORKER_PRELOAD)
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        yield from pool.map(read_one, todo, [site] * len(todo), chunksize=256)


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


def unique_ids(entries: Sequence[Entry], known: dict[str, tuple[str, str]]) -> tuple[list[Entry], list[Problem]]:
    """One article per id (the id the state gave its slug, else its `guid`): the article the state knows
    keeps it, else the first by path; an id the state gave an article no longer published stays its own."""
    owner = {slug: ident for ident, (slug, _) in known.items()}
    claims: dict[str, list[Entry]] = {}
    for entry in entries:
        if claim := owner.get(entry.slug) or entry.guid:
            claims.setdefault(claim, []).append(entry)
    refused: list[Problem] = []
    for ident, group in claims.items():
        holder = known.get(ident)  # (slug, source) of the article the state gave this id
        group.sort(key=lambda e: (holder is None or e.slug != holder[0], e.source))
        if holder is None or group[0].slug == holder[0]:
            keeper, first = group[0].source, group[0].source
        else:
            keeper, first = "", f"{holder[1]} (an article no longer published, which keeps it)"
        refused += [Problem(e.source, f"guid '{ident}' is already the id of {first}",
                            "give one of them another guid (front matter 'guid:'), or remove the line to get a "
                            "new one") for e in group if e.source != keeper]
    left_out = {p.path for p in refused}
    return [e for e in entries if e.source not in left_out], refused


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
        order = sorted(self.entries, key=lambda s: (-self.identities[s].published.timestamp(), s))
        return order[:limit]

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
        return Article(entry, local, self.settings.site.page_url(entry.slug), html, links)


def with_related_reading(article: Article) -> Article:
    """The feed item's HTML, ending with a short 'Related reading' list of links."""
    if not article.related:
        return article
    items = "".join(f'<li><a href="{htmllib.escape(link.url)}">{htmllib.escape(link.title)}</a></li>'
                    for link in article.related)
    html = f"{article.html}\n<h3>Related reading</h3>\n<ul>{items}</ul>"
    return Article(article.entry, article.identity, article.url, html, article.related)


def feed_files(archive: Archive, *, record: bool) -> tuple[dict[str, bytes], list[Problem]]:
    """The feeds, rendered only when what they show changed: their items, the titles of the articles
    in their related-reading lists, the settings or publisher's version. All feeds or none."""
    settings = archive.settings
    slugs = archive.newest(settings.feeds.limit)
    related = {s: [(t, archive.entries[t].title) for t in archive.related.get(s, []) if t in archive.entries]
               for s in slugs}
    key = memo_key((__version__, settings.site, settings.feeds, settings.related.in_feeds,
                    [(archive.entries[s], archive.identities[s], related[s]) for s in slugs]))
    names = feed_names(settings.feeds.formats)
    kept = {name: memo_hit(archive, name, key + name) for name in names}
    if all(data is not None for data in kept.values()):
        return {name: data for name, data in kept.items() if data is not None}, []
    top = archive.articles(slugs)
    if settings.related.in_feeds:
        top = [with_related_reading(a) for a in top]
    files, problems = render_feeds_checked(settings.site, top, settings.feeds.formats)
    if record and not problems:  # with an article left out, render again next time (and report it)
        for name, data in files.items():
            memo_keep(archive, name, key + name, data)
    return files, problems


def memo_key(value: object) -> str:
    """A memo key: the same inputs give the same text in every run (a date read from the file and the
    same date read back from the state differ only in their tzinfo object: both become UTC ISO text)."""
    return repr(_canonical(value))


def _canonical(value: object) -> object:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if is_dataclass(value) and not isinstance(value, type):
        return (type(value).__name__, *(_canonical(getattr(value, f.name)) for f in fields(value)))
    if isinstance(value, (list, tuple)):
        return tuple(_canonical(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, _canonical(v)) for k, v in value.items())
    return value


def _key_sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def memo_hit(archive: Archive, name: str, key: str) -> bytes | None:
    """The output file as last written, when its inputs (`key`) are unchanged and it is still as written."""
    known = archive.store.memo_get(name)
    path = safe_join(archive.settings.paths.output, name)
    if known and known[0] == _key_sha(key) and path.is_file():
        data = path.read_bytes()
        if _sha(data) == known[1]:
            return data
    return None


def memo_keep(archive: Archive, name: str, key: str, data: bytes) -> None:
    archive.store.memo_put(name, _key_sha(key), _sha(data))


def memoized(archive: Archive, name: str, key: str, make: Callable[[], bytes], *, record: bool) -> bytes:
    """An output file rendered only when its inputs changed (or the file on disk is not what we wrote)."""
    data = memo_hit(archive, name, key)
    if data is None:
        data = make()
        if record:
            memo_keep(archive, name, key, data)
    return data


def templates_key(site_templates: Path) -> str:
    """Every template a render may read (a template can include or extend any other): the site's own,
    else the built-in one, by name (*.j2, in subfolders too)."""
    from publisher.resources import builtin_templates

    digest = hashlib.sha256()
    folders = [f for f in (site_templates, builtin_templates()) if f.is_dir()]
    names = sorted({p.relative_to(f).as_posix() for f in folders for p in f.rglob("*.j2") if p.is_file()})
    for name in names:
        path = next(f / name for f in folders if (f / name).is_file())
        digest.update(name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def digest_files(archive: Archive, now: datetime, *, force: bool,
                 record: bool) -> tuple[dict[str, bytes], str | None, list[Problem]]:
    """Render the next digest (if any) and the archive page; returns files, the digest id and the
    articles the digest had to leave out (it goes without them)."""
    from publisher.render.archive import render_index
    from publisher.render.digest import archive_copy, render_digest_checked

    settings, store = archive.settings, archive.store
    templates = settings.paths.templates
    digest = next_digest(archive.newest(), archive.identities, store, settings, now, archive.articles, force=force)
    rendered, problems = render_digest_checked(digest, settings, templates) if digest else (None, [])
    if rendered and record:
        from publisher.deliver.journal import Journal
        from publisher.deliver.message import subject_line

        remember(store, rendered, subject_line(rendered, settings))
        Journal(store).enqueue(rendered.digest.id, now)  # in the same transaction as the digest
    stored = store.digest_files()
    if rendered and not record:
        stored.append((rendered.digest.id, rendered.html, rendered.text))
    files: dict[str, bytes] = {}
    for digest_id, html, text in stored:
        files.update(archive_copy(settings, digest_id, html, text))
    if stored:
        files.update(archive_copy(settings, "latest", stored[-1][1], stored[-1][2]))
    history = [(i, created, len(slugs)) for i, created, slugs in store.digest_history()]
    listing = [(archive.entries[s].title, settings.site.page_url(s), archive.identities[s].published)
               for s in archive.newest()]
    key = memo_key((history, listing, templates_key(templates), settings.site, settings.feeds.formats))
    files["index.html"] = memoized(archive, "index.html", key,
                                   lambda: render_index(settings, templates, history, listing), record=record)
    return files, rendered.digest.id if rendered else None, problems


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


def prepare(settings: Settings, store: Store, now: datetime, *, use_cache: bool = True,
            progress: Progress | None = None, scanned: Scanned | None = None) -> Run:
    """load -> enrich -> identities -> related reading."""
    files, scan_problems = scan_checked(settings.paths.articles, EXTENSIONS) if scanned is None else scanned
    loaded = load_entries(files, store, settings.site, use_cache=use_cache, progress=progress)
    shown = visible(loaded.entries, now)
    kept, clashes = unique_slugs(shown, store.known_sources())
    kept, claims = unique_ids(kept, store.known_ids())
    identities, refused = store.record(kept, now, settings.site.url)
    stored = [Problem(e.source, f"the state database refused the article: {refused[e.slug]}", STATE_HINT)
              for e in kept if e.slug in refused]
    kept = [e for e in kept if e.slug not in refused]
    archive = Archive(settings, store, loaded, {e.slug: e for e in kept}, identities)
    reading = relate(archive.entries, identities, store, archive.html_of, settings.related)
    archive.related = reading.slugs()
    left_out = clashes + claims + stored
    return Run(archive, len(files), loaded.skipped + len(left_out), len(loaded.entries) - len(shown),
               [*scan_problems, *loaded.problems, *left_out, *reading.problems], reading)


def input_key(settings: Settings, files: Sequence[SourceFile]) -> str:
    """Everything a publish run reads, cheaply: settings, article files and templates (name, mtime, size)."""
    from publisher.resources import builtin_templates

    digest = hashlib.sha256(repr((__version__, settings)).encode())
    for f in files:
        digest.update(f"{f.rel}\0{f.mtime_ns}\0{f.size}\n".encode())
    for folder in (settings.paths.templates, builtin_templates()):
        for path in sorted(folder.glob("*.j2")) if folder.is_dir() else []:
            st = path.stat()
            digest.update(f"{path}\0{st.st_mtime_ns}\0{st.st_size}\n".encode())
    return digest.hexdigest()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def unchanged_run(store: Store, key: str, now: datetime, output: Path) -> PublishReport | None:
    """The last run's report when nothing it read has changed, no waiting article is due and every
    file it wrote is still as written; else None (a full run follows)."""
    saved = store.meta_get("last_publish")
    if saved is None:
        return None
    last = json.loads(saved)
    if last["key"] != key or (last["wake"] and now >= datetime.fromisoformat(last["wake"])):
        return None
    for name, sha in last["outputs"].items():
        path = safe_join(output, name)
        if not path.is_file() or _sha(path.read_bytes()) != sha:
            return None
    problems = tuple(Problem(**p) for p in last["problems"])
    return PublishReport(read=last["read"], published=last["published"], skipped=last["skipped"],
                         unchanged=tuple(sorted(last["outputs"])), problems=problems, hidden=last["hidden"])


def remember_run(store: Store, key: str, run: Run, now: datetime, outputs: dict[str, bytes]) -> None:
    due = [e.date for e in run.archive.loaded.entries if not e.draft and e.date and e.date > now]
    store.meta_put("last_publish", json.dumps({
        "key": key, "wake": min(due).isoformat() if due else None, "read": run.read,
        "published": run.published, "skipped": run.skipped, "hidden": run.hidden,
        "problems": [asdict(p) for p in run.problems],
        "outputs": {name: _sha(data) for name, data in outputs.items()}}))


def publish(settings: Settings, now: datetime, *, dry_run: bool = False, use_cache: bool = True,
            force_digest: bool = False, progress: Progress | None = None) -> PublishReport:
    """Read the articles, record their identities, render feeds and digest, and write them (unless dry_run)."""
    scanned = scan_checked(settings.paths.articles, EXTENSIONS)
    from publisher.store import open_store

    with open_store(settings.paths.state, write=not dry_run) as store:
        key = input_key(settings, scanned[0])
        if not (dry_run or force_digest) and (same := unchanged_run(store, key, now, settings.paths.output)):
            return same
        run = prepare(settings, store, now, use_cache=use_cache, progress=progress, scanned=scanned)
        outputs, render_problems = feed_files(run.archive, record=not dry_run)
        run.left_out(render_problems)
        digest_outputs, digest_id, digest_problems = digest_files(run.archive, now, force=force_digest,
                                                                  record=not dry_run)
        run.problems += digest_problems  # still published in the feeds: reported, not skipped
        outputs.update(digest_outputs)
        if not dry_run:
            remember_run(store, key, run, now, outputs)
    write = compare_outputs if dry_run else write_outputs
    written, unchanged = write(settings.paths.output, outputs)
    log.info("published %d articles, wrote %s", run.published, written)
    return PublishReport(read=run.read, published=run.published, skipped=run.skipped,
                         written=tuple(written), unchanged=tuple(unchanged), problems=tuple(run.problems),
                         hidden=run.hidden, digest=digest_id)


PREVIEW_READER = ("Preview Reader", "preview@example.invalid")


@dataclass(frozen=True)
class Preview:
    """The next digest as one reader would get it: files written, digest id, whether it is new, and the
    message (sent to `--to` by the CLI through the configured transport, outside the journal)."""

    files: list[str]
    digest_id: str | None
    fresh: bool
    message: bytes = b""
    sender: str = ""


def preview(settings: Settings, now: datetime, to: str | None = None) -> Preview:
    """Render the next digest as publish would, for a dummy reader (or `to`), into <output>/preview/
    (html, txt and .eml); record nothing. With no new article, the newest articles are shown."""
    from publisher.deliver.message import MessageTemplate, subject_line
    from publisher.deliver.tokens import unsubscribe_url
    from publisher.render.digest import for_reader, render_digest
    from publisher.store import open_store

    with open_store(settings.paths.state, write=False) as store:
        archive = prepare(settings, store, now).archive
        digest = next_digest(archive.newest(), archive.identities, store, settings, now, archive.articles)
        fresh = digest is not None
        digest = digest or next_digest(archive.newest(), archive.identities, store, settings, now,
                                       archive.articles, force=True)
        if digest is None:
            return Preview([], None, False)
        rendered = render_digest(digest, settings, settings.paths.templates)
    url = unsubscribe_url(settings.site.url, "preview")
    template = MessageTemplate(settings, digest.id, subject_line(rendered, settings), rendered.html, rendered.text,
                               now)
    name, address = ("", to) if to else PREVIEW_READER
    message = template.render(subscriber_id="preview", name=name, address=address, unsubscribe_url=url)
    html, text = for_reader(rendered, url)
    files = {"preview/digest.html": html.encode(), "preview/digest.txt": text.encode(), "preview/digest.eml": message}
    written, unchanged = write_outputs(settings.paths.output, files)
    return Preview(sorted(written + unchanged), digest.id, fresh, message, template.sender)


def related_report(settings: Settings, now: datetime, slug: str | None, *,
                   every: bool = False) -> list[dict[str, Any]]:
    """Ranked related articles with scores and reasons: of one article (default: the newest), or of
    every article by slug."""
    from publisher.store import open_store

    with open_store(settings.paths.state, write=False) as store:
        run = prepare(settings, store, now)
    entries = run.archive.entries
    if slug is not None and slug not in entries:
        from publisher.errors import ConfigError

        raise ConfigError(f"no published article has the slug {slug!r}", "see the slugs with 'publisher related --all'")
    chosen = [slug] if slug else sorted(entries) if every else run.archive.newest(1)
    return [{"slug": s, "title": entries[s].title,
             "related": [{"slug": t, "title": entries[t].title, "score": score, "reason": reason}
                         for t, score, reason in run.reading.lists.get(s, [])]} for s in chosen]
