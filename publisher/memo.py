"""Memos that spare work when inputs are unchanged: an output file is rendered again only when its
inputs changed (or the file on disk is not what was written), and a whole publish run is skipped when
nothing it reads has changed (`first_look`). The memos live in the state (`memo` table, `last_publish`
meta row).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields, is_dataclass
from datetime import UTC, datetime
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from publisher import __version__
from publisher.load import EXTENSIONS, scan_checked
from publisher.models import Entry, Identity, Problem, PublishReport, SourceFile
from publisher.state.peek import peek_meta

if TYPE_CHECKING:  # SQLAlchemy is not imported by the parsing workers, which import publisher.pipeline
    from publisher.config import Settings
    from publisher.store import Store

Scanned = tuple[Sequence[SourceFile], Sequence[Problem]]  # the article files found, and what was left out


def memo_key(value: object) -> str:
    """A memo key: the same inputs give the same text in every run (a date read from the file and the
    same date read back from the state differ only in their tzinfo object: both become UTC ISO text)."""
    return repr(_canonical(value))


_ENTRY_FIELDS = attrgetter(*(f.name for f in fields(Entry)))  # every field, as a tuple
_IDENTITY_FIELDS = attrgetter(*(f.name for f in fields(Identity)))


def _instant(value: object) -> object:
    """A datetime as its POSIX timestamp: the same instant read from a file or back from the state (their
    tzinfo objects differ) gives the same value; pages show it in the site's timezone, a shared input."""
    return value.timestamp() if isinstance(value, datetime) else value


def article_key(entry: Entry, ident: Identity) -> tuple[tuple[object, ...], tuple[object, ...]]:
    """Every field of an article and of its identity as plain values: the definition of an article's part
    of the page and archive memo keys (their text is its repr, which `article_text` makes faster; the
    tests hold the two equal)."""
    return tuple(map(_instant, _ENTRY_FIELDS(entry))), tuple(map(_instant, _IDENTITY_FIELDS(ident)))


def _dated(kind: type) -> tuple[int, ...]:
    """The positions of the fields of a dataclass that may hold a datetime (their type names it)."""
    return tuple(n for n, f in enumerate(fields(kind)) if "datetime" in str(f.type))


_ENTRY_DATED, _IDENTITY_DATED = _dated(Entry), _dated(Identity)


def _instants(values: tuple[object, ...], dated: tuple[int, ...]) -> tuple[object, ...]:
    """`values` with the datetimes at the `dated` positions as `_instant` makes them (the other fields
    hold no datetime: their types say so)."""
    plain = list(values)
    for n in dated:
        if isinstance(value := plain[n], datetime):
            plain[n] = value.timestamp()
    return tuple(plain)


def article_text(entry: Entry, ident: Identity) -> str:
    """`repr(article_key(entry, ident))` without its outer parentheses, made faster (only the fields that
    may hold a datetime are looked at): the text an output puts in its memo keys, made once a run for
    each article (outputs.Derived) and shared by the article pages and the archive feeds."""
    return repr((_instants(_ENTRY_FIELDS(entry), _ENTRY_DATED),
                 _instants(_IDENTITY_FIELDS(ident), _IDENTITY_DATED)))[1:-1]


PLAIN = frozenset({str, int, float, bool, type(None)})  # kept as they are (most values are these)
Canonical = Callable[[Any], object]
_BY_KIND: dict[type, Canonical] = {}  # how values of each type are made canonical, decided once per type


def _canonical(value: object) -> object:
    kind = type(value)
    if kind in PLAIN:
        return value
    canonical = _BY_KIND.get(kind) or _BY_KIND.setdefault(kind, _canonical_for(kind))
    return canonical(value)


