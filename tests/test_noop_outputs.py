"""A publish run with nothing changed is skipped (memo.first_look), and only then: an output file deleted,
changed in size, or changed in place with the same size (the feeds and the digest: by sha256) makes the
next run a full one, which writes the same bytes again; a FIFO in place of a feed is not waited for. Real
sites, a real SQLite state."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from publisher.config import Settings, load_settings
from publisher.load import EXTENSIONS, scan_checked
from publisher.memo import first_look
from publisher.pipeline import publish
from tests.conftest import CLOCK, Site

NOW = datetime.fromisoformat(CLOCK.replace("Z", "+00:00"))


@pytest.fixture
def published(site: Site) -> tuple[Site, Settings, dict[str, bytes]]:
    for n in range(3):
        site.write(f"post{n}.md", f"---\ntitle: Post {n}\ndate: 2026-11-2{n}T10:00:00Z\n---\nText {n}.\n")
    settings = load_settings(site.root / "publisher.toml", site.root)
    report = publish(settings, NOW)
    assert not report.errors and report.written
    return site, settings, site.feed_bytes()


def test_a_run_with_nothing_changed_gives_the_last_report_and_writes_nothing(
        published: tuple[Site, Settings, dict[str, bytes]]) -> None:
    site, settings, before = published
    look = first_look(settings, NOW, check=True)
    assert look.same is not None and look.saved is not None
    assert look.scanned == scan_checked(settings.paths.articles, EXTENSIONS)
    assert sorted(look.same.unchanged) == sorted(before) and look.same.written == ()
    again = publish(settings, NOW)
    assert again == look.same and site.feed_bytes() == before


def test_a_dry_run_or_a_forced_one_never_takes_the_last_report(
        published: tuple[Site, Settings, dict[str, bytes]]) -> None:
    _, settings, _ = published
    look = first_look(settings, NOW, check=False)
    assert look.saved is None and look.same is None and not look.checked


def _delete(path: Path) -> None:
    path.unlink()


def _grow(path: Path) -> None:
    path.write_bytes(path.read_bytes() + b"\n")


def _same_size(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:-2] + (b"!!" if data[-2:] != b"!!" else b"??"))


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


CHANGES: dict[str, tuple[str, Callable[[Path], None]]] = {
    "page deleted": ("post1/index.html", _delete),
    "page grown": ("post2/index.html", _grow),
    "feed edited, same size": ("rss.xml", _same_size),
    "digest edited, same size": ("digests/latest.txt", _same_size),
    "feed deleted": ("feed.json", _delete),
}


@pytest.mark.parametrize("change", CHANGES)
def test_a_changed_output_makes_a_full_run_that_writes_it_again(
        published: tuple[Site, Settings, dict[str, bytes]], change: str) -> None:
    site, settings, before = published
    name, damage = CHANGES[change]
    damage(site.feeds / name)
    assert first_look(settings, NOW, check=True).same is None
    report = publish(settings, NOW)
    assert name in report.written
    assert site.feed_bytes() == before


def test_a_fifo_in_place_of_a_feed_is_not_waited_for(published: tuple[Site, Settings, dict[str, bytes]]) -> None:
    site, settings, _ = published
    _fifo(site.feeds / "atom.xml")  # opening it to read would wait for a writer that never comes
    assert first_look(settings, NOW, check=True).same is None
    report = publish(settings, NOW)  # the full run replaces it (write compares without blocking too)
    assert "atom.xml" in report.written and (site.feeds / "atom.xml").is_file()


def test_a_feed_replaced_by_a_link_leading_out_is_not_read(
        published: tuple[Site, Settings, dict[str, bytes]], tmp_path: Path) -> None:
    """The same bytes outside, linked in place of atom.xml: the no-op check does not read through the link
    (it is not a skipped run), and the full run refuses to write through it, naming it."""
    site, settings, before = published
    outside = tmp_path / "outside.xml"
    outside.write_bytes(before["atom.xml"])
    (site.feeds / "atom.xml").unlink()
    (site.feeds / "atom.xml").symlink_to(outside)
    assert first_look(settings, NOW, check=True).same is None
    result = site.publish()
    assert result.returncode != 0 and "atom.xml" in result.stderr and "outside the output folder" in result.stderr
    assert outside.read_bytes() == before["atom.xml"]


def test_no_output_folder_makes_a_full_run(published: tuple[Site, Settings, dict[str, bytes]]) -> None:
    site, settings, before = published
    for path in sorted(site.feeds.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    site.feeds.rmdir()
    assert first_look(settings, NOW, check=True).same is None
    publish(settings, NOW)
    assert site.feed_bytes() == before


def test_a_changed_article_makes_a_full_run(published: tuple[Site, Settings, dict[str, bytes]]) -> None:
    site, settings, before = published
    site.write("post0.md", "---\ntitle: Post 0, revised\ndate: 2026-11-20T10:00:00Z\n---\nText 0.\n")
    assert first_look(settings, NOW, check=True).same is None
    report = publish(settings, NOW)
    assert "post0/index.html" in report.written and site.feed_bytes() != before
