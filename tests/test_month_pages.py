"""The earlier pages of a month (archive/YYYY-MM/page/N/), made by `publisher.outputs.home.home_made`
from a real state file: every article on exactly one page, full pages counted from the month's oldest
that stay as written while newer articles arrive, links between them, and pages removed when a month
shrinks. PAGE is made small here (3) so that a few articles make several pages."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import lxml.html
import pytest

from publisher import pool
from publisher.config import load_settings
from publisher.outputs import Made, home
from publisher.pipeline import prepare
from publisher.render.archive import render_month_page
from publisher.store import open_store
from publisher.write import write_outputs
from tests.conftest import Site
from tests.test_home import URL, card_links, now_of

CLOCK = "2026-11-30T12:00:00Z"


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(home, "PAGE", 3)


def _write(site: Site, days: range) -> None:
    for day in days:
        site.write(f"n{day:02}.md", f"---\ntitle: News of day {day}\ndate: 2026-11-{day:02}T10:00:00Z\n"
                                    f"summary: Day {day}.\n---\nText.\n")


def _made(site: Site, clock: str = CLOCK, *, record: bool = True) -> Made:
    """home_made() for the site, its files written (and its staged pages put in place) as publish would."""
    settings = load_settings(site.root / "publisher.toml", site.root)
    with open_store(settings.paths.state) as store:
        made = home.home_made(prepare(settings, store, now_of(clock)).archive, record=record)
    write_outputs(settings.paths.output, made.files, made.staged)
    return made


def _page(site: Site, name: str) -> lxml.html.HtmlElement:
    return lxml.html.fromstring((site.feeds / name).read_bytes())


def _days(site: Site, name: str) -> list[int]:
    return [int(link.rstrip("/").removeprefix(f"{URL}n")) for link in card_links(_page(site, name))]


def test_split_month_puts_every_article_on_exactly_one_page(small_pages: None) -> None:
    for size in range(12):
        slugs = [f"s{n}" for n in range(size, 0, -1)]  # newest first
        head, earlier = home.split_month("2026-11", slugs)
        assert Counter([*head, *(s for _, page in earlier for s in page)]) == Counter(slugs)
        assert all(len(page) == 3 for _, page in earlier), "earlier pages are full"
        assert len(head) == size if size < 3 else 3 <= len(head) <= 5
        assert [p.number for p, _ in earlier] == list(range(1, len(earlier) + 1))
        assert [s for _, page in earlier for s in reversed(page)] == slugs[::-1][:3 * len(earlier)], "oldest first"


def test_a_big_month_has_earlier_pages_linked_both_ways(site: Site, small_pages: None) -> None:
    site.configure("[feeds]\nlimit = 2")
    _write(site, range(1, 11))  # 10 articles in November: pages 1 (days 1-3), 2 (4-6), the month's page 7-10
    made = _made(site)
    month = "archive/2026-11/"
    assert sorted(n for n in [*made.files, *made.written] if n.startswith("archive/")) == [
        f"{month}index.html", f"{month}page/1/index.html", f"{month}page/2/index.html"]
    assert _days(site, f"{month}index.html") == [10, 9, 8, 7]
    assert _days(site, f"{month}page/2/index.html") == [6, 5, 4]
    assert _days(site, f"{month}page/1/index.html") == [3, 2, 1]
    own = _page(site, f"{month}index.html")
    assert [a.get("href") for a in own.xpath("//nav[@class='pages']//a")] == [
        f"{URL}{month}page/2/", f"{URL}{month}page/1/"]
    second = _page(site, f"{month}page/2/index.html")
    assert second.xpath("//title")[0].text_content() == "November 2026, page 2 · Test Site"
    assert second.xpath("//link[@rel='canonical']")[0].get("href") == f"{URL}{month}page/2/"
    assert [(a.get("rel"), a.get("href")) for a in second.xpath("//nav[@class='pager']//a")] == [
        ("prev", f"{URL}{month}page/1/"), ("next", f"{URL}{month}")]
    first = _page(site, f"{month}page/1/index.html")
    assert [(a.get("rel"), a.get("href")) for a in first.xpath("//nav[@class='pager']//a")] == [
        ("next", f"{URL}{month}page/2/")], "no older month: no older link"


def test_a_new_article_leaves_the_earlier_pages_as_written(site: Site, small_pages: None,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    site.configure("[feeds]\nlimit = 2")
    _write(site, range(1, 11))
    _made(site)
    before = site.feed_bytes()
    rendered: list[int] = []

    def count(*args: object) -> bytes:
        rendered.append(args[3].number)  # type: ignore[attr-defined]
        return render_month_page(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(home, "render_month_page", count)
    _write(site, range(11, 12))  # 11 articles: the month's page shows 7-11, still two earlier pages
    made = _made(site, "2026-11-30T13:00:00Z")
    assert rendered == [] and sorted(made.kept) == ["archive/2026-11/page/1/index.html",
                                                    "archive/2026-11/page/2/index.html"]
    _write(site, range(12, 13))  # 12: a third earlier page (7-9); page 2 now leads to it
    made = _made(site, "2026-11-30T14:00:00Z")
    assert sorted(rendered) == [2, 3] and made.gone == []
    after = site.feed_bytes()
    assert after["archive/2026-11/page/1/index.html"] == before["archive/2026-11/page/1/index.html"]
    assert _days(site, "archive/2026-11/index.html") == [12, 11, 10]


def test_earlier_pages_of_a_month_that_shrank_are_gone(site: Site, small_pages: None) -> None:
    site.configure("[feeds]\nlimit = 2")
    _write(site, range(1, 11))
    _made(site)
    for day in range(1, 5):
        (site.articles / f"n{day:02}.md").unlink()  # 6 left: page 1 (days 5-7), the month's page 8-10
    made = _made(site, "2026-11-30T13:00:00Z")
    assert made.gone == ["archive/2026-11/page/2/index.html"]
    assert _days(site, "archive/2026-11/page/1/index.html") == [7, 6, 5]


def test_a_dry_run_records_nothing(site: Site, small_pages: None) -> None:
    site.configure("[feeds]\nlimit = 2")
    _write(site, range(1, 11))
    made = _made(site, record=False)
    assert made.staged == [] and "archive/2026-11/page/1/index.html" in made.written
    settings = load_settings(site.root / "publisher.toml", site.root)
    with open_store(settings.paths.state) as store:
        assert store.meta_get(home.MONTH_PAGES_ROW) is None


def test_earlier_pages_rendered_in_workers_are_the_bytes_rendered_here(
        tmp_path: Path, small_pages: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """From PARALLEL_PAGES pages on, the earlier pages are rendered and staged in worker processes."""
    outputs = []
    for parallel_from, name in ((10**6, "here"), (1, "workers")):
        monkeypatch.setattr(pool, "PARALLEL_PAGES", parallel_from)
        site = Site(tmp_path / name)
        site.configure("[feeds]\nlimit = 2")
        _write(site, range(1, 29))  # 28 articles: 8 earlier pages of 3
        made = _made(site)
        assert len([n for n in made.written if "/page/" in n]) == 8
        outputs.append(site.feed_bytes())
    assert outputs[0] == outputs[1]
