"""Per-tag feeds: tags/<tag-slug>/rss.xml, atom.xml, feed.json (the configured formats) for every tag
that at least `feeds.tag_min` published articles carry (0: no tag feeds at all).

Tags are compared after `publisher.tagslug.fold` (NFKC, casefold, whitespace collapsed); a feed's name
is the tag's most used spelling (ties: the first in code point order). Tags whose slugs are equal
("C" and "C++" are both `c`) are one feed, with one warning naming them; a tag with an empty slug
(punctuation or emoji only) gets no feed and one warning. `tag_index` is the one place that decides
which tags have feeds: the tag feeds, the article pages and the home page all ask it.

Each tag feed holds the newest `feeds.limit` articles of its tag (related reading as the main feeds
show it) and has no RFC 5005 archive documents. It is rendered only when what it shows changed (a
memo per file); the files of tags that no longer have a feed are removed (`gone`: the names last made
are kept in one meta row).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from publisher import __version__
from publisher.errors import PublisherError
from publisher.memo import memo_hit, memo_keep, memo_key
from publisher.models import Problem
from publisher.outputs import Derived, Made
from publisher.render import feed_names, render_feeds_checked, uri
from publisher.tagslug import Topic, fold, slugify

if TYPE_CHECKING:
    from publisher.pipeline import Archive

log = logging.getLogger(__name__)
FILES_ROW = "tag_feeds"  # meta row: the tag feed files last made, to remove the ones made no more
RENAME = "rename one of the tags (front matter 'tags:') to give each a feed of its own"


@dataclass(frozen=True)
class TagFeed:
    """One tag feed: its slug, the name shown, its articles (slugs, newest first)."""

    slug: str
    name: str
    articles: tuple[str, ...]

    @property
    def topic(self) -> Topic:
        return Topic(self.slug, self.name, len(self.articles))


@dataclass
class TagIndex:
    """Which tags have feeds (slug -> TagFeed, by slug), and the warnings about tags that collide or
    cannot have a feed."""

    feeds: dict[str, TagFeed] = field(default_factory=dict)
    notes: list[Problem] = field(default_factory=list)

    def of_article(self, tags: tuple[str, ...]) -> list[tuple[str, Topic | None]]:
        """An article's tags as written (one per fold), each with its feed's Topic when it has one."""
        shown: list[tuple[str, Topic | None]] = []
        seen: set[str] = set()
        for tag in tags:
            if (key := fold(tag)) and key not in seen:
                seen.add(key)
                feed = self.feeds.get(slugify(key))
                shown.append((" ".join(tag.split()), feed.topic if feed else None))
        return shown

    def topics(self) -> list[Topic]:
        """Every tag that has feeds, most articles first, then by name."""
        return sorted((f.topic for f in self.feeds.values()), key=lambda t: (-t.count, t.name.casefold(), t.slug))


@dataclass
class _Seen:
    """What the articles say about one folded tag: its spellings (counted) and its articles."""

    spellings: Counter[str] = field(default_factory=Counter)
    articles: list[str] = field(default_factory=list)  # newest first


def _seen_tags(archive: Archive, newest: list[str]) -> dict[str, _Seen]:
    """Folded tag -> its spellings and its articles (newest first, each once)."""
    seen: dict[str, _Seen] = {}
    entries = archive.entries
    for slug in newest:
        if not (tags := entries[slug].tags):
            continue
        keys: set[str] = set()
        for tag in tags:
            if not (key := fold(tag)):
                continue
            tag_seen = seen.setdefault(key, _Seen())
            tag_seen.spellings[" ".join(tag.split())] += 1
            if key not in keys:
                keys.add(key)
                tag_seen.articles.append(slug)
    return seen


def _source(archive: Archive, seen: _Seen) -> str:
    """An article file that has the tag (the first by name: the same one every run)."""
    return min(archive.entries[s].source for s in seen.articles)


def _name(spellings: Counter[str]) -> str:
    """The most used spelling; ties broken by code point order."""
    return min(spellings, key=lambda s: (-spellings[s], s))


def tag_index(archive: Archive) -> TagIndex:
    """The tags that have feeds (`feeds.tag_min` articles or more), and the warnings (a run asks for the
    index once: outputs.Derived.tags)."""
    index = TagIndex()
    if archive.settings.feeds.tag_min <= 0:
        return index
    by_slug: dict[str, list[str]] = {}
    newest = archive.newest()
    seen = _seen_tags(archive, newest)
    for key in sorted(seen):
        by_slug.setdefault(slugify(key), []).append(key)
    for key in by_slug.pop("", []):
        tag = _name(seen[key].spellings)
        index.notes.append(Problem(_source(archive, seen[key]), f"tag {tag!r} has no letter or digit: it gets no "
                                   "feed", "give it a letter or a digit, or remove it", severity="warning"))
    order: dict[str, int] = {}
    for slug, keys in sorted(by_slug.items()):
        members = list(seen[keys[0]].articles)  # newest first already
        if len(keys) > 1:  # tags folded apart, one slug: their articles merged, newest first
            order = order or {s: n for n, s in enumerate(newest)}
            members = sorted({a for k in keys for a in seen[k].articles}, key=order.__getitem__)
        if len(members) < archive.settings.feeds.tag_min:
            continue
        spellings = sum((seen[k].spellings for k in keys), Counter[str]())
        feed = index.feeds[slug] = TagFeed(slug, _name(spellings), tuple(members))
        if len(keys) > 1:
            names = " and ".join(repr(_name(seen[k].spellings)) for k in keys)
            index.notes.append(Problem(_source(archive, seen[keys[-1]]), f"tags {names} have the same slug: they "
                                       f"are one feed, {feed.topic.folder}", RENAME, severity="warning"))
    return index


def feed_inputs(archive: Archive, feed: TagFeed, slugs: list[str]) -> object:
    """What a tag feed shows: its name, its items, the titles in their related reading, the settings
    that shape a feed, publisher's version."""
    settings = archive.settings
    related = {s: [(t, archive.entries[t].title) for t in archive.related.get(s, []) if t in archive.entries]
               for s in slugs}
    return (__version__, "tag", feed.slug, feed.name, settings.site, settings.feeds.limit, settings.feeds.formats,
            settings.feeds.hubs, settings.related.in_feeds,
            [(archive.entries[s], archive.identities[s], related[s]) for s in slugs])


