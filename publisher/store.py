"""The state database (SQLAlchemy Core; an SQLite file by default, or PostgreSQL): article identities and a
parse cache. Every query here runs on both engines; where they differ (upserts) `publisher.state.dialect`
says how. Timestamps are stored as ISO 8601 strings in UTC on both (not timezone-aware columns).

Identity: on first sight every article gets a permanent id, and its first-seen time becomes its
published date when the source gives none. An edit (new content hash) sets `updated`. Nothing is
derived again from the slug, URL or date later.

Parse cache: the enriched entry and HTML of each source file, keyed by path, mtime, size and a
fingerprint of the settings that shape the output, so unchanged files are not parsed again.

The Store reads and writes the rows; the tables are in `publisher.state.schema`, checking, creating,
upgrading and opening a file in `publisher.state.statefile`, a server database in `publisher.state.server`.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from publisher.models import Entry, Identity, SourceFile
from publisher.state.dialect import fetch_all, savepoint, upsert
from publisher.state.location import StateLocation, file_location
from publisher.state.schema import (
    articles,
    digest_articles,
    digests,
    memo,
    meta,
    related_index,
    related_lists,
    sources,
)
from publisher.state.server import server_connection
from publisher.state.statefile import prepare_tables, state_connection

__all__ = ["ROW_ERRORS", "Known", "Store", "entry_from_json", "entry_json", "new_id", "open_store"]

log = logging.getLogger(__name__)
ROW_ERRORS = (SQLAlchemyError, UnicodeError, ValueError, OverflowError)  # one row the database refuses
ENTRY_FIELDS = tuple(f.name for f in fields(Entry))


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def entry_json(entry: Entry) -> str:
    """The cached form of an entry: compact JSON, non-ASCII as is (orjson: a cold run encodes 22,250; the
    same text json.dumps(..., ensure_ascii=False, separators=(",", ":")) gives for an Entry's str, int,
    bool and None values)."""
    data = {name: getattr(entry, name) for name in ENTRY_FIELDS}
    data["date"], data["updated"] = _iso(entry.date), _iso(entry.updated)
    return orjson.dumps(data).decode()


def entry_from_json(text: str | bytes) -> Entry:
    """The Entry of `entry_json` (a run reads every cached entry, 22,250 at a time: orjson)."""
    data: dict[str, Any] = orjson.loads(text)
    data["date"], data["updated"] = _when(data["date"]), _when(data["updated"])
    data["tags"], data["references"] = tuple(data["tags"]), tuple(data["references"])
    return Entry(**data)


def new_id(site_url: str, slug: str, first_seen: datetime) -> str:
    """A UUID URN made once, on first sight; stored and never derived again."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"{site_url}#{slug}@{_iso(first_seen)}").urn


ArticleRow = tuple[str, str, str, str, str, str | None, str]  # slug, id, source, content_hash, published, ...


@dataclass(frozen=True)
class Known:
    """The articles table as one read in the run's transaction saw it (`Store.articles`): the ids and slugs
    the pipeline's rules check, and what `Store.record` compares the entries with."""

    rows: dict[str, ArticleRow]  # slug -> (slug, id, source, content_hash, published, updated, first_seen)

    def ids(self) -> dict[str, tuple[str, str]]:
        """id -> (slug, source path) of every article the state knows."""
        return {row[1]: (row[0], row[2]) for row in self.rows.values()}


