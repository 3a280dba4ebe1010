"""Archive pages rendered in worker processes (publisher.pool) are the bytes rendered in this process; the
pool keeps the order of its calls, takes them lazily (a bounded number in flight) and raises a call's
error; the JSON Feed's indentation is json.dumps's, character for character."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from publisher import pipeline, pool
from publisher.config import load_settings
from publisher.pool import ordered_map
from tests.conftest import Site
from tests.test_feed_archive import FEEDS, write_article

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def published(root: Path, parallel_from: int, monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """A site of 260 articles (limit 50, pages of 100, and 10-article pages to make more of them)
    published in this process with the archive pages in worker processes from `parallel_from` pages."""
    site = Site(root)
    site.configure(FEEDS.replace("archive_page = 100", "archive_page = 10"))
    for n in range(260):
        write_article(site, n)
    monkeypatch.setattr(pool, "PARALLEL_PAGES", parallel_from)
    monkeypatch.chdir(root)
    pipeline.publish(load_settings(root / "publisher.toml", root), NOW)
    return site.feed_bytes()


def test_archive_pages_rendered_in_workers_are_the_bytes_rendered_here(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    here = published(tmp_path / "here", 10**6, monkeypatch)
    workers = published(tmp_path / "workers", 1, monkeypatch)
    assert len([n for n in here if n.startswith("feed-archive/")]) == 3 * 22
    assert workers == here


def test_ordered_map_keeps_the_order_and_takes_calls_lazily() -> None:
    taken: list[int] = []

    def calls() -> Iterator[tuple[int]]:
        for n in range(-20, 0):
            taken.append(n)
            yield (n,)

    results = ordered_map(abs, calls(), workers=2, window=3)
    assert next(results) == 20
    assert len(taken) == 3  # the first result comes when the window is full, not after every call
    assert list(results) == list(range(19, 0, -1))


def test_ordered_map_raises_the_error_of_a_call() -> None:
    results = ordered_map(int, [("1",), ("x",), ("3",)], workers=2, window=2)
    assert next(results) == 1
    with pytest.raises(ValueError, match="'x'"):
        next(results)


def test_pages_staged_in_workers_leave_no_temporary_file_and_a_dry_run_writes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers stage (or, in a dry run, only compare) the pages they render: after a publish no dot-file
    is left; a dry run of the same site changed since writes nothing and names the pages it would write."""
    root = tmp_path / "site"
    published(root, 1, monkeypatch)
    output = root / "feeds"
    assert [p for p in output.rglob(".*")] == []
    before = {p: p.read_bytes() for p in output.rglob("*") if p.is_file()}
    write_article(Site(root), 260)
    report = pipeline.publish(load_settings(root / "publisher.toml", root), NOW, dry_run=True)
    assert {p: p.read_bytes() for p in output.rglob("*") if p.is_file()} == before
    assert any(name.startswith("feed-archive/") for name in report.written)
