"""WebSub end to end: a subscriber registered at a hub (tests/websubhub.py, on 127.0.0.1) receives the new
Atom feed after a publish, once, signed; a publish that changed nothing delivers nothing. The site's
site.url is a real `publisher serve`, so the hub fetches the feed from it; the CLI runs in subprocesses."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import feedparser
import pytest

from tests.conftest import CLOCK, EXAMPLE_ARTICLES, SEED, SITE_TOML
from tests.mailserver import free_port
from tests.serving import serve
from tests.websubhub import WebSubHub, signature

SECOND = sorted(EXAMPLE_ARTICLES.glob("*.txt"))[1]
SECRET = "a shared secret"


@dataclass
class Subscriber:
    """A WebSub subscriber's callback on 127.0.0.1: echoes the challenge for the topics it wants, records
    every content distribution (headers, body)."""

    topics: set[str]
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        subscriber = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                wanted = query.get("hub.topic") in subscriber.topics and query.get("hub.mode") == "subscribe"
                body = query.get("hub.challenge", "").encode() if wanted else b""
                self.send_response(200 if wanted else 404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                subscriber.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/callback"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hub() -> Iterator[WebSubHub]:
    server = WebSubHub()
    yield server
    server.close()


def publish(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PUBLISHER_WEBSUB_TIMEOUT": "5"}
    return subprocess.run([sys.executable, "-m", "publisher", "publish", "--clock", CLOCK, "--no-send"],
                          cwd=root, capture_output=True, text=True, timeout=120, env=env)


def subscribe(hub: WebSubHub, topic: str, callback: str, secret: str) -> None:
    form = urllib.parse.urlencode({"hub.mode": "subscribe", "hub.topic": topic, "hub.callback": callback,
                                   "hub.secret": secret}).encode()
    with urllib.request.urlopen(urllib.request.Request(hub.url, data=form), timeout=5) as response:
        assert response.status == 202
    assert hub.idle() and hub.subscribed(topic, callback), hub.log.failures


def test_a_subscriber_gets_the_new_feed_once_after_a_publish(tmp_path: Path, hub: WebSubHub) -> None:
    root, port = tmp_path / "site", free_port()
    (root / "articles").mkdir(parents=True)
    shutil.copy(SEED, root / "articles" / SEED.name)
    site_url = f"http://127.0.0.1:{port}/"
    config = SITE_TOML.replace('url = "https://example.com/"', f'url = "{site_url}"')
    (root / "publisher.toml").write_text(config + f'[feeds]\nhubs = ["{hub.url}"]\n', encoding="utf-8")
    first = publish(root)
    assert first.returncode == 0 and "WebSub" not in first.stderr, first.stderr
    topic = site_url + "atom.xml"
    subscriber = Subscriber({topic})
    try:
        with serve(root, port):
            assert hub.idle() and hub.log.delivered == [], "nobody had subscribed yet"
            assert len(hub.log.pings) == 3, hub.log.pings
            hub.log.pings.clear()
            subscribe(hub, topic, subscriber.url, SECRET)
            shutil.copy(SECOND, root / "articles" / SECOND.name)
            started = time.monotonic()
            second = publish(root)
            assert second.returncode == 0 and "WebSub" not in second.stderr, second.stderr
            assert hub.idle(), "the hub did not finish distributing"
            took = time.monotonic() - started
            assert hub.log.failures == [] and len(subscriber.received) == 1, (hub.log, subscriber.received)
            headers, body = subscriber.received[0]
            assert headers["x-hub-signature"] == signature(SECRET, body)
            assert headers["content-type"].split(";")[0] == "application/atom+xml"
            assert headers["link"] == f'<{hub.url}>; rel="hub", <{topic}>; rel="self"'
            assert body == (root / "feeds" / "atom.xml").read_bytes()
            parsed = feedparser.parse(body)
            assert parsed.bozo == 0, parsed.get("bozo_exception")
            title = SECOND.read_text(encoding="utf-8").strip().splitlines()[0].strip()
            assert [e.title for e in parsed.entries].count(title) == 1, [e.title for e in parsed.entries]
            assert sorted(hub.log.pings) == sorted(site_url + n for n in ("rss.xml", "atom.xml", "feed.json"))
            hub.log.pings.clear()
            third = publish(root)
            assert third.returncode == 0 and hub.idle(), third.stderr
            assert hub.log.pings == [] and len(subscriber.received) == 1, "a no-op publish delivered again"
    finally:
        subscriber.close()
    print(f"publish to delivered: {took:.2f} s")