def tag_feed_files(archive: Archive, feed: TagFeed, *, record: bool) -> tuple[dict[str, bytes], list[Problem], bool]:
    """One tag's feeds (kept ones as last written), the articles left out, and whether it was rendered."""
    from publisher.outputs.feeds import with_related_reading

    settings = archive.settings
    folder = feed.topic.folder
    slugs = list(feed.articles[:settings.feeds.limit])
    key = memo_key(feed_inputs(archive, feed, slugs))
    names = [folder + name for name in feed_names(settings.feeds.formats)]
    kept = {name: memo_hit(archive.store, settings.paths.output, name, key + name) for name in names}
    if all(data is not None for data in kept.values()):
        return {name: data for name, data in kept.items() if data is not None}, [], False
    top = archive.articles(slugs)
    if settings.related.in_feeds:
        top = [with_related_reading(a) for a in top]
    files, problems = render_feeds_checked(settings.site, top, settings.feeds.formats, settings.feeds.hubs,
                                           folder=folder, title=f"{settings.site.title}: {feed.name}",
                                           feed_id=settings.site.url + uri(folder))
    if record and not problems:
        for name, data in files.items():
            memo_keep(archive.store, name, key + name, data)
    return files, problems, True


def tag_made(archive: Archive, *, record: bool, derived: Derived | None = None) -> Made:
    """Every tag feed (rendered only when changed), the warnings, and the files of tags that lost theirs."""
    index = (derived or Derived(archive)).tags()
    made = Made(notes=list(index.notes))
    before = _last_made(archive)
    keep: set[str] = set()
    rendered = 0
    for feed in index.feeds.values():
        try:
            files, problems, fresh = tag_feed_files(archive, feed, record=record)
        except PublisherError as e:  # this tag's feeds keep their old files; the others go on
            made.notes.append(Problem(feed.topic.folder, f"tag feed not written: {e.message}", e.hint,
                                      severity="warning"))
            keep |= {name for name in before if name.startswith(feed.topic.folder)}
            continue
        made.files.update(files)
        rendered += fresh
        _left_out(made, problems, feed)
    now = sorted(set(made.files) | keep)
    made.gone = sorted(set(before) - set(now))
    if record and before != now:
        archive.store.meta_put(FILES_ROW, json.dumps(now))
    log.info("tag feeds: %d tags, %d rendered, %d unchanged, %d files to remove", len(index.feeds), rendered,
             len(index.feeds) - rendered, len(made.gone))
    return made


def _last_made(archive: Archive) -> list[str]:
    saved = archive.store.meta_get(FILES_ROW)
    return list(json.loads(saved)) if saved else []


def _left_out(made: Made, problems: list[Problem], feed: TagFeed) -> None:
    """An article a tag feed could not show: a warning (it is published; the main feeds report it too)."""
    for problem in problems:
        note = Problem(problem.path, f"left out of the tag feed {feed.topic.folder}: {problem.message}",
                       problem.hint, severity="warning")
        made.notes.append(note)
