"""The outputs of a publish run, as rows of one table (like Hugo's output formats): feeds, digest, home,
article pages. Each row names the files it owns at the top of the output folder and makes its files for
a run (`Made`), rendering only what changed: each output builds its memo key from the inputs it declares
(`*_inputs`). `reserved` is the one place that decides whether an article's page would land on a name an
output (or `publisher serve`) owns; selection asks it before anything is rendered.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from publisher.enrich.reading import Progress
from publisher.models import Problem
from publisher.render import FILENAMES
from publisher.write import Staged, compare_outputs, stage_outputs

if TYPE_CHECKING:  # publisher.pipeline imports this package to list its outputs
    from publisher.config import Settings
    from publisher.outputs.tags import TagIndex
    from publisher.pipeline import Archive

WEB_ROUTES = ("subscribe", "confirm", "unsubscribe", "static")  # publisher/web/app.py
ARCHIVE_FEEDS = "feed-archive"  # RFC 5005 archive documents: feed-archive/<N>/rss.xml, atom.xml, feed.json
TAG_FEEDS = "tags"  # per-tag feeds: tags/<tag-slug>/rss.xml, atom.xml, feed.json
RESERVED_HINT = "give the article another slug (front matter 'slug:' or a new file name)"


class Derived:
    """What several outputs derive from one archive, made once a run rather than once an output: the
    tag index and each article's memo-key text (`memo.article_text`, in the keys of the article pages and
    of the archive feeds). The run's Context holds one for its archive (which no output changes); an
    output called without one makes its own."""

    def __init__(self, archive: Archive) -> None:
        self.archive = archive
        self._tags: TagIndex | None = None
        self._texts: dict[str, str] | None = None

    def tags(self) -> TagIndex:
        """outputs.tags.tag_index, once."""
        if self._tags is None:
            from publisher.outputs.tags import tag_index

            self._tags = tag_index(self.archive)
        return self._tags

    def texts(self) -> dict[str, str]:
        """slug -> memo.article_text of every article, made the first time one is asked for."""
        if self._texts is None:
            from publisher.memo import article_text

            entries, identities = self.archive.entries, self.archive.identities
            self._texts = {slug: article_text(entry, identities[slug]) for slug, entry in entries.items()}
        return self._texts


@dataclass(frozen=True)
class Context:
    """What a run tells every output: the clock, whether to force a digest, whether to record memos."""

    now: datetime
    force_digest: bool = False
    record: bool = True
    progress: Progress | None = None  # told about stages that take a while (the article pages)
    derived: Derived | None = None  # what the outputs share about the run's archive (pipeline.make_outputs)


@dataclass
class Made:
    """What one output made for a run."""

    files: dict[str, bytes] = field(default_factory=dict)  # to write (files already as written are kept)
    kept: dict[str, int] = field(default_factory=dict)  # unchanged and not read again: name -> size
    written: dict[str, int] = field(default_factory=dict)  # staged (or, dry run, would be): name -> size
    staged: list[Staged] = field(default_factory=list)  # in temporary files, put in place with `files`
    gone: list[str] = field(default_factory=list)  # files it made before and makes no more (to remove)
    left_out: list[Problem] = field(default_factory=list)  # articles it could not render (skipped)
    notes: list[Problem] = field(default_factory=list)  # reported; the articles are still published
    digest: str | None = None

    def discard_staged(self) -> None:
        """Remove the temporary files of what was staged, and forget it."""
        for batch in self.staged:
            batch.discard()
            self.written = {n: size for n, size in self.written.items() if n not in set(batch.names)}
        self.staged.clear()

    def take(self, placed: Placed) -> None:
        """Files `place` staged or compared (in this process or in a worker), as written or kept; the
        caller has let their bytes go (a large output places a chunk at a time)."""
        if placed.staged is not None:
            self.staged.append(placed.staged)
        self.written.update((name, placed.sizes[name]) for name in placed.written)
        self.kept.update((name, placed.sizes[name]) for name in placed.unchanged)

    def add(self, other: Made) -> None:
        self.files.update(other.files)
        self.kept.update(other.kept)
        self.written.update(other.written)
        self.staged += other.staged
        self.gone += other.gone
        self.left_out += other.left_out
        self.notes += other.notes
        self.digest = self.digest or other.digest


@dataclass
class Placed:
    """What `place` made of a set of rendered files: the names written (staged in temporary files, or in
    a dry run only compared) and unchanged, and each file's size (and sha256, when asked for)."""

    staged: Staged | None
    written: list[str]
    unchanged: list[str]
    sizes: dict[str, int]
    digests: dict[str, str]

    def discard(self) -> None:
        """Remove what was staged (nothing in a dry run)."""
        if self.staged is not None:
            self.staged.discard()


