"""WebSub: the feeds name their hubs, and a publish that changed a feed pings each hub (a real HTTP hub on
127.0.0.1, the real CLI in a subprocess)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import feedparser
import pytest

from tests.conftest import CLOCK, EXAMPLE_ARTICLES, Site, run_cli

FEEDS = ("rss.xml", "atom.xml", "feed.json")
SECOND = sorted(EXAMPLE_ARTICLES.glob("*.txt"))[1]


class Hub:
    """A hub's publisher-facing side: records each POSTed form; answers `status`, after `delay` seconds."""

    def __init__(self, status: int = 204, delay: float = 0.0) -> None:
        self.status, self.delay = status, delay
        self.pings: list[dict[str, list[str]]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(length).decode("ascii"))
                hub.pings.append({**form, "content-type": [self.headers.get("Content-Type", "")]})
                time.sleep(hub.delay)
                self.send_response(hub.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hub"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def fed(self) -> list[str]:
        """The hub.url of each ping, in order (after checking the mode)."""
        assert all(p["hub.mode"] == ["publish"] for p in self.pings), self.pings
        assert all(p["content-type"] == ["application/x-www-form-urlencoded"] for p in self.pings)
        return [p["hub.url"][0] for p in self.pings]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hub() -> Iterator[Hub]:
    server = Hub()
    yield server
    server.close()


def publish(site: Site, *args: str, timeout: str = "5") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PUBLISHER_WEBSUB_TIMEOUT": timeout}
    return subprocess.run([sys.executable, "-m", "publisher", "publish", "--clock", CLOCK, "--no-send", *args],
                          cwd=site.root, capture_output=True, text=True, timeout=120, env=env)


def with_hubs(site: Site, *hubs: str) -> Site:
    site.configure("[feeds]\nhubs = [" + ", ".join(json.dumps(h) for h in hubs) + "]")
    return site


def feed_urls(names: tuple[str, ...] = FEEDS) -> list[str]:
    return ["https://example.com/" + name for name in names]


def test_feeds_link_their_hubs_and_themselves(seed_site: Site, hub: Hub) -> None:
    with_hubs(seed_site, hub.url, "https://hub.example/")
    assert publish(seed_site).returncode == 0
    for name in ("rss.xml", "atom.xml"):
        parsed = feedparser.parse((seed_site.feeds / name).read_bytes())
        assert parsed.bozo == 0, parsed.get("bozo_exception")
        links = [(link.rel, link.href) for link in parsed.feed.links]
        assert [h for rel, h in links if rel == "hub"] == [hub.url, "https://hub.example/"], name
        assert ("self", "https://example.com/" + name) in links, name
    feed = json.loads((seed_site.feeds / "feed.json").read_bytes())
    assert feed["hubs"] == [{"type": "WebSub", "url": hub.url}, {"type": "WebSub", "url": "https://hub.example/"}]
    assert feed["feed_url"] == "https://example.com/feed.json"


def test_no_hubs_no_hub_links(seed_site: Site) -> None:
    assert publish(seed_site).returncode == 0
    for name in ("rss.xml", "atom.xml"):
        assert b'rel="hub"' not in (seed_site.feeds / name).read_bytes()
    assert "hubs" not in json.loads((seed_site.feeds / "feed.json").read_bytes())


def test_one_ping_per_changed_feed_none_on_a_no_op(seed_site: Site, hub: Hub) -> None:
    with_hubs(seed_site, hub.url)
    first = publish(seed_site)
    assert first.returncode == 0, first.stderr
    assert sorted(hub.fed()) == sorted(feed_urls())
    hub.pings.clear()
    again = publish(seed_site)
    assert again.returncode == 0, again.stderr
    assert hub.pings == [], "a publish that changed no feed pinged the hub"
    shutil.copy(SECOND, seed_site.articles / SECOND.name)
    dry = publish(seed_site, "--dry-run")
    assert dry.returncode == 0 and hub.pings == [], "a dry run pinged the hub"
    assert publish(seed_site).returncode == 0
    assert sorted(hub.fed()) == sorted(feed_urls())


def test_only_the_configured_feeds_are_pinged(seed_site: Site, hub: Hub) -> None:
    seed_site.configure(f'[feeds]\nformats = ["atom"]\nhubs = ["{hub.url}"]')
    assert publish(seed_site).returncode == 0
    assert hub.fed() == feed_urls(("atom.xml",))


@pytest.mark.parametrize(("status", "delay", "error"), [(500, 0.0, "HTTP 500"), (204, 2.0, "timed out")])
def test_a_failing_hub_is_a_warning_never_a_failed_publish(seed_site: Site, hub: Hub, status: int, delay: float,
                                                           error: str) -> None:
    good = Hub()
    try:
        hub.status, hub.delay = status, delay
        seed_site.configure(f'[feeds]\nformats = ["atom"]\nhubs = ["{hub.url}", "{good.url}"]')
        result = publish(seed_site, timeout="0.3")
        assert result.returncode == 0, result.stderr
        warnings = [line for line in result.stderr.splitlines() if "WebSub" in line]
        assert len(warnings) == 1, result.stderr
        assert warnings[0].startswith("warning: ") and hub.url in warnings[0] and error in warnings[0]
        assert "https://example.com/atom.xml" in warnings[0] and "Traceback" not in result.stderr
        assert len(hub.pings) == 3, "1 try + 2 retries"
        assert good.fed() == feed_urls(("atom.xml",)), "one failing hub stopped the others"
        assert (seed_site.feeds / "atom.xml").is_file()
    finally:
        good.close()


def test_a_refused_hub_is_a_warning(seed_site: Site) -> None:
    closed = Hub()
    closed.close()  # nothing listens on that port any more
    seed_site.configure(f'[feeds]\nformats = ["json"]\nhubs = ["{closed.url}"]')
    result = publish(seed_site, timeout="0.3")
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stderr.splitlines() if "WebSub" in line] == [
        line for line in result.stderr.splitlines() if closed.url in line and "feed.json" in line]
    assert closed.url in result.stderr


@pytest.mark.parametrize("hubs", ['["ftp://hub.example/"]', '["https://u:pw@hub.example/"]', '["not a url"]',
                                  '"https://hub.example/"', "[3]"])
def test_bad_hubs_are_one_line_errors(seed_site: Site, hubs: str) -> None:
    seed_site.configure(f"[feeds]\nhubs = {hubs}")
    result = run_cli("check", cwd=seed_site.root)
    assert result.returncode == 2, result.stderr
    assert "hubs" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2, result.stderr
