"""The Store's whole-table reads (parse cache, articles, related lists) on both engines: they give what the
rows hold, `record` with the caller's `articles()` read gives what it gives reading the table itself, and
a database error stays SQLAlchemy's (`state.dialect.fetch_all`, which takes plain binds only)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from publisher.models import Entry, SourceFile
from publisher.state.dialect import fetch_all
from publisher.state.location import StateLocation, locate
from publisher.store import ENTRY_FIELDS, entry_from_json, entry_json, open_store

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SITE = "https://example.com/"


def location(state_url: str, tmp_path: Path) -> StateLocation:
    return locate(state_url, tmp_path, {}, "test")


def entry(slug: str, content_hash: str = "h1", **fields: object) -> Entry:
    values: dict[str, object] = {"source": f"{slug}.md", "slug": slug, "title": slug.title(), "summary": "s",
                                 "reading_minutes": 1, "content_hash": content_hash, **fields}
    return Entry(**values)  # type: ignore[arg-type]


FULL = entry("full", date=datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC),
             updated=datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC), author="Ann", tags=("a", "b"), image="i.png",
             draft=True, references=("r1", "r2"), guid="urn:x", link="https://elsewhere/", image_alt="alt")


@pytest.mark.parametrize("value", [FULL, entry("bare")])
def test_an_entry_comes_back_from_its_json(value: Entry) -> None:
    back = entry_from_json(entry_json(value))
    assert back == value and type(back.tags) is tuple and type(back.references) is tuple
    assert back.date == value.date and back.updated == value.updated


def test_the_cached_text_is_what_earlier_versions_stored() -> None:
    """A state written before the cache was encoded with orjson holds json.dumps' text: the same bytes, so
    nothing in a state changes its form with the upgrade (non-ASCII kept, compact, the same escapes)."""
    tricky = entry("tricky", title='Caf\u00e9 \u201cquoted\u201d \\ "x"\t\u2028 \U0001f600 </script>',
                   summary="line\nbreak", tags=("\u00fcber", ""), author=None, draft=False, reading_minutes=12)
    for value in (FULL, entry("bare"), tricky):
        data = {name: getattr(value, name) for name in ENTRY_FIELDS}
        data["date"] = value.date.isoformat() if value.date else None
        data["updated"] = value.updated.isoformat() if value.updated else None
        assert entry_json(value) == json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        assert entry_from_json(entry_json(value)) == value


def test_an_entry_whose_json_names_its_fields_in_another_order_comes_back_too() -> None:
    data = json.loads(entry_json(FULL))
    shuffled = json.dumps(dict(reversed(list(data.items()))))
    assert list(json.loads(shuffled)) != list(ENTRY_FIELDS)
    assert entry_from_json(shuffled) == FULL


def test_an_entry_json_with_a_field_too_many_is_refused() -> None:
    data = {**json.loads(entry_json(FULL)), "extra": 1}
    with pytest.raises(TypeError):
        entry_from_json(json.dumps(data))


def source(rel: str) -> SourceFile:
    return SourceFile(path=f"/articles/{rel}", rel=rel, mtime_ns=7, size=10)


def test_whole_table_reads_give_what_the_rows_hold(state_url: str, tmp_path: Path) -> None:
    where = location(state_url, tmp_path)
    entries = [FULL, entry("bare"), entry("naïve ünïcode")]
    with open_store(where) as store:
        store.save_cache([(source(e.source), e, f"<p>{e.slug}</p>") for e in entries], "fp")
        store.save_related_lists({"full": ("k", [("bare", 0.5, "words"), ("x", 1.0, "source reference")])},
                                 {"full"})
        store.record(entries, NOW, SITE)
    with open_store(where, write=False) as store:
        assert store.cached("fp") == {e.source: (7, 10, e) for e in entries}
        assert store.related_lists() == {"full": ("k", [("bare", 0.5, "words"), ("x", 1.0, "source reference")])}
        known = store.articles()
        assert set(known.rows) == {e.slug for e in entries}
        assert sorted(slug for slug, _ in known.ids().values()) == sorted(e.slug for e in entries)


def test_record_with_the_callers_read_gives_what_record_alone_gives(state_url: str, tmp_path: Path) -> None:
    """Every branch of `record`: new, unchanged, edited (updated set), dated and undated, and an edit back."""
    later = NOW + timedelta(days=1)
    first = [entry("same"), entry("edited"), entry("dated"), entry("gone")]
    second = [entry("same"), entry("edited", "h2"), entry("dated", date=datetime(2026, 1, 1, tzinfo=UTC)),
              entry("new", guid="urn:given"),
              entry("stamped", updated=datetime(2026, 11, 1, tzinfo=UTC))]
    results = []
    for mode in ("alone", "known"):
        where = location(state_url, tmp_path / mode)
        (tmp_path / mode).mkdir()
        with open_store(where) as store:
            store.record([*first, entry("stamped")], NOW, SITE)
        with open_store(where) as store:
            known = store.articles() if mode == "known" else None
            identities, refused = store.record(second, later, SITE, known=known)
        with open_store(where, write=False) as store:
            rows = {slug: row[1:] for slug, row in store.articles().rows.items()}
        results.append((identities, refused, rows))
    alone, with_known = results
    assert alone == with_known
    identities, refused, rows = alone
    assert refused == {}
    assert identities["same"].updated is None and identities["edited"].updated == later
    assert identities["dated"].published == datetime(2026, 1, 1, tzinfo=UTC)
    assert identities["new"].id == "urn:given" and identities["new"].first_seen == later
    assert identities["stamped"].updated == datetime(2026, 11, 1, tzinfo=UTC)
    assert rows["edited"][4] == later.isoformat() and rows["same"][4] is None


def test_an_unchanged_article_is_not_written_again(state_url: str, tmp_path: Path) -> None:
    where = location(state_url, tmp_path)
    with open_store(where) as store:
        store.record([entry("a"), entry("b")], NOW, SITE)
    statements: list[str] = []
    with open_store(where) as store:
        sa.event.listen(store.conn, "before_cursor_execute",
                        lambda *args: statements.append(args[2]))
        store.record([entry("a"), entry("b", "h2")], NOW + timedelta(hours=1), SITE, known=store.articles())
    writes = [s for s in statements if s.lstrip().upper().startswith(("UPDATE", "INSERT"))]
    assert len(writes) == 1 and "UPDATE articles" in writes[0]


def test_a_database_error_in_a_read_is_sqlalchemys(state_url: str, tmp_path: Path) -> None:
    where = location(state_url, tmp_path)
    with open_store(where) as store:
        missing = sa.table("no_such_table", sa.column("x"))
        with pytest.raises(sa.exc.DBAPIError) as raised:
            fetch_all(store.conn, sa.select(missing.c.x))
        assert "no_such_table" in str(raised.value)
        with pytest.raises(ValueError, match="plain binds only"):  # an expanding IN is not rendered here
            fetch_all(store.conn, sa.select(missing.c.x).where(missing.c.x.in_([1, 2])))
        store.trans.rollback()
        store.trans = store.conn.begin()
