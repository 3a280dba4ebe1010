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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from publisher import __version__
from publisher.enrich.reading import Progress
from publisher.errors import PublisherError
from publisher.memo import OnDisk, article_text, memo_key, templates_key
from publisher.models import Article, Problem
from publisher.outputs import Derived, Made, Placed, page_name, place
from publisher.outputs.tags import TagIndex
from publisher.pool import map_pages
from publisher.tagslug import Topic

if TYPE_CHECKING:
    from publisher.config import Settings
    from publisher.pipeline import Archive
    from publisher.store import Store

log = logging.getLogger(__name__)
PAGES_ROW = "pages"  # meta row: {name: [input key sha, output sha, size]}
CHUNK = 100  # pages rendered at a time (one task of a worker): their articles' HTML read from the state at once
Known = dict[str, list[str | int]]


def written_pages(store: Store) -> Known:
    saved = store.meta_get(PAGES_ROW)
    return dict(json.loads(saved)) if saved else {}


def page_inputs(archive: Archive, slug: str, tags: TagIndex, texts: Mapping[str, str] | None = None,
                pairs: Mapping[str, str] | None = None) -> str:
    """What one page shows besides the site-wide inputs, as text: every field of the article and of its
    identity, its related reading (slugs and titles), its tags with the feeds they have (a page changes
    when one of its tags gains or loses its feed). Made for tens of thousands of pages a run: the text is
    `repr((*memo.article_key(...), related, shown))`, put together from parts made once a run (`texts`:
    memo.article_text of each article; `pairs`: slug -> repr((slug, title)) of each article)."""
    entries = archive.entries
    entry = entries[slug]
    text = texts[slug] if texts is not None else article_text(entry, archive.identities[slug])
    if pairs is None:
        pairs = {s: repr((s, entries[s].title)) for s in archive.related.get(slug, ()) if s in entries}
    linked = archive.related.get(slug)
    related = "[" + ", ".join([pairs[s] for s in linked if s in pairs]) + "]" if linked else "[]"
    shown = [(name, (topic.slug, topic.name, topic.count) if topic else None)
             for name, topic in tags.of_article(entry.tags)] if entry.tags else []
    return f"({text}, {related}, {shown!r})"


def page_files(archive: Archive, *, record: bool, progress: Progress | None = None,
               derived: Derived | None = None) -> Made:
    """The pages whose inputs changed (files), the others (kept) and the pages no longer made (gone)."""
    settings, store = archive.settings, archive.store
    known = written_pages(store)
    now: Known = {}
    made = Made()
    if settings.site.pages:
        derived = derived or Derived(archive)
        todo = _changed(archive, derived, known, made, now)
        _render(archive, derived.tags(), todo, made, now, known, record=record, progress=progress)
    made.gone = sorted(set(known) - set(now))
    if record:
        store.meta_put(PAGES_ROW, json.dumps(now, sort_keys=True, separators=(",", ":")))
    log.info("article pages: %d written, %d unchanged, %d to remove", len(made.written), len(made.kept),
             len(made.gone))
    return made


def _changed(archive: Archive, derived: Derived, known: Known, made: Made, now: Known) -> list[tuple[str, str, str]]:
    """The pages to render (slug, name, input key): those whose key changed or whose file is not there with
    the size it was written with; the others are kept (`made.kept`, `now`)."""
    settings, entries = archive.settings, archive.entries
    shared = memo_key((__version__, templates_key(settings.paths.templates), settings.site, settings.feeds.formats))
    tags, texts = derived.tags(), derived.texts()
    pairs = {slug: repr((slug, entry.title)) for slug, entry in entries.items()}
    start = hashlib.sha256(shared.encode())  # each key: the sha256 of shared + the page's inputs
    todo: list[tuple[str, str, str]] = []
    with OnDisk(settings.paths.output) as folder:
        for slug in sorted(entries):
            name = page_name(settings, slug)
            digest = start.copy()
            digest.update(page_inputs(archive, slug, tags, texts, pairs).encode())
            key = digest.hexdigest()
            old = known.get(name)
            if old and old[0] == key and folder.still_written(name, old[2]):
                made.kept[name], now[name] = int(old[2]), old
            else:
                todo.append((slug, name, key))
    return todo


@dataclass
class Batch:
    """What `place_pages` made of a chunk of pages: the files placed, each page's [key, sha256, size], the
    articles whose page failed, or the template problem that stops every page."""

    placed: Placed | None
    now: Known = field(default_factory=dict)
    notes: list[Problem] = field(default_factory=list)
    template: Problem | None = None


def _render(archive: Archive, tags: TagIndex, todo: list[tuple[str, str, str]], made: Made, now: Known,
            known: Known, *, record: bool, progress: Progress | None = None) -> None:
    """Render the pages to do and stage them, a chunk at a time (in worker processes when there are many,
    `pool.map_pages`). An article whose page fails is reported (it stays in the feeds); a template that
    fails is reported once and every page keeps its old version."""
    if progress and todo:
        progress.start(len(todo), "article pages")
    chunks = [todo[start:start + CHUNK] for start in range(0, len(todo), CHUNK)]
    calls = ((archive.settings, arts, [tags.of_article(a.entry.tags) for a in arts], [(n, k) for _, n, k in chunk],
              record) for chunk in chunks for arts in (archive.articles([s for s, _, _ in chunk]),))
    failed = False
    for chunk, batch in zip(chunks, map_pages(place_pages, calls, len(chunks)), strict=True):
        if batch.template is not None and not failed:  # from now on, every page keeps its old version
            failed = True
            made.notes.append(batch.template)
            now.update({n: known[n] for _, n, _ in todo if n in known})
            made.discard_staged()
        if failed:  # chunks staged in workers since are discarded as they come
            if batch.placed is not None:
                batch.placed.discard()
            continue
        made.notes += batch.notes
        now.update(batch.now)
        if batch.placed is not None:
            made.take(batch.placed)
        if progress:
            progress.advance(len(chunk))


def place_pages(settings: Settings, articles: Sequence[Article], topics: Sequence[Sequence[tuple[str, Topic | None]]],
                names: Sequence[tuple[str, str]], record: bool) -> Batch:
    """One chunk of pages rendered and placed in the output folder (in a worker process, too: everything
    comes as arguments, and only names, sizes and hashes go back)."""
    from publisher.render.page import render_page
    from publisher.render.templates import TemplateProblem

    files: dict[str, bytes] = {}
    batch = Batch(None)
    for article, shown, (name, _) in zip(articles, topics, names, strict=True):
        try:
            files[name] = render_page(article, settings, shown)
        except TemplateProblem as e:
            return Batch(None, template=Problem("article.html.j2", f"no article page written: {e.message}", e.hint))
        except (PublisherError, UnicodeError, ValueError) as e:
            batch.notes.append(Problem(article.entry.source, f"its page cannot be written: {e}",
                                       "fix the article (see the reason)"))
    batch.placed = placed = place(settings.paths.output, files, record=record, hashed=True)
    batch.now = {name: [key, placed.digests[name], placed.sizes[name]] for name, key in names if name in files}
    return batch
