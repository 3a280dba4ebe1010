"""The article pages output: one HTML page per published article at its URL (`<slug>/index.html`).

A page is rendered only when its inputs changed (`page_inputs`: the article, the titles of its related
reading, its tags and which of them have feeds, the site settings, the feeds, the templates, publisher's
version) or the file on disk is not what was written. Pages are staged in temporary files a chunk at
a time as they are rendered, so a cold run of tens of thousands holds one chunk's bytes at a time, never
them all; the pipeline puts them in place together with the other outputs, all or none (`Made.staged`;
a dry run only compares).
The state keeps, in one meta row, every page written (name -> input key, sha256, size): a page no
longer made (its article is a draft again, deleted, or dated in the future; or `site.pages` is off)
is returned as `gone`, and the pipeline removes it after the write.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import fields
from datetime import datetime
from operator import attrgetter
from typing import TYPE_CHECKING

from publisher import __version__
from publisher.enrich.reading import Progress
from publisher.errors import PublisherError
from publisher.memo import memo_key, templates_key
from publisher.models import Entry, Identity, Problem
from publisher.outputs import Made, page_name, still_written
from publisher.outputs.tags import TagIndex, tag_index

if TYPE_CHECKING:
    from publisher.pipeline import Archive
    from publisher.store import Store

log = logging.getLogger(__name__)
PAGES_ROW = "pages"  # meta row: {name: [input key sha, output sha, size]}
CHUNK = 500  # articles whose HTML is read from the state at a time
Known = dict[str, list[str | int]]
_ENTRY_FIELDS = attrgetter(*(f.name for f in fields(Entry)))  # every field, as a tuple
_IDENTITY_FIELDS = attrgetter(*(f.name for f in fields(Identity)))


def written_pages(store: Store) -> Known:
    saved = store.meta_get(PAGES_ROW)
    return dict(json.loads(saved)) if saved else {}


def _instant(value: object) -> object:
    """A datetime as its POSIX timestamp: the same instant read from a file or back from the state (their
    tzinfo objects differ) gives the same text; the page shows it in the site's timezone, a shared input."""
    return value.timestamp() if isinstance(value, datetime) else value


def page_inputs(archive: Archive, slug: str, tags: TagIndex) -> str:
    """What one page shows besides the site-wide inputs, as text: every field of the article and of its
    identity, its related reading (slugs and titles), its tags with the feeds they have (a page changes
    when one of its tags gains or loses its feed). Made for tens of thousands of pages a run: plain tuples
    and one repr, not `memo_key`'s rules for any type."""
    entries = archive.entries
    entry = entries[slug]
    related = [(s, entries[s].title) for s in archive.related.get(slug, ()) if s in entries]
    shown = [(name, (topic.slug, topic.name, topic.count) if topic else None)
             for name, topic in tags.of_article(entry.tags)] if entry.tags else []
    ident = archive.identities[slug]
    return repr((tuple(map(_instant, _ENTRY_FIELDS(entry))), tuple(map(_instant, _IDENTITY_FIELDS(ident))), related,
                 shown))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def page_files(archive: Archive, *, record: bool, progress: Progress | None = None) -> Made:
    """The pages whose inputs changed (files), the others (kept) and the pages no longer made (gone)."""
    settings, store = archive.settings, archive.store
    known = written_pages(store)
    now: Known = {}
    made = Made()
    if settings.site.pages:
        shared = memo_key((__version__, templates_key(settings.paths.templates), settings.site,
                           settings.feeds.formats))
        todo: list[tuple[str, str, str]] = []
        tags = tag_index(archive)
        for slug in sorted(archive.entries):
            name = page_name(settings, slug)
            key = hashlib.sha256((shared + page_inputs(archive, slug, tags)).encode()).hexdigest()
            old = known.get(name)
            if old and old[0] == key and still_written(archive.settings.paths.output, name, old[2]):
                made.kept[name], now[name] = int(old[2]), old
            else:
                todo.append((slug, name, key))
        _render(archive, tags, todo, made, now, known, record=record, progress=progress)
    made.gone = sorted(set(known) - set(now))
    if record:
        store.meta_put(PAGES_ROW, json.dumps(now, sort_keys=True, separators=(",", ":")))
    log.info("article pages: %d written, %d unchanged, %d to remove", len(made.written), len(made.kept),
             len(made.gone))
    return made


def _render(archive: Archive, tags: TagIndex, todo: list[tuple[str, str, str]], made: Made, now: Known,
            known: Known, *, record: bool, progress: Progress | None = None) -> None:
    """Render the pages to do and stage them, a chunk at a time. An article whose page fails is reported
    (it stays in the feeds); a template that fails is reported once and every page keeps its old
    version."""
    from publisher.render.page import render_page
    from publisher.render.templates import TemplateProblem

    if progress and todo:
        progress.start(len(todo), "article pages")
    for start in range(0, len(todo), CHUNK):
        chunk, files = todo[start:start + CHUNK], {}
        for article, (_, name, key) in zip(archive.articles([s for s, _, _ in chunk]), chunk, strict=True):
            try:
                files[name] = data = render_page(article, archive.settings, tags.of_article(article.entry.tags))
            except TemplateProblem as e:
                made.notes.append(Problem("article.html.j2", f"no article page written: {e.message}", e.hint))
                now.update({n: known[n] for _, n, _ in todo if n in known})  # old pages stay
                made.discard_staged()
                return
            except (PublisherError, UnicodeError, ValueError) as e:
                made.notes.append(Problem(article.entry.source, f"its page cannot be written: {e}",
                                          "fix the article (see the reason)"))
                continue
            now[name] = [key, _sha(data), len(data)]
        made.stage(archive.settings.paths.output, files, record=record)
        if progress:
            progress.advance(len(chunk))