def place(root: Path, files: dict[str, bytes], *, record: bool, hashed: bool = False) -> Placed:
    """Stage `files` below `root` (`record`), else compare them with what is there; with their sha256 when
    `hashed`. Called where the files were rendered (a worker process too: the bytes then never travel
    back; `Made.take` adds the result)."""
    if record:
        staged: Staged | None
        staged, unchanged = stage_outputs(root, files)
        written = staged.names
    else:
        staged, (written, unchanged) = None, compare_outputs(root, files)
    return Placed(staged, written, unchanged, {name: len(data) for name, data in files.items()},
                  {name: hashlib.sha256(data).hexdigest() for name, data in files.items()} if hashed else {})


@dataclass(frozen=True)
class Output:
    name: str
    owns: Callable[[Settings], Iterable[str]]  # names at the top of the output folder
    make: Callable[[Archive, Context], Made]


def _feeds(archive: Archive, ctx: Context) -> Made:
    from publisher.outputs.feeds import feed_made

    return feed_made(archive, record=ctx.record, derived=ctx.derived)


def _tags(archive: Archive, ctx: Context) -> Made:
    from publisher.outputs.tags import tag_made

    return tag_made(archive, record=ctx.record, derived=ctx.derived)


def _digest(archive: Archive, ctx: Context) -> Made:
    from publisher.outputs.digest import digest_files

    files, digest_id, problems = digest_files(archive, ctx.now, force=ctx.force_digest, record=ctx.record)
    return Made(files=files, notes=problems, digest=digest_id)


def _home(archive: Archive, ctx: Context) -> Made:
    from publisher.outputs.home import home_made

    return home_made(archive, record=ctx.record, derived=ctx.derived)  # pages no longer made: `gone`


def _pages(archive: Archive, ctx: Context) -> Made:
    from publisher.outputs.pages import page_files

    return page_files(archive, record=ctx.record, progress=ctx.progress, derived=ctx.derived)


OUTPUTS = (
    Output("feeds", lambda settings: (*FILENAMES.values(), ARCHIVE_FEEDS), _feeds),
    Output("tag feeds", lambda settings: (TAG_FEEDS,), _tags),
    Output("digest", lambda settings: ("digests", "preview"), _digest),
    Output("home", lambda settings: ("index.html", "archive"), _home),
    Output("pages", lambda settings: (), _pages),
)


def reserved(name: str, settings: Settings) -> str | None:
    """What owns `name` (a path below the output folder, e.g. an article page's), judged by its first
    part: an output's name (the feeds, `digests`, `index.html`, the archive pages), or a route of
    `publisher serve`; None when the name is free."""
    return owners(settings).get(name.split("/", 1)[0])


def owners(settings: Settings) -> dict[str, str]:
    """Each name an output (or a route of `publisher serve`) owns at the top of the output folder -> what
    owns it (the first output of the table that names it), as `reserved` reports it."""
    owned: dict[str, str] = {}
    for output in OUTPUTS:
        owner = f"the {output.name}" if output.name != "home" else "the home page and its archive"
        for first in output.owns(settings):
            owned.setdefault(first, owner)
    for route in WEB_ROUTES:
        owned.setdefault(route, f"the /{route} page of publisher serve")
    return owned


def page_name(settings: Settings, slug: str) -> str:
    """Where an article's page is written below the output folder: its URL (`site.permalink`), with
    index.html for a URL that ends in '/'."""
    path = settings.site.permalink.replace("{slug}", slug)
    return path + "index.html" if path.endswith("/") else path


def unreserved(slugs: Iterable[tuple[str, str]], settings: Settings) -> tuple[set[str], list[Problem]]:
    """(slug, source) pairs -> the slugs whose page would land on a reserved name, and a Problem each."""
    refused: set[str] = set()
    problems: list[Problem] = []
    owned = owners(settings)
    for slug, source in slugs:
        if owner := owned.get(page_name(settings, slug).split("/", 1)[0]):
            refused.add(slug)
            problems.append(Problem(source, f"slug '{slug}' is reserved: its page would replace {owner}",
                                    RESERVED_HINT))
    return refused, problems
