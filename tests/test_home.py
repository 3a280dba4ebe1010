"""The home page (index.html) and the monthly archive pages, made by `publisher.outputs.home.home_files`
from a real state file: what they show, the links they hold, the archive past `feeds.limit`, memos and
determinism."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import lxml.html
import pytest

from publisher.config import load_settings
from publisher.outputs import Made, home
from publisher.pipeline import prepare, publish
from publisher.render.archive import Month
from publisher.store import open_store
from publisher.write import write_outputs
from tests.conftest import CLOCK, Site

URL = "https://example.com/"
# (slug, title, date in front matter): 7 articles over three months of Europe/Berlin. "autumn" is dated
# 30 September 23:30 UTC, which is 1 October in Berlin: it belongs to October's page.
ARTICLES = [
    ("first-frost", "First frost", "2026-09-03T10:00:00Z"),
    ("harvest", "Harvest notes", "2026-09-20T10:00:00Z"),
    ("autumn", "Autumn begins", "2026-09-30T23:30:00Z"),
    ("leaves", "Falling leaves", "2026-10-15T10:00:00Z"),
    ("storm", "The storm", "2026-11-02T10:00:00Z"),
    ("market", "Market day", "2026-11-10T10:00:00Z"),
    ("lights", "Winter lights", "2026-11-20T10:00:00Z"),
]


def now_of(clock: str) -> datetime:
    return datetime.fromisoformat(clock.replace("Z", "+00:00"))


def build_home(root: Path, clock: str = CLOCK, *, record: bool = True) -> dict[str, bytes]:
    """home_files() for the site at `root` (identities recorded in its state file), written to its output."""
    settings = load_settings(root / "publisher.toml", root)
    with open_store(settings.paths.state) as store:
        files = home.home_files(prepare(settings, store, now_of(clock)).archive, record=record)
    write_outputs(settings.paths.output, files)
    return files


def write_articles(site: Site, articles: list[tuple[str, str, str]] = ARTICLES) -> None:
    for slug, title, date in articles:
        image = f"image: /images/{slug}.jpg\n" if slug in ("lights", "storm") else ""
        site.write(f"{slug}.md", f"---\ntitle: {title}\ndate: {date}\nsummary: About {title.lower()} & more.\n"
                                 f"{image}---\nThe text of {title}.\n")


def page(data: bytes) -> lxml.html.HtmlElement:
    return lxml.html.document_fromstring(data)


def card_links(doc: lxml.html.HtmlElement) -> list[str]:
    return [str(a.get("href")) for a in doc.xpath("//li[@class='card']//*[self::h2 or self::h3]/a")]


@pytest.fixture
def berlin(site: Site) -> Site:
    toml = site.root / "publisher.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace('timezone = "UTC"', 'timezone = "Europe/Berlin"'),
                    encoding="utf-8")
    write_articles(site)
    return site


def test_home_lists_the_newest_articles_with_summary_date_image_and_link(berlin: Site) -> None:
    files = build_home(berlin.root)
    assert sorted(files) == ["index.html"], "no archive pages while every article fits on the home page"
    doc = page(files["index.html"])
    assert doc.xpath("//main//h1")[0].text_content() == "Test Site"
    assert "A site made by the tests" in doc.xpath("//*[@class='tagline']")[0].text_content()
    newest_first = [slug for slug, _, _ in reversed(ARTICLES)]
    assert card_links(doc) == [f"{URL}{slug}/" for slug in newest_first]
    first = doc.xpath("//li[@class='card']")[0]
    assert first.xpath(".//h3")[0].text_content() == "Winter lights"
    assert first.xpath(".//time")[0].text_content() == "20 November 2026"
    assert first.xpath(".//time")[0].get("datetime") == "2026-11-20T11:00:00+01:00"
    assert "About winter lights & more." in first.text_content()
    image = first.xpath(".//img")[0]
    assert image.get("src") == f"{URL}images/lights.jpg" and image.get("loading") == "lazy"
    assert image.get("alt") == "", "decorative: the title beside it names the article"
    assert len(doc.xpath("//li[@class='card']//img")) == 2, "only the articles that have an image show one"
    assert not doc.xpath("//script") and b"javascript:" not in files["index.html"]


def test_home_has_a_subscribe_form_with_a_honeypot_and_no_javascript(berlin: Site) -> None:
    doc = page(build_home(berlin.root)["index.html"])
    [form] = doc.xpath("//form")
    assert form.get("method") == "post" and form.get("action") == f"{URL}subscribe"
    fields = {str(i.get("name")): i for i in form.xpath(".//input")}
    assert set(fields) == {"email", "website"}
    assert fields["email"].get("type") == "email" and fields["email"].get("required") is not None
    trap = fields["website"]
    assert trap.get("tabindex") == "-1" and trap.get("autocomplete") == "off"
    assert trap.getparent().get("aria-hidden") == "true", "screen readers never offer the trap"
    assert form.xpath(".//label[@for='email']") and form.xpath(".//button[@type='submit']")


@pytest.mark.parametrize("formats", [None, ["atom", "json"]])
def test_feeds_are_linked_and_autodiscovered(berlin: Site, formats: list[str] | None) -> None:
    if formats:
        berlin.configure(f"[feeds]\nformats = {formats!r}".replace("'", '"'))
    doc = page(build_home(berlin.root)["index.html"])
    expected = {"rss": ("application/rss+xml", "rss.xml"), "atom": ("application/atom+xml", "atom.xml"),
                "json": ("application/feed+json", "feed.json")}
    wanted = [expected[name] for name in formats or ["rss", "atom", "json"]]
    found = [(link.get("type"), link.get("href")) for link in doc.xpath("//head/link[@rel='alternate']")]
    assert found == [(media, URL + name) for media, name in wanted]
    beside_the_form = [a.get("href") for a in doc.xpath("//section[@class='signup']//a")]
    assert beside_the_form == [URL + name for _, name in wanted]
    assert doc.xpath("//head/link[@rel='canonical']")[0].get("href") == URL


def test_digests_are_listed_with_human_labels(berlin: Site) -> None:
    settings = load_settings(berlin.root / "publisher.toml", berlin.root)
    publish(settings, now_of("2026-11-21T08:00:00Z"))
    berlin.write("snow.md", "---\ntitle: First snow\ndate: 2026-11-22T10:00:00Z\n---\nIt snowed.\n")
    publish(settings, now_of("2026-11-23T08:00:00Z"))
    doc = page(build_home(berlin.root, "2026-11-23T08:00:00Z")["index.html"])
    items = [li.text_content() for li in doc.xpath("//*[@class='digests']/li")]
    assert items == ["23 November 2026: First snow", "21 November 2026: Winter lights and 6 more"]
    hrefs = [a.get("href") for a in doc.xpath("//*[@class='digests']//a")]
    assert hrefs == ["digests/2026-11-23.html", "digests/2026-11-21.html"]
    assert all((settings.paths.output / str(h)).is_file() for h in hrefs), "the links lead to the copies"


def test_past_the_limit_every_article_is_on_exactly_one_month_page(berlin: Site) -> None:
    berlin.configure("[feeds]\nlimit = 3")
    files = build_home(berlin.root)
    months = {"archive/2026-09/index.html", "archive/2026-10/index.html", "archive/2026-11/index.html"}
    assert set(files) == {"index.html", *months}
    doc = page(files["index.html"])
    assert card_links(doc) == [f"{URL}{slug}/" for slug in ("lights", "market", "storm")]
    older = doc.xpath("//section[@aria-labelledby='older-title']")[0]
    assert "Older articles" in older.text_content()
    assert [a.get("href") for a in older.xpath(".//a")] == ["archive/2026-11/", "archive/2026-10/",
                                                             "archive/2026-09/"]
    assert all((berlin.feeds / name).is_file() for name in months)
    listed = {name: card_links(page(files[name])) for name in months}
    assert Counter(link for links in listed.values() for link in links) == Counter(
        f"{URL}{slug}/" for slug, _, _ in ARTICLES), "every article exactly once"
    assert listed["archive/2026-10/index.html"] == [f"{URL}leaves/", f"{URL}autumn/"], "months in Berlin time"
    october = page(files["archive/2026-10/index.html"])
    assert october.xpath("//title")[0].text_content() == "October 2026 · Test Site"
    assert [(a.get("rel"), a.get("href")) for a in october.xpath("//nav[@class='pager']//a")] == [
        ("prev", f"{URL}archive/2026-09/"), ("next", f"{URL}archive/2026-11/")]
    assert october.xpath("//form")[0].get("action") == f"{URL}subscribe"


def test_same_inputs_same_bytes_and_an_unchanged_page_is_not_rendered_again(
        berlin: Site, make_site: Callable[[str], Site], monkeypatch: pytest.MonkeyPatch) -> None:
    berlin.configure("[feeds]\nlimit = 3")
    first = build_home(berlin.root)
    twin = make_site("twin")
    (twin.root / "publisher.toml").write_text((berlin.root / "publisher.toml").read_text(encoding="utf-8"),
                                              encoding="utf-8")
    write_articles(twin)
    assert build_home(twin.root, record=False) == first, "another state, same articles: the same bytes"

    def refuse(*args: object) -> bytes:
        raise AssertionError("rendered again although nothing it shows changed")

    monkeypatch.setattr(home, "render_home", refuse)
    monkeypatch.setattr(home, "render_month", refuse)
    assert build_home(berlin.root, "2026-11-26T12:00:00Z") == first
    rendered: list[str] = []

    def count(settings: object, templates: object, month: Month, *rest: object) -> bytes:
        rendered.append(month.key)
        return b"month"

    monkeypatch.setattr(home, "render_month", count)
    berlin.write("harvest.md", "---\ntitle: Harvest notes, revised\ndate: 2026-09-20T10:00:00Z\n---\nText.\n")
    files = build_home(berlin.root)
    assert rendered == ["2026-09"], "only the month that shows the edited article"
    assert files["index.html"] == first["index.html"]


def test_publish_writes_the_home_and_archive_pages(berlin: Site) -> None:
    berlin.configure("[feeds]\nlimit = 3")
    result = berlin.publish()
    assert result.returncode == 0, result.stderr
    on_disk = {name: data for name, data in berlin.feed_bytes().items()
               if name == "index.html" or name.startswith("archive/")}
    assert on_disk == build_home(berlin.root, record=False)
    assert len(on_disk) == 4


def test_archive_pages_no_longer_made_are_gone(berlin: Site) -> None:
    berlin.configure("[feeds]\nlimit = 3")
    settings = load_settings(berlin.root / "publisher.toml", berlin.root)

    def made(clock: str) -> Made:
        with open_store(settings.paths.state) as store:
            return home.home_made(prepare(settings, store, now_of(clock)).archive, record=True)

    first = made(CLOCK)
    assert first.gone == [] and len(first.files) == 4
    for slug in ("leaves", "autumn"):
        (berlin.articles / f"{slug}.md").unlink()  # October's articles (in Berlin time)
    second = made("2026-11-25T13:00:00Z")
    assert second.gone == ["archive/2026-10/index.html"]
    assert "archive/2026-10/" not in second.files["index.html"].decode()
    for slug in ("first-frost", "harvest"):
        (berlin.articles / f"{slug}.md").unlink()  # three left: they all fit on the home page
    third = made("2026-11-25T14:00:00Z")
    assert third.gone == ["archive/2026-09/index.html", "archive/2026-11/index.html"]
    assert sorted(third.files) == ["index.html"]
    assert made("2026-11-25T15:00:00Z").gone == [], "removed once"