class Store:
    """One connection and one transaction: a run's changes become durable at once, when the block of
    `open_store` ends; delivery makes each sent message durable on its own with `checkpoint()`.

    A read-only store (`write` false) works on a file opened read-only: what a run would save (parsed
    HTML, identities, rankings) is kept in memory for that run only, so it never takes the write lock."""

    def __init__(self, conn: sa.Connection, *, write: bool = True) -> None:
        self.conn = conn
        self.write = write
        self.trans = conn.begin()
        self._html: dict[str, str] = {}  # read-only runs: parsed HTML by path, in place of the cache rows

    def checkpoint(self) -> None:
        """Commit what is done so far and go on in a new transaction."""
        self.trans.commit()
        self.trans = self.conn.begin()

    def _put(self, table: sa.Table, rows: list[dict[str, Any]], *, replace: bool) -> None:
        """One statement: INSERT `rows`, or when `replace`, upsert them on the table's primary key."""
        if replace:
            upsert(self.conn, table, rows, [column.name for column in table.primary_key])
        else:
            self.conn.execute(table.insert(), rows)

    def _insert(self, table: sa.Table, rows: list[dict[str, Any]], key: str, *,
                replace: bool = False) -> dict[str, str]:
        """Insert (or with `replace`, upsert) `rows` in one batch; when the batch fails, row by row, each in
        a savepoint, so one bad row is left out and the others go in (a savepoint also keeps a PostgreSQL
        transaction usable after a refused row). Returns row[key] -> reason of each refused row."""
        if not rows:
            return {}
        try:
            with savepoint(self.conn):
                self._put(table, rows, replace=replace)
            return {}
        except OperationalError:
            raise
        except ROW_ERRORS:
            log.info("%s: a row was refused; inserting %d rows one by one", table.name, len(rows))
        refused: dict[str, str] = {}
        for row in rows:
            try:
                with savepoint(self.conn):
                    self._put(table, [row], replace=replace)
            except OperationalError:
                raise
            except ROW_ERRORS as e:
                refused[str(row[key])] = _reason(e)
        return refused

    def cached(self, fingerprint: str) -> dict[str, tuple[int, int, Entry]]:
        """rel path -> (mtime_ns, size, Entry) for the cache rows made with these settings."""
        query = sa.select(sources.c.path, sources.c.mtime_ns, sources.c.size, sources.c.entry).where(
            sources.c.fingerprint == fingerprint)
        rows = fetch_all(self.conn, query)
        return {path: (mtime_ns, size, entry_from_json(entry)) for path, mtime_ns, size, entry in rows}

    def save_cache(self, rows: Iterable[tuple[SourceFile, Entry, str]], fingerprint: str) -> dict[str, str]:
        """Cache parsed files; returns rel path -> reason of each row the database refused (not cached)."""
        rows = list(rows)
        if not self.write:
            self._html.update((f.rel, html) for f, _, html in rows)
            return {}
        values = [{"path": f.rel, "mtime_ns": f.mtime_ns, "size": f.size, "fingerprint": fingerprint,
                   "entry": entry_json(e), "html": html} for f, e, html in rows]
        return self._insert(sources, values, "path", replace=True)

    def forget_sources(self, keep: set[str]) -> None:
        """Drop cache rows of files that no longer exist."""
        if not self.write:
            return
        gone = [p for (p,) in fetch_all(self.conn, sa.select(sources.c.path)) if p not in keep]
        for chunk in range(0, len(gone), 500):
            self.conn.execute(sources.delete().where(sources.c.path.in_(gone[chunk:chunk + 500])))

    def html_for(self, paths: Iterable[str]) -> dict[str, str]:
        asked = list(paths)
        found = {p: self._html[p] for p in asked if p in self._html}
        wanted = [p for p in asked if p not in found]
        for chunk in range(0, len(wanted), 500):
            query = sa.select(sources.c.path, sources.c.html).where(sources.c.path.in_(wanted[chunk:chunk + 500]))
            found.update((row[0], row[1]) for row in self.conn.execute(query))
        return found

    def articles(self) -> Known:
        """The articles table, read once: for the pipeline's checks (`Known.ids`) and for `record(known=)`."""
        query = sa.select(articles.c.slug, articles.c.id, articles.c.source, articles.c.content_hash,
                          articles.c.published, articles.c.updated, articles.c.first_seen)
        return Known({row[0]: row for row in fetch_all(self.conn, query)})

    def record(self, entries: Iterable[Entry], now: datetime, site_url: str, *,
               known: Known | None = None) -> tuple[dict[str, Identity], dict[str, str]]:
        """Give new articles an id and a first-seen date; mark edited ones updated. Returns slug ->
        Identity, and slug -> reason for each article whose row the database refused (left out).
        `known`: the caller's `articles()` of this transaction, read before any record (else read here).
        Rows that differ are updated with one statement each: an unchanged article costs no write."""
        rows = (self.articles() if known is None else known).rows
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        result: dict[str, Identity] = {}
        parse = cache(datetime.fromisoformat)  # articles share first-seen times: each text parsed once
        iso = cache(_iso)
        for entry in entries:
            row = rows.get(entry.slug)
            if row is None:
                ident = Identity(entry.guid or new_id(site_url, entry.slug, now), entry.date or now,
                                 entry.updated, now)
                inserts.append(self._row(entry, ident))
            else:
                ident = self._revise(entry, row, now, parse)
                _, _, source, content_hash, published, updated, _ = row
                if (content_hash != entry.content_hash or source != entry.source
                        or published != iso(ident.published) or updated != iso(ident.updated)):
                    updates.append(self._row(entry, ident))
            result[entry.slug] = ident
        refused = self._insert(articles, inserts, "slug") if self.write else {}
        for values in updates if self.write else []:
            try:  # in a savepoint: a failed statement aborts a whole PostgreSQL transaction
                with savepoint(self.conn):
                    self.conn.execute(articles.update().where(articles.c.slug == values["slug"]).values(values))
            except OperationalError:
                raise
            except ROW_ERRORS as e:
                refused[values["slug"]] = _reason(e)
        return {slug: ident for slug, ident in result.items() if slug not in refused}, refused

    @staticmethod
    def _revise(entry: Entry, row: ArticleRow, now: datetime, parse: Callable[[str], datetime]) -> Identity:
        _, ident, _, content_hash, _, updated, first_seen_text = row
        first_seen = parse(first_seen_text)
        if entry.updated:
            changed: datetime | None = entry.updated
        elif entry.content_hash != content_hash:
            changed = now
        else:
            changed = parse(updated) if updated else None
        return Identity(ident, entry.date or first_seen, changed, first_seen)

    @staticmethod
    def _row(entry: Entry, ident: Identity) -> dict[str, Any]:
        return {"slug": entry.slug, "id": ident.id, "source": entry.source,
                "content_hash": entry.content_hash, "published": _iso(ident.published),
                "updated": _iso(ident.updated), "first_seen": _iso(ident.first_seen)}

    def related_lists(self) -> dict[str, tuple[str, list[tuple[str, float, str]]]]:
        """slug -> (input key, [(slug, score, reason), ...]) of the cached rankings."""
        query = sa.select(related_lists.c.slug, related_lists.c.input_key, related_lists.c.ranked)
        return {slug: (key, [(s, float(score), str(reason)) for s, score, reason in orjson.loads(items)])
                for slug, key, items in fetch_all(self.conn, query)}

    def save_related_lists(self, lists: dict[str, tuple[str, list[tuple[str, float, str]]]],
                           keep: set[str]) -> None:
        """Store new rankings and drop those of articles no longer published."""
        if not self.write:
            return
        gone = [s for (s,) in fetch_all(self.conn, sa.select(related_lists.c.slug)) if s not in keep]
        for chunk in range(0, len(gone), 500):
            self.conn.execute(related_lists.delete().where(related_lists.c.slug.in_(gone[chunk:chunk + 500])))
        upsert(self.conn, related_lists, [
            {"slug": slug, "input_key": key, "ranked": json.dumps(items, separators=(",", ":"))}
            for slug, (key, items) in lists.items()], ["slug"])

    def related_index(self) -> tuple[dict[str, str], bytes] | None:
        row = self.conn.execute(sa.select(related_index.c.hashes, related_index.c.data)).first()
        return (orjson.loads(row[0]), bytes(row[1])) if row else None

    def save_related_index(self, hashes: dict[str, str], data: bytes) -> None:
        if not self.write:
            return
        upsert(self.conn, related_index, {"name": "main", "hashes": json.dumps(hashes), "data": data}, ["name"])

    def meta_get(self, key: str) -> str | None:
        value: str | None = self.conn.execute(sa.select(meta.c.value).where(meta.c.key == key)).scalar()
        return value

    def meta_put(self, key: str, value: str) -> None:
        upsert(self.conn, meta, {"key": key, "value": value}, ["key"])

    def memo_get(self, name: str) -> tuple[str, str] | None:
        """(input key, output sha256) remembered for an output file, if any."""
        row = self.conn.execute(sa.select(memo.c.input_key, memo.c.output_sha).where(memo.c.name == name)).first()
        return (row[0], row[1]) if row else None

    def memo_put(self, name: str, input_key: str, output_sha: str) -> None:
        upsert(self.conn, memo, {"name": name, "input_key": input_key, "output_sha": output_sha}, ["name"])

    def last_digest_time(self) -> datetime | None:
        value = self.conn.execute(sa.select(sa.func.max(digests.c.created))).scalar()
        return _when(value)

    def carried(self) -> set[str]:
        """Slugs some digest already carried."""
        return set(self.conn.execute(sa.select(digest_articles.c.slug)).scalars())

    def new_digest_id(self, day: str) -> str:
        """YYYY-MM-DD, then YYYY-MM-DD-2, -3 ... for more digests on the same day."""
        taken = set(self.conn.execute(sa.select(digests.c.id).where(digests.c.id.like(f"{day}%"))).scalars())
        number = 1
        while (candidate := day if number == 1 else f"{day}-{number}") in taken:
            number += 1
        return candidate

    def record_digest(self, digest_id: str, created: datetime, slugs: Iterable[str], subject: str, html: str,
                      text: str) -> None:
        self.conn.execute(digests.insert().values(id=digest_id, created=_iso(created), subject=subject, html=html,
                                                  text=text))
        rows = [{"digest_id": digest_id, "slug": slug, "position": i} for i, slug in enumerate(slugs)]
        if rows:
            self.conn.execute(digest_articles.insert(), rows)

    def digest_message(self, digest_id: str) -> tuple[str, str, str]:
        """(subject, html, text) of a recorded digest, as rendered once (with the unsubscribe placeholder)."""
        row = self.conn.execute(sa.select(digests.c.subject, digests.c.html, digests.c.text).where(
            digests.c.id == digest_id)).one()
        return row[0], row[1], row[2]

    def digest_files(self) -> list[tuple[str, str, str]]:
        """(id, html, text) of every digest, oldest first."""
        query = sa.select(digests.c.id, digests.c.html, digests.c.text).order_by(digests.c.created, digests.c.id)
        return [(row[0], row[1], row[2]) for row in self.conn.execute(query)]

    def digest_history(self) -> list[tuple[str, datetime, list[str]]]:
        """Every digest, newest first: (id, created, slugs in order)."""
        carried: dict[str, list[str]] = {}
        query = sa.select(digest_articles.c.digest_id, digest_articles.c.slug).order_by(
            digest_articles.c.digest_id, digest_articles.c.position)
        for digest_id, slug in self.conn.execute(query):
            carried.setdefault(digest_id, []).append(slug)
        rows = self.conn.execute(sa.select(digests.c.id, digests.c.created).order_by(
            digests.c.created.desc(), digests.c.id.desc()))
        return [(i, datetime.fromisoformat(c), carried.get(i, [])) for i, c in rows]


def _reason(error: BaseException) -> str:
    """The database's own words for a refused row (without SQLAlchemy's statement and parameters)."""
    return str(getattr(error, "orig", None) or error).splitlines()[0]


@contextmanager
def open_store(location: StateLocation | Path, *, write: bool = True) -> Iterator[Store]:
    """Open the state database, creating it only where none exists; changes are kept only when `write`
    is true and the block ends without an exception. A read-only run opens an SQLite file read-only (on
    a missing file it uses memory), and a server database in a read-only transaction. A state that is
    empty, not SQLite or without the publisher schema is a StateError naming it: starting over would
    give every article a new id."""
    if isinstance(location, Path):
        location = file_location(location)
    if location.path is None:
        with server_connection(location, write=write) as conn:
            store = Store(conn, write=write)
            if not write:
                conn.execute(sa.text("SET TRANSACTION READ ONLY"))
            yield from _finish(store)
        return
    with state_connection(location.path, write=write) as (conn, where):
        store = Store(conn, write=write)
        prepare_tables(conn, where, write=write)
        yield from _finish(store)


def _finish(store: Store) -> Iterator[Store]:
    yield store
    if store.write:
        store.trans.commit()
    else:
        store.trans.rollback()
