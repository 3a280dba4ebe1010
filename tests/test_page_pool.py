"""Article pages rendered and staged in worker processes (publisher.pool.map_pages, chunks of
pages.CHUNK): the same bytes as rendered in this process, no temporary file left behind, a dry run that
writes nothing; an article whose page fails is reported and the others are written; a site template that
fails keeps every old page, with one report and no debris."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from publisher import pool
from publisher.config import load_settings
from publisher.models import PublishReport
from publisher.outputs import pages
from publisher.pipeline import publish
from tests.conftest import Site

COUNT = 12
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def make(root: Path) -> Site:
    site = Site(root)
    for n in range(COUNT):
        site.write(f"p{n:02}.md", f"---\ntitle: Page {n}\ndate: 2026-11-{1 + n:02}T10:00:00Z\n---\nText {n}.\n")
    return site


def publish_here(site: Site, *, workers: bool, dry_run: bool = False) -> PublishReport:
    """One publish in this process; with `workers`, the pages in worker processes (chunks of 2)."""
    with pytest.MonkeyPatch.context() as patch:
        if workers:
            patch.setattr(pages, "CHUNK", 2)
            patch.setattr(pool, "PARALLEL_PAGES", 1)
        patch.chdir(site.root)
        return publish(load_settings(site.root / "publisher.toml", site.root), NOW, dry_run=dry_run)


def test_pages_from_workers_are_the_pages_made_here(tmp_path: Path) -> None:
    here, workers = make(tmp_path / "here"), make(tmp_path / "workers")
    publish_here(here, workers=False)
    publish_here(workers, workers=True)
    assert workers.feed_bytes() == here.feed_bytes()
    assert len([n for n in here.feed_bytes() if n.endswith("/index.html") and n.startswith("p")]) == COUNT


def test_no_temporary_file_is_left_and_a_dry_run_writes_nothing(tmp_path: Path) -> None:
    site = make(tmp_path / "site")
    publish_here(site, workers=True)
    assert list(site.feeds.rglob(".*")) == []
    before = site.feed_bytes()
    site.write("p00.md", "---\ntitle: Page 0, edited\ndate: 2026-11-01T10:00:00Z\n---\nText 0, edited.\n")
    report = publish_here(site, workers=True, dry_run=True)
    assert site.feed_bytes() == before
    assert "p00/index.html" in report.written


def test_a_broken_article_template_keeps_every_old_page(tmp_path: Path) -> None:
    """The template fails on one page: the pages staged before it and the ones rendered after it are
    discarded alike."""
    site = make(tmp_path / "site")
    publish_here(site, workers=True)
    before = site.feed_bytes()
    for n in range(COUNT):  # every page to render again
        site.write(f"p{n:02}.md", f"---\ntitle: Page {n} again\ndate: 2026-11-{1 + n:02}T10:00:00Z\n---\nMore.\n")
    (site.root / "templates").mkdir()
    (site.root / "templates" / "article.html.j2").write_text(  # fails on the 10th of 12 pages only
        '{% if article.title == "Page 9 again" %}{{ no_such_variable.x }}{% endif %}{{ article.title }}\n',
        encoding="utf-8")
    report = publish_here(site, workers=True)
    problems = [p for p in report.problems if p.path == "article.html.j2"]
    assert len(problems) == 1 and "no article page written" in problems[0].message
    after = site.feed_bytes()
    assert {n: b for n, b in after.items() if n.startswith("p")} == {n: b for n, b in before.items()
                                                                       if n.startswith("p")}
    assert list(site.feeds.rglob(".*")) == []