def _canonical_for(kind: type) -> Canonical:
    """The rule for one type, in this order: datetimes as UTC ISO text; a dataclass as its type name then
    its fields; lists and tuples as tuples; dicts as (key, value) tuples; anything else as it is."""
    if issubclass(kind, datetime):
        return lambda value: value.astimezone(UTC).isoformat()
    if is_dataclass(kind):
        return _dataclass_rule(kind.__name__, tuple(f.name for f in fields(kind)))
    if issubclass(kind, (list, tuple)):
        return lambda value: tuple([v if type(v) in PLAIN else _canonical(v) for v in value])
    if issubclass(kind, dict):
        return lambda value: tuple([(k, v if type(v) in PLAIN else _canonical(v)) for k, v in value.items()])
    return lambda value: value


def _dataclass_rule(name: str, names: tuple[str, ...]) -> Canonical:
    if not names:
        return lambda value: (name,)
    get: Callable[[Any], Any] = attrgetter(*names)  # several names: a tuple of the values

    def canonical(value: object) -> object:
        values = get(value) if len(names) > 1 else (get(value),)
        return (name, *[v if type(v) in PLAIN else _canonical(v) for v in values])
    return canonical


def _key_sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def memo_hit(store: Store, output: Path, name: str, key: str) -> bytes | None:
    """The output file as last written, when its inputs (`key`) are unchanged and it is still as written."""
    from publisher.write import safe_join  # imported by every render, not by a no-op run

    known = store.memo_get(name)
    path = safe_join(output, name)
    if known and known[0] == _key_sha(key) and path.is_file():
        data = path.read_bytes()
        if _sha(data) == known[1]:
            return data
    return None


def memo_keep(store: Store, name: str, key: str, data: bytes) -> None:
    store.memo_put(name, _key_sha(key), _sha(data))


def memoized(store: Store, output: Path, name: str, key: str, make: Callable[[], bytes], *,
             record: bool) -> bytes:
    """An output file rendered only when its inputs changed (or the file on disk is not what we wrote)."""
    data = memo_hit(store, output, name, key)
    if data is None:
        data = make()
        if record:
            memo_keep(store, name, key, data)
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


