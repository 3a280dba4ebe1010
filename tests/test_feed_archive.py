"""RFC 5005 archived feeds, through real publish runs of the CLI on a real SQLite state: the chain from the
subscription documents reaches every published article exactly once (Atom, RSS, and JSON Feed's next_url),
a full page's bytes never change when articles arrive, an edit or a deletion rewrites only the page that
held the article, a no-op publish writes nothing, and a new page size pages everything again (the
documents no longer made are removed)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import feedparser
import pytest
from lxml import etree

from publisher.outputs.feed_archive import ROW, append
from publisher.store import open_store
from tests.conftest import Site, run_cli
from tests.test_feed_validity import feed_errors

URL = "https://example.com/"
FH = "{http://purl.org/syndication/history/1.0}archive"
DOCS = ("rss.xml", "atom.xml", "feed.json")
FEEDS = "[feeds]\nlimit = 50\narchive_page = 100\n"
CLOCK0 = "2026-11-25T12:00:00Z"


def article_text(n: int, body: str = "") -> str:
    """Article n, dated n days after 2025-01-01, with words of its own (so no related reading links it to
    another: a page's neighbours never change because of it)."""
    month, day = divmod(n, 28)
    words = " ".join(f"w{n}x{k}" for k in range(12))
    return (f"---\ntitle: Article {n}\ndate: {2025 + month // 12}-{month % 12 + 1:02}-{day + 1:02}T08:00:00Z\n"
            f"summary: About article {n}.\n---\nThe words {words}.{body}\n")


def write_article(site: Site, n: int, body: str = "") -> None:
    site.write(f"a{n:03}.md", article_text(n, body))


def publish(site: Site, clock: str = CLOCK0, *args: str) -> str:
    result = site.publish(*args, clock=clock)
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def feed_files(site: Site) -> dict[str, bytes]:
    """The subscription and archive documents (name -> bytes)."""
    return {n: b for n, b in site.feed_bytes().items() if n in DOCS or n.startswith("feed-archive/")}


def changed(before: dict[str, bytes], after: dict[str, bytes]) -> set[str]:
    """Names added, removed or with other bytes."""
    return {n for n in before.keys() | after.keys() if before.get(n) != after.get(n)}


def page_docs(*numbers: int) -> set[str]:
    return {f"feed-archive/{n}/{doc}" for n in numbers for doc in DOCS}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site of 260 articles (limit 50, pages of 100) published once; each test works on a copy."""
    site = Site(tmp_path_factory.mktemp("archive") / "site")
    site.configure(FEEDS)
    for n in range(260):
        write_article(site, n)
    publish(site)
    return site.root


@pytest.fixture
def chain_site(built: Path, tmp_path: Path) -> Site:
    root = tmp_path / "site"
    shutil.copytree(built, root)  # copy2: the articles keep their mtimes, so the state's cache still holds
    toml = (built / "publisher.toml").read_text(encoding="utf-8")
    site = Site(root)
    (root / "publisher.toml").write_text(toml, encoding="utf-8")
    return site


def local(site: Site, url: str) -> Path:
    assert url.startswith(URL), url
    return site.feeds / urlsplit(url).path.lstrip("/")


def follow(site: Site, doc: str) -> list[list[str]]:
    """The ids of each document of one format's chain, from the subscription document back through
    prev-archive (JSON: next_url); every document read by feedparser (bozo 0) and free of the validator's
    known errors, every archive document with fh:archive and its current and next-archive links."""
    pages: list[list[str]] = []
    url: str | None = URL + doc
    newer: str | None = None
    while url is not None:
        here, data = url, local(site, url).read_bytes()
        assert feed_errors(doc, data) == [], here
        if doc == "feed.json":
            feed = json.loads(data)
            pages.append([item["id"] for item in feed["items"]])
            url = feed.get("next_url")
            continue
        parsed = feedparser.parse(data)
        assert parsed.bozo == 0, (here, parsed.get("bozo_exception"))
        pages.append([e.id for e in parsed.entries])
        links = {link.rel: link.href for link in parsed.feed.links}
        url = links.get("prev-archive")
        archive = len(pages) > 1
        assert len(list(etree.fromstring(data).iter(FH))) == int(archive), f"{here}: fh:archive in archives only"
        if archive:
            assert links["current"] == URL + doc and links.get("next-archive") == newer, here
        newer = here if archive else None
    return pages


def titles(site: Site, name: str) -> list[str]:
    return [item["title"] for item in json.loads((site.feeds / name).read_bytes())["items"]]


def all_ids(pages: list[list[str]]) -> list[str]:
    return [i for page in pages for i in page]


@pytest.mark.parametrize("doc", DOCS)
def test_the_chain_reaches_every_article_exactly_once(chain_site: Site, doc: str) -> None:
    pages = follow(chain_site, doc)
    assert [len(p) for p in pages] == [50, 10, 100, 100], "subscription, then archive pages newest first"
    ids = all_ids(pages)
    assert len(ids) == len(set(ids)) == 260
    assert titles(chain_site, "feed.json") == [f"Article {n}" for n in range(259, 209, -1)], "the newest 50"
    assert titles(chain_site, "feed-archive/1/feed.json") == [f"Article {n}" for n in range(100)], (
        "page 1 holds the oldest 100, oldest first")
    assert sorted(n for n in feed_files(chain_site) if n.startswith("feed-archive/")) == sorted(page_docs(1, 2, 3))


def test_a_new_article_changes_only_the_subscription_documents_and_the_newest_page(chain_site: Site) -> None:
    before = chain_site.feed_bytes()
    write_article(chain_site, 260)
    publish(chain_site, "2026-11-26T12:00:00Z")
    after = chain_site.feed_bytes()
    feeds = changed(feed_files_of(before), feed_files_of(after))
    assert feeds == set(DOCS) | page_docs(3), "the oldest subscription item moved to the partial page 3"
    others = changed(before, after) - feeds
    assert others and not any(n.endswith((".xml", ".json")) for n in others), others  # home page, digest...
    assert titles(chain_site, "feed-archive/3/feed.json") == [f"Article {n}" for n in range(200, 211)]
    assert len(set(all_ids(follow(chain_site, "atom.xml")))) == 261


def feed_files_of(files: dict[str, bytes]) -> dict[str, bytes]:
    return {n: b for n, b in files.items() if n in DOCS or n.startswith("feed-archive/")}


def test_an_edit_or_a_deletion_rewrites_only_the_page_that_held_the_article(chain_site: Site) -> None:
    before = feed_files(chain_site)
    write_article(chain_site, 0, " An edit of the oldest article.")
    publish(chain_site, "2026-11-26T12:00:00Z")
    edited = feed_files(chain_site)
    assert changed(before, edited) == page_docs(1)
    assert b"An edit of the oldest article." in edited["feed-archive/1/atom.xml"]
    (chain_site.articles / "a150.md").unlink()
    publish(chain_site, "2026-11-27T12:00:00Z")
    deleted = feed_files(chain_site)
    assert changed(edited, deleted) == page_docs(2)
    assert "Article 150" not in titles(chain_site, "feed-archive/2/feed.json")
    assert len(titles(chain_site, "feed-archive/2/feed.json")) == 99, "the page keeps its place, one item less"
    for doc in DOCS:
        ids = all_ids(follow(chain_site, doc))
        assert len(ids) == len(set(ids)) == 259


def test_a_page_that_fills_gets_its_next_link_and_never_changes_again(chain_site: Site) -> None:
    for n in range(260, 350):  # 90 new articles push 90 subscription items onto page 3 (10 + 90 = 100)
        write_article(chain_site, n)
    publish(chain_site, "2026-11-26T12:00:00Z")
    full = feed_files(chain_site)
    assert titles(chain_site, "feed-archive/3/feed.json") == [f"Article {n}" for n in range(200, 300)]
    assert b'href="https://example.com/feed-archive/4/atom.xml" rel="next-archive"' in full["feed-archive/3/atom.xml"]
    assert titles(chain_site, "feed-archive/4/feed.json") == [], "an empty newest page follows the full one"
    assert [len(p) for p in follow(chain_site, "rss.xml")] == [50, 0, 100, 100, 100]
    full_pages = {n: b for n, b in full.items() if n in page_docs(1, 2, 3)}
    last = full
    for n, clock in ((350, "2026-11-27T12:00:00Z"), (351, "2026-11-28T12:00:00Z")):
        write_article(chain_site, n)
        publish(chain_site, clock)
        now = feed_files(chain_site)
        assert changed(last, now) == set(DOCS) | page_docs(4), "pages 1-3 are full: their bytes stay"
        assert {n: now[n] for n in full_pages} == full_pages
        last = now
    assert titles(chain_site, "feed-archive/4/feed.json") == ["Article 300", "Article 301"]


def test_a_publish_with_nothing_new_writes_nothing(chain_site: Site) -> None:
    before = chain_site.feed_bytes()
    assert "files written: 0," in publish(chain_site)
    for path in chain_site.articles.iterdir():  # every article read again: a full run, same inputs
        path.touch()
    out = run_verbose(chain_site)
    assert "feed archive: 3 pages, 0 documents rendered, 9 unchanged, 0 to remove" in out
    assert feed_files(chain_site) == feed_files_of(before)


def run_verbose(site: Site) -> str:
    result = run_cli("-v", "publish", "--clock", CLOCK0, cwd=site.root)
    assert result.returncode == 0, result.stderr
    return result.stderr


def test_a_new_page_size_pages_every_article_again_and_removes_the_pages_no_longer_made(chain_site: Site) -> None:
    toml = chain_site.root / "publisher.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace("archive_page = 100", "archive_page = 150"),
                    encoding="utf-8")
    publish(chain_site)
    assert sorted(n for n in feed_files(chain_site) if n.startswith("feed-archive/")) == sorted(page_docs(1, 2))
    assert not (chain_site.feeds / "feed-archive" / "3").exists(), "the folder left empty is removed"
    for doc in DOCS:
        pages = follow(chain_site, doc)
        assert [len(p) for p in pages] == [50, 60, 150]
        assert len(set(all_ids(pages))) == 260
    toml.write_text(toml.read_text(encoding="utf-8").replace("limit = 50", 'limit = 50\nformats = ["atom"]'),
                    encoding="utf-8")
    publish(chain_site)
    assert sorted(n for n in feed_files(chain_site) if n.startswith("feed-archive/")) == [
        "feed-archive/1/atom.xml", "feed-archive/2/atom.xml"], "a format no longer configured: its pages go"


def test_an_unreadable_assignment_pages_every_article_again(chain_site: Site) -> None:
    before = feed_files(chain_site)
    with open_store(chain_site.state) as store:
        store.meta_put(ROW, '{"limit": 50, "page": "a hundred"}')
    (chain_site.articles / "a000.md").touch()  # a full run (not the no-op one)
    out = run_verbose(chain_site)
    assert "page assignment is unreadable; paging every article again" in out
    assert feed_files(chain_site) == before, "the same articles paged again: the same documents"


@pytest.mark.parametrize(("pages", "ids", "size", "expected"), [
    ([], [], 3, []),
    ([], ["a", "b"], 3, [["a", "b"]]),
    ([], ["a", "b", "c"], 3, [["a", "b", "c"], []]),
    ([["a", "b", "c"], ["d"]], ["e", "f", "g", "h"], 3, [["a", "b", "c"], ["d", "e", "f"], ["g", "h"]]),
    ([["a"], []], ["b"], 3, [["a"], ["b"]]),  # a page emptied by deletions stays; only the last one grows
])
def test_append_fills_the_last_page_and_keeps_a_partial_one_last(pages: list[list[str]], ids: list[str],
                                                                  size: int, expected: list[list[str]]) -> None:
    append(pages, ids, size)
    assert pages == expected


def test_archive_items_carry_no_related_reading(site: Site) -> None:
    """Related reading ranks may change with any new article: a full page must not depend on them."""
    site.configure("[feeds]\nlimit = 2\narchive_page = 2\n")
    for n in range(5):
        site.write(f"t{n}.md", f"---\ntitle: Tagged {n}\ndate: 2026-11-0{n + 1}\ntags: [same]\n---\nText {n}.\n")
    publish(site)
    files = feed_files(site)
    assert sorted(files) == sorted(set(DOCS) | page_docs(1, 2))
    assert all(b"Related reading" in files[doc] for doc in DOCS)
    assert not any(b"Related reading" in data for name, data in files.items() if name.startswith("feed-archive/"))
    assert titles(site, "feed-archive/1/feed.json") == ["Tagged 0", "Tagged 1"]
    assert titles(site, "feed-archive/2/feed.json") == ["Tagged 2"]
