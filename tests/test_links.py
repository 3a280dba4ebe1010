"""Every link lands somewhere: the example site is published (one subscriber, outbox transport), served by
a real `publisher serve` on 127.0.0.1, and crawled with httpx. Every link of the three feeds (their items,
their related reading), every href of the delivered digest's HTML part, of the home page and of each
article page that points under site.url must answer 200 (at most one redirect followed)."""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import feedparser
import httpx

from tests.conftest import EXAMPLE_ARTICLES, REPO, run_cli
from tests.mailcheck import strict_parts
from tests.serving import serve

SITE_URL = "https://example.com/"  # the example site's site.url (publisher.toml)
CLOCK = "2026-11-29T08:00:00Z"  # as .ci/run publishes it
READER = "reader@example.org"
FEEDS = ("rss.xml", "atom.xml")


class Hrefs(HTMLParser):
    """Every href of an HTML document (a, link, area, base: any tag that has one)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found += [value for name, value in attrs if name == "href" and value]


def hrefs(html: str, base: str) -> list[str]:
    parser = Hrefs()
    parser.feed(html)
    parser.close()
    return [urljoin(base, href) for href in parser.found]


def ours(urls: list[str]) -> list[str]:
    """The links that point under site.url (originals elsewhere, mailto: and the like are not ours)."""
    return [url for url in urls if url.startswith(SITE_URL)]


def example_site(root: Path, *site_keys: str) -> None:
    """A copy of the example site, as .ci/run makes it: articles, publisher.toml (with `site_keys` added
    to its [site] table) and templates."""
    shutil.copytree(EXAMPLE_ARTICLES, root / "articles")
    shutil.copytree(REPO / "templates", root / "templates")
    config = (REPO / "publisher.toml").read_text(encoding="utf-8")
    assert f'url = "{SITE_URL}"' in config, "the example site's site.url changed: update SITE_URL"
    config = config.replace("[site]\n", "[site]\n" + "".join(f"{key}\n" for key in site_keys), 1)
    (root / "publisher.toml").write_text(config, encoding="utf-8")
    run_cli("subscribers", "add", READER, "--name", "Ada Lovelace", cwd=root, check=True)
    run_cli("publish", "--clock", CLOCK, cwd=root, check=True)


class Crawler:
    """Fetches site.url links from the server (site.url's prefix swapped for the server's) and keeps
    every answer; a redirect is followed once, and must stay on the site."""

    def __init__(self, client: httpx.Client, base: str) -> None:
        self.client, self.base = client, base
        self.status: dict[str, int] = {}
        self.pages: dict[str, str] = {}

    def local(self, url: str) -> str:
        return self.base + url.removeprefix(SITE_URL)

    def get(self, url: str) -> int:
        if url not in self.status:
            response = self.client.get(self.local(url.split("#", 1)[0]))
            if response.is_redirect:
                target = urljoin(str(response.url), response.headers["location"])
                assert target.startswith(self.base), f"{url} redirects off the site, to {target}"
                response = self.client.get(target)
            self.status[url] = response.status_code
            if response.status_code == 200 and response.headers["content-type"].startswith("text/html"):
                self.pages[url] = response.text
        return self.status[url]

    def broken(self, urls: list[str]) -> dict[str, int]:
        return {url: status for url in sorted(set(urls)) if (status := self.get(url)) != 200}


def feed_links(output: Path) -> tuple[list[str], list[str], list[str]]:
    """(the item links of RSS, Atom and JSON Feed; every feed-level link; the hrefs in the items' HTML,
    the related reading among them)."""
    items: list[str] = []
    feed_level: list[str] = []
    inside: list[str] = []
    for name in FEEDS:
        parsed = feedparser.parse((output / name).read_bytes())
        assert parsed.bozo == 0, (name, parsed.get("bozo_exception"))
        feed_level += [link.href for link in parsed.feed.get("links", [])]
        for entry in parsed.entries:
            items += [entry.link, *(link.href for link in entry.get("links", []))]
            inside += [href for content in entry.get("content", []) for href in hrefs(content.value, entry.link)]
    data = json.loads((output / "feed.json").read_text(encoding="utf-8"))
    feed_level += [data["home_page_url"], data["feed_url"]]
    for item in data["items"]:
        items.append(item["url"])
        inside += hrefs(item.get("content_html", ""), item["url"])
    return items, feed_level, inside


def digest_html(root: Path) -> str:
    """The HTML part of the one digest delivered to the outbox, decoded strictly."""
    (message,) = sorted((root / "outbox").rglob("*.eml"))
    return strict_parts(message.read_bytes())["html"]


def test_every_link_of_the_feeds_the_digest_the_home_page_and_the_article_pages_answers_200(tmp_path: Path) -> None:
    root = tmp_path / "example"
    example_site(root)
    items, feed_level, inside = feed_links(root / "feeds")
    assert items and len(set(items)) >= 3, f"the example site publishes several articles: {items}"
    assert set(items) <= set(ours(items)), "the example's articles have no original elsewhere"
    related = [url for url in ours(inside) if url in set(items)]
    assert related, "the feeds carry related-reading links to other articles"
    digest = ours(hrefs(digest_html(root), SITE_URL))
    unsubscribe = [url for url in digest if urlsplit(url).path == "/unsubscribe"]
    assert len(unsubscribe) == 1 and "token=" in unsubscribe[0], digest
    with serve(root) as base, httpx.Client(follow_redirects=False, timeout=10) as client:
        crawler = Crawler(client, base)
        assert crawler.broken(items) == {}, "feed items that lead nowhere"
        assert crawler.broken(ours(feed_level)) == {}, "feed-level links that lead nowhere"
        assert crawler.broken(ours(inside)) == {}, "links inside feed items (related reading) that lead nowhere"
        assert crawler.broken(digest) == {}, "digest links that lead nowhere"
        assert crawler.get(SITE_URL) == 200, "the home page"
        home = ours(hrefs(crawler.pages[SITE_URL], SITE_URL))
        assert SITE_URL + "subscribe" in home and set(items) & set(home), home
        assert crawler.broken(home) == {}, "home page links that lead nowhere"
        for url in sorted(set(items)):
            page = ours(hrefs(crawler.pages[url], url))
            assert url in page, f"{url}: the page links to itself (canonical)"
            assert crawler.broken(page) == {}, f"links of the page {url} that lead nowhere"
    assert "unsubscribe" in crawler.pages[unsubscribe[0]].lower(), "the unsubscribe link shows its page"


def test_with_pages_off_the_crawl_finds_every_article_link_broken(tmp_path: Path) -> None:
    """The crawl above can fail: with `site.pages = false` nothing answers at the articles' URLs (their
    pages are the operator's blog's), and exactly those links are reported."""
    root = tmp_path / "example"
    example_site(root, "pages = false")
    items, _, inside = feed_links(root / "feeds")
    assert not list((root / "feeds").glob("*/index.html")), "no article page is written"
    with serve(root) as base, httpx.Client(follow_redirects=False, timeout=10) as client:
        crawler = Crawler(client, base)
        assert crawler.broken(items) == dict.fromkeys(sorted(set(items)), 404)
        assert set(crawler.broken(ours(inside))) <= set(items)
        assert set(crawler.broken(ours(hrefs(digest_html(root), SITE_URL)))) == set(items)
