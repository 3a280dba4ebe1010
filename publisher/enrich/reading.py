"""Related reading for the whole archive: the source's own references first, then similar articles.

Rankings are cached in the state database, keyed by content hashes, so a run where nothing changed
never loads the ranking engine, and adding one article ranks only that article. With
`related.include_newer = false` (the default) an article links only to articles published at or
before it, and its cached list is kept until the article itself changes or a linked article goes:
links in a digest already sent or a feed item already read do not change when new articles arrive.
With `include_newer = true` every list is ranked again whenever the archive changes.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from publisher.config import RelatedSettings
from publisher.enrich import MODEL_VERSION, plain_text
from publisher.enrich.references import resolve
from publisher.models import Entry, Identity, Problem

if TYPE_CHECKING:
    from publisher.enrich.related import RankDoc, RelatedIndex
    from publisher.store import Store

log = logging.getLogger(__name__)
RANK_VERSION = "2"  # bump when the ranking (not the model: MODEL_VERSION) changes: cached lists are ranked again
TEXT_CHUNK = 500  # articles whose HTML is read from the state at a time
UNSAVED_MAX = 200  # articles the stored index may lack (each run folds them in again) before it is saved
Ranked = list[tuple[str, float, str]]  # (slug, score, reason)


class Progress(Protocol):
    """A stage's progress: `start` names the stage and its number of steps, `advance` reports steps done
    (the CLI draws one bar per stage in a terminal)."""

    def start(self, total: int, label: str = ...) -> None: ...

    def advance(self, done: int) -> None: ...


@dataclass(frozen=True)
class Reading:
    """Per slug, the related articles in order: (slug, score or None for a source reference, reason)."""

    lists: dict[str, list[tuple[str, float | None, str]]]
    problems: list[Problem]

    def slugs(self) -> dict[str, list[str]]:
        return {slug: [s for s, _, _ in items] for slug, items in self.lists.items()}


def _key(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:24]


def _input_keys(entries: Mapping[str, Entry], settings: RelatedSettings) -> dict[str, str]:
    """What a cached list depends on: the article itself, or with include_newer the whole archive."""
    archive = _key(sorted((s, e.content_hash) for s, e in entries.items())) if settings.include_newer else ""
    return {slug: _key(RANK_VERSION, MODEL_VERSION, e.content_hash, settings.count, settings.include_newer, archive)
            for slug, e in entries.items()}


def _texts(entries: Mapping[str, Entry], identities: Mapping[str, Identity],
           html_of: Callable[[Iterable[str]], dict[str, str]]) -> Callable[..., Iterator[RankDoc]]:
    """A function giving the ranker's view of some slugs, lazily (reading their HTML a chunk at a time:
    only the text is kept, and only by whoever keeps the docs), telling `step` how many were read after
    each chunk."""
    from publisher.enrich.related import RankDoc

    def docs(slugs: Iterable[str], step: Callable[[int], None] | None = None) -> Iterator[RankDoc]:
        wanted = list(slugs)
        for start in range(0, len(wanted), TEXT_CHUNK):
            chunk = wanted[start:start + TEXT_CHUNK]
            html = html_of(chunk)
            yield from [RankDoc(s, entries[s].title, plain_text(html[s]), entries[s].tags,
                                identities[s].published.timestamp()) for s in chunk]
            if step:
                step(len(chunk))

    return docs


def _rank(need: list[str], entries: Mapping[str, Entry], identities: Mapping[str, Identity], store: Store,
          html_of: Callable[[Iterable[str]], dict[str, str]], settings: RelatedSettings,
          progress: Progress | None = None) -> dict[str, Ranked]:
    """Rank the `need` slugs with the engine, keeping its index in the state close to the archive: a
    few articles added, edited or gone since it was stored are folded in (or left out) again each run
    rather than the whole index written again for them (tens of MB at 20,000 articles); once more than
    UNSAVED_MAX differ, or the model was fitted again, the index is stored. A folded article gets the
    vectors a stored one would have (they depend only on its text and the model); only the count that
    makes the index `stale` sees an article edited twice between stores once. Progress, in articles:
    texts read and the model fitted (when it must be), then articles ranked."""
    from publisher.enrich import heap
    from publisher.enrich.related import RelatedIndex  # NumPy and SciPy: only when ranking

    docs, step = _texts(entries, identities, html_of), progress.advance if progress else None
    hashes = {s: e.content_hash for s, e in entries.items()}
    stored = _stored_index(store)
    changed = [s for s in hashes if stored is None or stored[0].get(s) != hashes[s]]
    gone = [s for s in stored[0] if hashes.get(s) != stored[0][s]] if stored else []
    index = stored[1] if stored else None
    if index is not None and (changed or gone):
        index.remove(gone)
        if len(changed) < len(hashes) // 2:
            index.add(list(docs(changed)))
    rebuild = index is None or index.stale or len(index) != len(hashes)
    if progress:
        fit = len(hashes) + RelatedIndex.build_steps(len(hashes)) if rebuild else 0
        progress.start(fit + len(set(need)), "related reading")
    if index is None or rebuild:
        log.info("related reading: fitting the model on %d articles", len(hashes))
        index = RelatedIndex.build(docs(hashes, step), progress=step)
        changed = list(hashes)
    if rebuild or len(changed) + len(gone) > UNSAVED_MAX:
        data = index.to_bytes()
        heap.trim()  # what making the bytes freed: the state's write comes on top of what stays
        store.save_related_index(hashes, data)
        del data
    ranked = index.rank(need, settings.count, settings.include_newer, progress=step)
    return {slug: [(r.key, r.score, r.reason) for r in items] for slug, items in ranked.items()}


def _stored_index(store: Store) -> tuple[dict[str, str], RelatedIndex] | None:
    """The index kept in the state, or None (a new one is built) when there is none or it is unreadable:
    corrupt (a warning), or stored by an earlier version of the ranker (built again once, said with -v)."""
    from publisher.enrich.index_format import EarlierFormat
    from publisher.enrich.related import RelatedIndex

    try:
        stored = store.related_index()
        if stored is None:
            return None
        hashes, data = stored
        if not isinstance(hashes, dict):
            raise ValueError("the article hashes are not a JSON object")
        return {str(k): str(v) for k, v in hashes.items()}, RelatedIndex.from_bytes(data)
    except EarlierFormat as e:
        log.info("related reading: the index in the state database was made by an earlier version (%s); "
                 "building it again", e)
        return None
    except ValueError as e:  # json.JSONDecodeError is a ValueError too
        log.warning("related reading: the index in the state database cannot be used (%s); rebuilding it", e)
        return None


def _cached_lists(store: Store) -> dict[str, tuple[str, Ranked]]:
    """The rankings kept in the state; none (every list is ranked again) when they are unreadable."""
    try:
        return store.related_lists()
    except (ValueError, TypeError) as e:
        log.warning("related reading: the cached lists in the state database cannot be used (%s); ranking "
                    "again", e)
        return {}


def _needs_ranking(entries: Mapping[str, Entry], keys: Mapping[str, str],
                   cached: Mapping[str, tuple[str, Ranked]]) -> list[str]:
    """The slugs, sorted, whose cached list is missing, made from other inputs, or links to an article
    no longer published."""
    need = []
    for slug in sorted(entries):
        hit = cached.get(slug)
        if hit is None or hit[0] != keys[slug]:
            need.append(slug)
            continue
        for target, _, _ in hit[1]:
            if target not in entries:
                need.append(slug)
                break
    return need


def _lists(entries: Mapping[str, Entry], found: Mapping[str, list[str]], similar: Mapping[str, Ranked],
           settings: RelatedSettings) -> dict[str, list[tuple[str, float | None, str]]]:
    """Per slug: its source references, then its similar articles still published and scored at least
    the threshold, up to `settings.count` (or as many as there are references)."""
    lists: dict[str, list[tuple[str, float | None, str]]] = {}
    threshold, count, no_links = settings.threshold, settings.count, ()
    for slug in entries:
        refs = found.get(slug, no_links)
        items: list[tuple[str, float | None, str]] = [(s, None, "source reference") for s in refs]
        items += [(s, score, reason) for s, score, reason in similar.get(slug, no_links)
                  if score >= threshold and s in entries and s not in refs]
        lists[slug] = items[: max(count, len(refs))]
    return lists


def relate(entries: Mapping[str, Entry], identities: Mapping[str, Identity], store: Store,
           html_of: Callable[[Iterable[str]], dict[str, str]], settings: RelatedSettings,
           progress: Progress | None = None) -> Reading:
    """Source references first, then ranked similar articles, up to `settings.count` per article.
    `progress` is told of the "related reading" stage when something must be ranked (else not at all)."""
    found, missing = resolve(list(entries.values()))
    keys = _input_keys(entries, settings)
    cached = _cached_lists(store)
    fresh: dict[str, tuple[str, Ranked]] = {}
    need = _needs_ranking(entries, keys, cached)
    if need and settings.count:
        log.info("related reading: ranking %d of %d articles", len(need), len(entries))
        ranked = _rank(need, entries, identities, store, html_of, settings, progress)
        fresh = {slug: (keys[slug], ranked.get(slug, [])) for slug in need}
    if fresh or len(cached) != len(entries):
        store.save_related_lists(fresh, set(entries))
    similar = {slug: items for slug, (_, items) in cached.items()}
    similar.update((slug, items) for slug, (_, items) in fresh.items())
    problems = [Problem(entries[slug].source, f"related reference {ref!r} matches no published article",
                        "it is not shown until an article with that title or slug is published", None, "warning")
                for slug, refs in sorted(missing.items()) for ref in refs]
    return Reading(_lists(entries, found, similar, settings), problems)