def input_key(settings: Settings, files: Sequence[SourceFile]) -> str:
    """Everything a publish run reads, cheaply: settings, article files and templates (name, mtime, size)."""
    from publisher.resources import builtin_templates

    digest = hashlib.sha256(repr((__version__, settings)).encode())
    for f in files:
        digest.update(f"{f.rel}\0{f.mtime_ns}\0{f.size}\n".encode())
    for folder in (settings.paths.templates, builtin_templates()):
        for path in sorted(folder.rglob("*.j2")) if folder.is_dir() else []:  # includes may sit in subfolders
            st = path.stat()
            digest.update(f"{path}\0{st.st_mtime_ns}\0{st.st_size}\n".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class FirstLook:
    """What a publish run learns before it opens the state or imports the rest of the pipeline: the
    article files found, its input key, the last run's memo as peeked from an SQLite state file (None
    when not `checked`, or when the state is not such a file), and that run's report when nothing has
    changed (`same`: the run is skipped)."""

    scanned: Scanned
    key: str
    saved: str | None
    same: PublishReport | None
    checked: bool  # whether a run with nothing changed may be skipped (not for a dry run or --force)


def first_look(settings: Settings, now: datetime, *, check: bool) -> FirstLook:
    """The start of a publish run: scan the articles, key the inputs and, when `check`, compare them with
    the last run. It needs neither SQLAlchemy nor the rest of the pipeline, so a caller can make it before
    importing publisher.pipeline, which a run with nothing changed never needs."""
    scanned = scan_checked(settings.paths.articles, EXTENSIONS)
    key = input_key(settings, scanned[0])
    saved = peek_meta(settings.paths.state, "last_publish") if check else None
    return FirstLook(scanned, key, saved, unchanged_run(saved, key, now, settings.paths.output), check)


def unchanged_run(saved: str | None, key: str, now: datetime, output: Path) -> PublishReport | None:
    """The last run's report (`saved`: the state's `last_publish` row) when nothing it read has changed,
    no waiting article is due and every file it wrote is still as written (the article pages, which may
    be tens of thousands: still there with their size); else None (a full run follows)."""
    if saved is None:
        return None
    last = json.loads(saved)
    if last["key"] != key or (last["wake"] and now >= datetime.fromisoformat(last["wake"])):
        return None
    if not _same_files(output, last["outputs"], last.get("sized", {})):
        return None
    problems = tuple(Problem(**p) for p in last["problems"])
    return PublishReport(read=last["read"], published=last["published"], skipped=last["skipped"],
                         unchanged=tuple(sorted([*last["outputs"], *last.get("sized", {})])), problems=problems,
                         hidden=last["hidden"])


class OnDisk:
    """The output folder opened once, to ask of many files whether they are still as written: a stat of a
    name relative to it (a third faster than of the whole path, on 22,250 pages). The no-op run's check
    (`_same_files`) and the outputs' memos use it: `with OnDisk(root) as on_disk:`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.fd: int | None = None

    def __enter__(self) -> OnDisk:
        try:
            self.fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:  # no output folder: no file is still written
            self.fd = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def still_written(self, name: str, size: object) -> bool:
        """Whether the file `name` is still there with the size it was written with, so that a run of a
        large archive does not read every file again."""
        if self.fd is None:
            return False
        try:
            return os.stat(name, dir_fd=self.fd).st_size == size
        except OSError:
            return False


def _same_files(output: Path, shas: dict[str, str], sized: dict[str, int]) -> bool:
    """Whether every file of the last run is still as written: those in `shas` with their sha256, the
    `sized` ones (article pages, archive pages) there with their size.

    The names are the run's own, each checked by write.safe_join when it was written; they are looked up
    from the output folder opened once (`OnDisk`). One stat per file, not one per folder: a file edited
    in place leaves its folder's time as it was (and an article page is alone in its folder: one stat
    either way)."""
    with OnDisk(output) as on_disk:
        if on_disk.fd is None:  # no output folder: every file is missing
            return not (shas or sized)
        top, folder = os.path.realpath(output), on_disk.fd
        try:
            if not all(_inside(top, name) and _file_sha(name, folder) == sha for name, sha in shas.items()):
                return False
        except OSError:  # missing, a folder in its place, unreadable
            return False
        return all(on_disk.still_written(name, size) for name, size in sized.items())


def _inside(top: str, name: str) -> bool:
    """Whether `name` still resolves inside the output folder (a link put in place of a feed that leads
    out is not read: the run then goes on, and write.safe_join refuses to write through it)."""
    return os.path.realpath(os.path.join(top, name)).startswith(top + os.sep)


def _file_sha(name: str, folder: int) -> str | None:
    """The sha256 of a regular file (None for anything else: a FIFO in its place is not waited for)."""
    opened = os.open(name, os.O_RDONLY | os.O_NONBLOCK, dir_fd=folder)
    with open(opened, "rb") as file:
        return _sha(file.read()) if stat.S_ISREG(os.fstat(opened).st_mode) else None


def remember_run(store: Store, key: str, report: PublishReport, wake: datetime | None,
                 outputs: dict[str, bytes], sized: dict[str, int] | None = None) -> None:
    """Keep a run's report for `unchanged_run`: its input key, when the next waiting article is due
    (`wake`), its counts and problems, the sha256 of every file it made, and the size of the `sized`
    ones (article pages: checked by size only, so a no-op run of a large archive stays fast)."""
    store.meta_put("last_publish", json.dumps({
        "key": key, "wake": wake.isoformat() if wake else None, "read": report.read,
        "published": report.published, "skipped": report.skipped, "hidden": report.hidden,
        "problems": [asdict(p) for p in report.problems],
        "outputs": {name: _sha(data) for name, data in outputs.items() if name not in (sized or {})},
        "sized": dict(sorted((sized or {}).items()))}))
