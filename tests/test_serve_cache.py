"""`publisher serve` caching: a final RFC 5005 archive page is immutable, the documents that change (the
subscription documents, tag feeds, the newest archive page) get a short max-age and keep their ETag and
304, pages keep `no-cache`; the top-level feeds carry WebSub's Link headers when hubs are set. A real
`publisher serve` subprocess on 127.0.0.1 over a published site; archive and tag files are written into
the output folder directly (their rendering is tested elsewhere)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import CLOCK, SEED, SITE_TOML, run_cli
from tests.serving import serve

IMMUTABLE = "public, max-age=31536000, immutable"
SHORT = "public, max-age=300, s-maxage=0"
FEEDS = {"rss.xml": "application/rss+xml", "atom.xml": "application/atom+xml", "feed.json": "application/feed+json"}
HUBS = ("https://hub.example/", "https://hub2.example/websub")
PAGES = 3  # archive pages written: 1 and 2 are final, 3 is the newest


def published(root: Path, hubs: tuple[str, ...] = ()) -> Path:
    """The seed site published, then its archive pages and a tag's feeds written by hand; `hubs` are set
    after the publish (nothing pings them). The output folder."""
    (root / "articles").mkdir(parents=True)
    shutil.copy(SEED, root / "articles" / SEED.name)
    (root / "publisher.toml").write_text(SITE_TOML, encoding="utf-8")
    run_cli("publish", "--clock", CLOCK, "--no-send", cwd=root, check=True)
    if hubs:
        (root / "publisher.toml").write_text(SITE_TOML + "[feeds]\nhubs = [" + ", ".join(f'"{h}"' for h in hubs)
                                             + "]\n", encoding="utf-8")
    out = root / "feeds"
    for folder in [f"feed-archive/{n}" for n in range(1, PAGES + 1)] + ["tags/ukraine", "tags/peace-talks"]:
        (out / folder).mkdir(parents=True)
        for name in FEEDS:
            (out / folder / name).write_bytes((out / name).read_bytes() + folder.encode())
    return out


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    out = published(tmp_path_factory.mktemp("cache") / "site", HUBS)
    with serve(out.parent) as base:
        yield out, base


def test_final_archive_pages_are_immutable_the_newest_is_short(site: tuple[Path, str]) -> None:
    out, base = site
    for name, media in FEEDS.items():
        for page, expected in ((1, IMMUTABLE), (2, IMMUTABLE), (PAGES, SHORT)):
            response = httpx.get(f"{base}feed-archive/{page}/{name}")
            assert response.status_code == 200, (page, name)
            assert response.headers["cache-control"] == expected, (page, name)
            assert response.headers["content-type"].split(";")[0] == media
            assert response.content == (out / f"feed-archive/{page}/{name}").read_bytes()
            assert "link" not in response.headers, "an archive page is no WebSub topic"


def test_subscription_documents_are_short_with_etag_304_and_head(site: tuple[Path, str]) -> None:
    _, base = site
    paths = [*FEEDS, *(f"tags/ukraine/{n}" for n in FEEDS), f"feed-archive/{PAGES}/atom.xml",
             "feed-archive/1/atom.xml"]
    with httpx.Client(base_url=base) as client:
        for path in paths:
            first = client.get(path)
            assert first.status_code == 200, path
            expected = IMMUTABLE if path.startswith("feed-archive/1/") else SHORT
            assert first.headers["cache-control"] == expected, path
            etag = first.headers["etag"]
            again = client.get(path, headers={"If-None-Match": etag})
            assert again.status_code == 304 and again.content == b"", path
            assert again.headers["etag"] == etag and again.headers["cache-control"] == expected, path
            head = client.head(path)
            assert head.status_code == 200 and head.content == b"", path
            assert head.headers["etag"] == etag and head.headers["cache-control"] == expected, path
            assert client.head(path, headers={"If-None-Match": etag}).status_code == 304, path
            assert client.get(path, headers={"If-None-Match": '"other"'}).status_code == 200, path


def test_pages_and_digests_keep_no_cache(site: tuple[Path, str]) -> None:
    out, base = site
    pages = ["", "index.html", "digests/latest.html", "digests/latest.txt"]
    pages += [p.parent.relative_to(out).as_posix() + "/" for p in out.glob("*/index.html")]
    assert len(pages) > 4, "the seed article's page is missing"
    for path in pages:
        response = httpx.get(base + path)
        assert response.status_code == 200, path
        assert response.headers["cache-control"] == "no-cache", path
        assert "link" not in response.headers, path


def test_the_feeds_name_their_hubs_and_themselves_in_link_headers(site: tuple[Path, str]) -> None:
    _, base = site
    for path in [*FEEDS, *(f"tags/peace-talks/{n}" for n in FEEDS)]:
        for response in (httpx.get(base + path), httpx.head(base + path)):
            assert response.headers["link"] == (", ".join(f'<{h}>; rel="hub"' for h in HUBS)
                                                 + f', <https://example.com/{path}>; rel="self"'), path


def test_what_is_not_an_archive_page_or_a_feed_is_not_served(site: tuple[Path, str]) -> None:
    out, base = site
    (out / "feed-archive/01").mkdir()
    (out / "feed-archive/01/atom.xml").write_bytes(b"x")
    (out / "feed-archive/1/notes.txt").write_text("x", encoding="utf-8")
    (out / "tags/ukraine/notes.txt").write_text("x", encoding="utf-8")
    for path in ("feed-archive/01/atom.xml", "feed-archive/x/atom.xml", "feed-archive/1/notes.txt",
                 "feed-archive/1/", "feed-archive/", "tags/ukraine/notes.txt", "tags/", "tags/ukraine/",
                 f"feed-archive/{PAGES + 1}/atom.xml", "feed-archive/1/2/atom.xml", "tags/a/b/atom.xml",
                 "feed-archive/%2e%2e/atom.xml", "tags/..%2f..%2fpublisher.toml/atom.xml"):
        assert httpx.get(base + path).status_code == 404, path


def test_the_newest_page_becomes_immutable_once_a_newer_one_exists(tmp_path: Path) -> None:
    out = published(tmp_path / "site")
    with serve(out.parent) as base:
        newest = f"{base}feed-archive/{PAGES}/rss.xml"
        assert httpx.get(newest).headers["cache-control"] == SHORT
        (out / f"feed-archive/{PAGES + 1}").mkdir()
        assert httpx.get(newest).headers["cache-control"] == IMMUTABLE
        assert httpx.get(f"{base}feed-archive/{PAGES + 1}/rss.xml").status_code == 404  # a folder, no file yet
        for name in FEEDS:
            assert "link" not in httpx.get(base + name).headers, "no hubs, no Link header"
