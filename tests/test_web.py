"""`publisher serve`: the app under a real uvicorn server on 127.0.0.1, driven by httpx, raw http.client
requests, a real SMTP server (aiosmtpd) and Debian's Chromium (Playwright, no browser download). The tests of
the served site run on both engines: its state in an SQLite file, and in a PostgreSQL database (several
servers on one PostgreSQL state: tests/test_web_cluster.py).

Feeds are served with their media types, strong ETags, 304s and gzip, and nothing outside the output
folder; subscribing is double opt-in and answers the same page for every address; links are signed
and expire; unsubscribing works with one click (RFC 8058) and from the page's one button.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from playwright.sync_api import expect, sync_playwright

from publisher.config import Settings, load_settings
from publisher.web import WebOptions, create_app
from publisher.web.signed import confirm_token
from tests.conftest import CLOCK, SEED, run_cli
from tests.mailserver import Collector, free_port, smtp_server
from tests.pgserver import PgServer
from tests.serving import wait_until_up
from tests.test_digest_browser import ARGS, CHROMIUM

LIMIT = WebOptions().subscribe_limit
HTML = "text/html; charset=utf-8"
CONFIG = """\
[site]
title = "Web Test Site"
url = "http://127.0.0.1:{port}/"
description = "A site served by the tests"
timezone = "UTC"

[email]
from = "Web Test <news@example.com>"
transport = "smtp"

[email.smtp]
host = "127.0.0.1"
port = {smtp}
security = "none"
timeout = 5
"""


@contextmanager
def uvicorn_server(app: Any, port: int) -> Iterator[str]:
    """A real uvicorn server in a thread on 127.0.0.1:port; stopped (and joined) at the end."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(10)


@dataclass
class Web:
    root: Path
    url: str
    settings: Settings
    mail: Collector

    def client(self, client_ip: str = "192.0.2.1") -> httpx.Client:
        """An HTTP client; uvicorn trusts X-Forwarded-For from 127.0.0.1, so each test can be its own client."""
        return httpx.Client(base_url=self.url, headers={"X-Forwarded-For": client_ip}, timeout=10)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, cwd=self.root)

    def statuses(self) -> dict[str, str]:
        listed = self.cli("subscribers", "list", "--json")
        return {row["email"]: row["status"] for row in map(json.loads, listed.stdout.splitlines())}

    def messages(self, address: str, count: int = 1, timeout: float = 10) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while len(found := self.mail.parsed(address)) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(found) >= count, f"{count} message(s) for {address} expected, {len(found)} arrived"
        return found


@contextmanager
def web_site(root: Path, *, publish: bool, subscribers: tuple[str, ...] = (),
             state: str | None = None) -> Iterator[Web]:
    """A site served by create_app under uvicorn; its state in `state` (a PostgreSQL URL) or publisher.db."""
    root.mkdir(parents=True)
    (root / "articles").mkdir()
    shutil.copy(SEED, root / "articles" / SEED.name)
    port = free_port()
    with smtp_server() as (collector, smtp_port):
        paths = f'\n[paths]\nstate = "{state}"\n' if state else ""
        (root / "publisher.toml").write_text(CONFIG.format(port=port, smtp=smtp_port) + paths, encoding="utf-8")
        for address in subscribers:
            run_cli("subscribers", "add", address, cwd=root, check=True)
        if publish:
            run_cli("publish", "--clock", CLOCK, cwd=root, check=True)
        settings = load_settings(root / "publisher.toml", root)
        with uvicorn_server(create_app(settings), port) as url:
            yield Web(root, url, settings, collector)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def web(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    """One published site (its digest delivered to two subscribers) served for the module, once with its state
    in an SQLite file and once in a PostgreSQL database."""
    root = tmp_path_factory.mktemp("web") / "site"
    state = None
    if request.param == "postgresql":
        server: PgServer = request.getfixturevalue("pg_server")
        state = server.new_database()
    with web_site(root, publish=True, subscribers=("oneclick@example.org", "button@example.org"),
                  state=state) as site:
        yield site
    if state:
        from publisher.state.engine import dispose_engines

        dispose_engines()


def subscribe(client: httpx.Client, address: str) -> httpx.Response:
    """POST the form as a browser does: no cookie and no token are needed (double opt-in protects the list)."""
    return client.post("subscribe", data={"email": address, "name": "", "website": ""})


def confirm_link(message: EmailMessage, base: str) -> str:
    text = message.get_content()
    found = re.search(re.escape(base) + r"confirm\?token=\S+", text)
    assert found is not None, text
    return found.group(0)


def unsubscribe_link(message: EmailMessage) -> str:
    found = re.search(r"<(http://[^>]+/unsubscribe\?token=[^>]+)>", message["List-Unsubscribe"])
    assert found is not None and message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    return found.group(1)


def friendly(response: httpx.Response, status: int, words: str) -> None:
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"] == HTML
    assert "<h1>" in response.text and words in response.text
    assert "Traceback" not in response.text and "Internal Server Error" not in response.text


# the output folder


FILES = {"rss.xml": "application/rss+xml", "atom.xml": "application/atom+xml", "feed.json": "application/feed+json",
         "index.html": HTML, "": HTML, "digests/latest.html": HTML,
         "digests/2026-11-25.txt": "text/plain; charset=utf-8"}


@pytest.mark.parametrize("path", list(FILES))
def test_files_have_their_media_type_a_strong_etag_and_answer_304(web: Web, path: str) -> None:
    plain = {"Accept-Encoding": "identity"}
    with web.client() as client:
        response = client.get(path, headers=plain)
        on_disk = web.settings.paths.output / (path or "index.html")
        assert response.status_code == 200 and response.headers["content-type"] == FILES[path]
        assert response.content == on_disk.read_bytes()
        etag, modified = response.headers["etag"], response.headers["last-modified"]
        assert re.fullmatch(r'"[0-9a-f]{16,}"', etag), "a strong ETag"
        assert parsedate_to_datetime(modified).timestamp() == int(on_disk.stat().st_mtime)
        for headers in ({"If-None-Match": etag}, {"If-None-Match": f'"x", W/{etag}'}, {"If-Modified-Since": modified}):
            again = client.get(path, headers={**plain, **headers})
            assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag, headers
        for headers in ({"If-None-Match": '"other"', "If-Modified-Since": modified},  # the ETag decides
                        {"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}):
            assert client.get(path, headers={**plain, **headers}).status_code == 200, headers
        head = client.head(path, headers=plain)
        assert head.status_code == 200 and head.content == b"" and head.headers["etag"] == etag
        assert head.headers["content-length"] == str(len(response.content))


def test_the_etag_follows_the_bytes_not_the_clock(web: Web) -> None:
    note = web.settings.paths.output / "digests" / "note.txt"
    note.write_text("one\n", encoding="utf-8")
    try:
        with web.client() as client:
            first = client.get("digests/note.txt").headers["etag"]
            os.utime(note, (time.time() + 60, time.time() + 60))
            touched = client.get("digests/note.txt", headers={"If-None-Match": first})
            assert touched.status_code == 304, "same bytes, same ETag, even with a new mtime"
            note.write_text("two\n", encoding="utf-8")
            changed = client.get("digests/note.txt", headers={"If-None-Match": first})
            assert changed.status_code == 200 and changed.text == "two\n" and changed.headers["etag"] != first
    finally:
        note.unlink()


def test_a_folder_url_serves_its_index_page_but_not_preview(web: Web) -> None:
    """Article pages live at <output>/<slug>/index.html and are linked as site.url + slug/."""
    output = web.settings.paths.output
    (output / "a-page").mkdir()
    (output / "a-page" / "index.html").write_text("<p>an article</p>", encoding="utf-8")
    (output / "preview").mkdir(exist_ok=True)
    (output / "preview" / "index.html").write_text("<p>not for readers</p>", encoding="utf-8")
    try:
        with web.client() as client:
            page = client.get("a-page/")
            assert page.status_code == 200 and page.headers["content-type"] == HTML
            assert page.text == "<p>an article</p>" and client.get("a-page/index.html").status_code == 200
            for refused in ("preview/", "preview/index.html", "a-page/other.html", "no-such-page/", ".a-page/"):
                assert client.get(refused).status_code == 404, refused
    finally:
        shutil.rmtree(output / "a-page")
        shutil.rmtree(output / "preview")


def test_gzip_when_asked_with_its_own_etag(web: Web) -> None:
    on_disk = (web.settings.paths.output / "rss.xml").read_bytes()
    with web.client() as client:
        plain = client.get("rss.xml", headers={"Accept-Encoding": "identity"})
        with client.stream("GET", "rss.xml", headers={"Accept-Encoding": "gzip"}) as zipped:
            raw = b"".join(zipped.iter_raw())
        assert zipped.headers["content-encoding"] == "gzip" and "Accept-Encoding" in zipped.headers["vary"]
        assert gzip.decompress(raw) == on_disk and len(raw) < len(on_disk) / 2
        assert zipped.headers["etag"] != plain.headers["etag"]
        again = client.get("rss.xml", headers={"Accept-Encoding": "gzip", "If-None-Match": zipped.headers["etag"]})
        assert again.status_code == 304
        refused = client.get("rss.xml", headers={"Accept-Encoding": "gzip;q=0, identity"})
        assert "content-encoding" not in refused.headers and refused.content == on_disk


def raw_get(url: str, target: str) -> tuple[int, bytes]:
    """GET with the request target sent exactly as written (httpx would normalise the dots away)."""
    host, port = url.removeprefix("http://").rstrip("/").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", target)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_no_path_escape_and_no_directory_listing(web: Web) -> None:
    output = web.settings.paths.output
    (web.root / "secret.txt").write_text("top secret\n", encoding="utf-8")
    (output / "digests" / "escape.html").symlink_to(web.root / "secret.txt")
    (output / "digests" / "inside.html").symlink_to(output / "digests" / "latest.html")
    (output / "preview").mkdir(exist_ok=True)
    (output / "preview" / "digest.html").write_text("<p>not yet sent</p>", encoding="utf-8")
    refused = ["/../publisher.toml", "/..%2fpublisher.toml", "/%2e%2e/publisher.toml", "/%2E%2E/%2E%2E/etc/passwd",
               "/digests/../../publisher.toml", "/digests/%2e%2e/%2e%2e/publisher.toml",
               "/digests/..%5c..%5csecret.txt",
               "/digests/..\\..\\secret.txt", "//etc/passwd", "/%2fetc%2fpasswd", "/digests/%2fetc%2fpasswd",
               "/digests/escape.html", "/digests/", "/digests", "/preview/digest.html", "/preview/", "/publisher.db",
               "/secret.txt", "/../secret.txt", "/.%2e/secret.txt", "/%00", "/rss.xml%00.html", "/digests/.x.html"]
    try:
        for target in refused:
            status, body = raw_get(web.url, target)
            assert status == 404, target
            assert b"top secret" not in body and b"[site]" not in body and b"root:" not in body, target
            assert b"<h1>Page not found</h1>" in body and b"latest.html" not in body, target
        assert raw_get(web.url, "/digests/inside.html")[0] == 200, "a symlink inside the folder is fine"
        with web.client() as client:
            assert client.post("rss.xml").status_code == 405
    finally:
        for name in ("escape.html", "inside.html"):
            (output / "digests" / name).unlink()
        shutil.rmtree(output / "preview")


# subscribing


def test_subscribe_confirm_by_email_and_the_subscriber_is_active(web: Web) -> None:
    address = "new.reader@example.org"
    with web.client("192.0.2.10") as client:
        answer = subscribe(client, address)
    friendly(answer, 200, "Check your inbox")
    assert web.statuses()[address] == "pending", "pending until confirmed"
    (message,) = web.messages(address)
    assert message["Subject"] == "Confirm your subscription to Web Test Site"
    assert message["To"].addresses[0].addr_spec == address and message["Auto-Submitted"] == "auto-generated"
    link = confirm_link(message, web.url)
    assert "48 hours" in message.get_content()
    friendly(httpx.get(link), 200, "You are subscribed")
    listed = web.cli("subscribers", "list", "--status", "active")
    assert re.search(rf"^{re.escape(address)}\s.*active", listed.stdout, re.M), listed.stdout
    friendly(httpx.get(link), 200, "You are already subscribed")


def test_the_answer_is_the_same_for_new_known_pending_and_unsubscribed_addresses(web: Web) -> None:
    known, gone, pending, new = (f"{who}@example.org" for who in ("known", "gone", "pending", "fresh"))
    web.cli("subscribers", "add", known)
    web.cli("subscribers", "add", gone)
    web.cli("subscribers", "remove", gone)
    answers = []
    with web.client("192.0.2.20") as client:
        subscribe(client, pending)
        for address in (new, known, pending, gone, new.upper()):
            response = subscribe(client, address)
            headers = sorted(k for k in response.headers if k not in ("date", "content-length"))
            body = re.sub(re.escape(address), "ADDRESS", response.text, flags=re.I)
            answers.append((response.status_code, headers, body))
    assert answers[0][0] == 200 and all(a == answers[0] for a in answers), "no way to learn who is subscribed"
    statuses = web.statuses()
    assert [statuses[a] for a in (known, gone, pending, new)] == ["active", "unsubscribed", "pending", "pending"]
    assert len(web.messages(pending, 2)) == 2 and len(web.messages(new, 2)) == 2
    assert web.mail.copies()[known] == 0, "an active subscriber gets no confirmation email"
    (comeback,) = web.messages(gone)
    friendly(httpx.get(confirm_link(comeback, web.url)), 200, "You are subscribed")
    assert web.statuses()[gone] == "active", "who unsubscribed comes back only through the emailed link"


def test_one_address_gets_a_few_confirmation_emails_at_most(web: Web) -> None:
    address = "victim@example.org"
    for n in range(6):
        with web.client(f"192.0.2.{100 + n}") as client:
            assert subscribe(client, address).status_code == 200
    time.sleep(0.5)
    assert web.mail.copies()[address] == WebOptions().emails_per_address


def test_form_mistakes_get_a_friendly_form_back(web: Web) -> None:
    with web.client("192.0.2.30") as client:
        bad = subscribe(client, "<script>alert(1)</script>")
        friendly(bad, 400, "Please enter an email address")
        assert 'role="alert"' in bad.text and 'aria-invalid="true"' in bad.text
        utf8 = subscribe(client, "δοκιμή@παράδειγμα.δοκιμή")  # needs SMTPUTF8, which this site does not enable
        friendly(utf8, 400, "non-ASCII characters before the @")
        assert "<script>alert" not in bad.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in bad.text
        too_big = client.post("subscribe", data={"email": "x@example.org", "name": "n" * 20_000})
        friendly(too_big, 413, "too much")
        multipart = client.post("subscribe", files={"email": (None, "multipart@example.org")})
        friendly(multipart, 415, "plain HTML form")
        form = client.get("subscribe")
        assert "set-cookie" not in form.headers and 'name="website"' in form.text, "no cookie; the honeypot"
    assert "x@example.org" not in web.statuses() and "multipart@example.org" not in web.statuses()
    assert not [a for a in web.statuses() if "@" in a and not a.isascii()], "no address we cannot send to"


def test_forged_altered_and_expired_links_are_refused(web: Web) -> None:
    address = "expiry@example.org"
    with web.client("192.0.2.40") as client:
        subscribe(client, address)
    link = confirm_link(web.messages(address)[0], web.url)
    subscriber_id, issued, expires, signature = link.split("token=")[1].split(".")
    oneclick = unsubscribe_link(web.messages("oneclick@example.org")[0])
    unsubscribe_token = oneclick.split("token=")[1]
    bad = [f"{'a' * 32}.{issued}.{expires}.{signature}",  # another subscriber
           f"{subscriber_id}.{issued}.{int(expires) + 86_400}.{signature}",  # a longer life
           f"{subscriber_id}.{issued}.{expires}.{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}",
           f"{subscriber_id}.{issued}.{expires}", unsubscribe_token, "", "é", "%00", "x" * 10_000,
           f"{subscriber_id}.{issued}.{expires}.{signature}.x"]
    for token in bad:
        friendly(httpx.get(web.url + "confirm", params={"token": token}), 400, "link does not work")
    friendly(httpx.get(web.url + "confirm"), 400, "link does not work")
    for token in (f"{subscriber_id}.{signature}", link.split("token=")[1], unsubscribe_token[:-2], "é.é", ""):
        friendly(httpx.get(web.url + "unsubscribe", params={"token": token}), 400, "link does not work")
        friendly(httpx.post(web.url + "unsubscribe", params={"token": token}), 400, "link does not work")
    port = free_port()
    later = datetime.now(UTC) + timedelta(hours=48, minutes=1)
    with uvicorn_server(create_app(web.settings, options=WebOptions(confirm_hours=1), clock=lambda: later),
                        port) as future:
        friendly(httpx.get(link.replace(web.url, future)), 410, "Confirmation links work for 1 hour. Subscribe")
    assert web.statuses()[address] == "pending" and web.statuses()["oneclick@example.org"] == "active"
    friendly(httpx.get(link), 200, "You are subscribed")


def test_the_confirmation_link_is_bound_to_its_site_key(web: Web) -> None:
    """A link signed for the same subscriber and times with another key is refused."""
    address = "key@example.org"
    with web.client("192.0.2.60") as client:
        subscribe(client, address)
    link = confirm_link(web.messages(address)[0], web.url)
    subscriber_id, issued, expires, _ = link.split("token=")[1].split(".")
    forged = confirm_token(hashlib.sha256(b"guess").digest(), "digest.127.0.0.1", subscriber_id, int(issued),
                           int(expires))
    friendly(httpx.get(web.url + "confirm", params={"token": forged}), 400, "link does not work")
    assert web.statuses()[address] == "pending"


def test_subscribe_attempts_are_limited_per_client(web: Web) -> None:
    with web.client("198.51.100.7") as client:
        codes = [subscribe(client, f"flood{n}@example.org") for n in range(100)]
    assert [r.status_code for r in codes] == [200] * LIMIT + [429] * (100 - LIMIT)
    friendly(codes[-1], 429, "Too many attempts")
    assert int(codes[-1].headers["retry-after"]) > 0
    statuses = web.statuses()
    assert sum(a.startswith("flood") for a in statuses) == LIMIT
    with web.client("198.51.100.8") as other:
        assert subscribe(other, "someone.else@example.org").status_code == 200, "other clients are not limited"


# unsubscribing


def test_one_click_unsubscribe_rfc8058_without_cookies_and_again(web: Web) -> None:
    (digest,) = web.messages("oneclick@example.org")
    url = unsubscribe_link(digest)
    assert url.startswith(web.url + "unsubscribe?token=")
    for _ in range(2):
        with httpx.Client(timeout=10) as mail_provider:  # no cookie, no form token: only the body RFC 8058 names
            response = mail_provider.post(url, content=b"List-Unsubscribe=One-Click",
                                          headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert response.status_code == 200 and "set-cookie" not in response.headers
        assert web.statuses()["oneclick@example.org"] == "unsubscribed"
    page = httpx.get(url)
    friendly(page, 200, "Unsubscribe")
    assert page.text.count("<button") == 1 and web.statuses()["oneclick@example.org"] == "unsubscribed"
    friendly(httpx.post(url, data={}), 200, "You are unsubscribed")


def test_get_does_not_unsubscribe(web: Web) -> None:
    (digest,) = web.messages("button@example.org")
    url = unsubscribe_link(digest)
    friendly(httpx.get(url), 200, "Stop getting")
    assert web.statuses()["button@example.org"] == "active", "link scanners fetch with GET: only a POST unsubscribes"


# the pages


VOID = {"meta", "link", "input", "br", "img", "hr", "source", "area", "base", "col", "embed", "wbr", "track"}


class Checker(HTMLParser):
    """Nesting, ids, labels, titles and feed links of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.ids: list[str] = []
        self.labels: set[str] = {"(in a label)"}  # an input inside its label needs no id
        self.inputs: list[str] = []
        self.feeds: list[str] = []
        self.count: dict[str, int] = {}
        self.lang = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.count[tag] = self.count.get(tag, 0) + 1
        self.ids += [a["id"] or ""] if "id" in a else []
        if tag == "html":
            self.lang = a.get("lang") or ""
        if tag == "label":
            self.labels.add(a.get("for") or "")
        if tag == "input" and a.get("type") != "hidden":
            self.inputs.append("(in a label)" if "label" in self.stack else a.get("id") or "")
        if tag == "link" and a.get("rel") == "alternate":
            self.feeds.append(a.get("type") or "")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.problems.append(f"unexpected </{tag}>")


def check_page(response: httpx.Response) -> None:
    text = response.text
    assert text.startswith("<!doctype html>\n")
    checker = Checker()
    checker.feed(text)
    checker.close()
    assert not checker.problems and not checker.stack, (checker.problems, checker.stack)
    assert checker.lang == "en" and checker.count["title"] == 1 and checker.count["h1"] == 1
    assert len(checker.ids) == len(set(checker.ids)), "ids are unique"
    assert all(i and i in checker.labels for i in checker.inputs), "every field has a label"
    assert checker.feeds == ["application/rss+xml", "application/atom+xml", "application/feed+json"]
    assert 'name="viewport" content="width=device-width' in text
    assert response.headers["referrer-policy"] == "no-referrer" and "frame-ancestors 'none'" in \
        response.headers["content-security-policy"]


def test_every_page_is_valid_html_with_feed_links(web: Web) -> None:
    with web.client("192.0.2.50") as client:
        pages = [client.get("subscribe"), subscribe(client, "html@example.org"), subscribe(client, "not valid"),
                 client.get("nowhere"), client.get("confirm?token=x")]
    pages.append(httpx.get(confirm_link(web.messages("html@example.org")[0], web.url)))
    (digest,) = web.messages("button@example.org")
    pages += [httpx.get(unsubscribe_link(digest))]
    for response in pages:
        check_page(response)


# the command


def test_serve_command_runs_uvicorn_in_the_foreground_and_hides_tokens_in_its_log(tmp_path: Path) -> None:
    root = tmp_path / "site"
    root.mkdir()
    port = free_port()
    (root / "publisher.toml").write_text(f'[site]\nurl = "http://127.0.0.1:{port}/"\n', encoding="utf-8")
    process = subprocess.Popen([sys.executable, "-m", "publisher", "serve", "--port", str(port)], cwd=root,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        page = wait_until_up(process, f"http://127.0.0.1:{port}/subscribe")
        assert page.status_code == 200 and "Subscribe" in page.text
        assert httpx.get(f"http://127.0.0.1:{port}/unsubscribe?token=abc.secretpart").status_code == 400
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=15)
    assert process.returncode == 0, err
    assert "GET /unsubscribe?token=… HTTP/1.1" in out and "secretpart" not in out + err


class ServeLog:
    """`python -m publisher -v serve` in a subprocess on 127.0.0.1; its log (stderr) read as it comes."""

    def __init__(self, root: Path, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/"
        self.process = subprocess.Popen([sys.executable, "-m", "publisher", "-v", "serve", "--port", str(port)],
                                        cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        self.lines.extend(line.rstrip("\n") for line in self.process.stderr)

    def wait_for(self, words: str, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        while not (found := [line for line in list(self.lines) if words in line]):
            assert self.process.poll() is None and time.monotonic() < deadline, (words, self.lines)
            time.sleep(0.05)
        return found[0]

    def stop(self) -> str:
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(15) == 0, self.lines
        self.reader.join(5)
        return "\n".join(self.lines)


@contextmanager
def serve_log(root: Path) -> Iterator[ServeLog]:
    """A site with one article, served by `publisher -v serve` (which creates the state)."""
    root.mkdir()
    port = free_port()
    (root / "articles").mkdir()
    shutil.copy(SEED, root / "articles" / SEED.name)
    (root / "publisher.toml").write_text(f'[site]\nurl = "http://127.0.0.1:{port}/"\n', encoding="utf-8")
    server = ServeLog(root, port)
    try:
        server.wait_for("Uvicorn running on")
        yield server
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(10)


def half_post(url: str, path: str, body: bytes, length: int) -> None:
    """A raw HTTP/1.1 POST that announces `length` bytes of body, sends `body` (fewer), and hangs up."""
    parsed = httpx.URL(url)
    with socket.create_connection((parsed.host, parsed.port or 80), timeout=5) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {parsed.host}\r\nContent-Type: application/x-www-form-"
                     f"urlencoded\r\nContent-Length: {length}\r\n\r\n".encode() + body)
        time.sleep(0.2)  # the server is now waiting for the rest of the body


def test_a_client_that_hangs_up_mid_post_is_one_short_line_in_the_serve_log_not_a_traceback(tmp_path: Path) -> None:
    with serve_log(tmp_path / "site") as server:
        half_post(server.url, "/subscribe", b"email=reader%40example.org&na", 200)
        line = server.wait_for("disconnected")
        assert line.endswith("POST /subscribe: the client disconnected before sending the whole request"), line
        with httpx.Client(base_url=server.url, timeout=10) as client:
            assert client.get("subscribe").status_code == 200, "the server goes on"
            half_post(server.url, "/subscribe", b"email=a%40example.org&name=A", 999)
            server.wait_for("disconnected", timeout=5)
        log = server.stop()
    assert "Traceback" not in log and "Exception in ASGI application" not in log, log
    assert len([x for x in log.splitlines() if "disconnected" in x]) == 2, log


def test_an_unusable_state_is_a_503_page_and_one_log_line_without_a_traceback(tmp_path: Path) -> None:
    with serve_log(tmp_path / "site") as server, httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("subscribe").status_code == 200
        state = tmp_path / "site" / "publisher.db"
        state.write_bytes(b"not a database, " * 4096)
        friendly(subscribe(client, "reader@example.org"), 503, "Please try again")
        line = server.wait_for("POST /subscribe: ")
        assert line.startswith("ERROR publisher.web.app: "), line
        assert f"{state}: the state database is not an SQLite database" in line, line
        log = server.stop()
    assert "Traceback" not in log and "Exception in ASGI application" not in log, log
    assert len([x for x in log.splitlines() if "POST /subscribe: " in x]) == 1, log


def test_serve_refuses_a_localhost_site_url_on_a_public_interface(tmp_path: Path) -> None:
    (tmp_path / "publisher.toml").write_text('[site]\nurl = "http://localhost:8080/"\n', encoding="utf-8")
    result = run_cli("serve", "--host", "0.0.0.0", "--port", str(free_port()), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and "site.url" in line and "localhost" in line


# a real browser


FITS = "() => document.documentElement.scrollWidth"


def test_browser_subscribes_confirms_and_unsubscribes_from_a_delivered_digest(tmp_path: Path) -> None:
    address, waiting = "browser@example.org", "waiting@example.org"
    with web_site(tmp_path / "site", publish=False) as site, sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = chromium.new_page(viewport={"width": 375, "height": 800})
            page.goto(site.url + "subscribe")
            assert page.evaluate(FITS) <= 375
            page.get_by_label("Email address").fill(address)
            page.get_by_role("button", name="Subscribe").click()
            expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
            assert page.evaluate(FITS) <= 375
            page.goto(confirm_link(site.messages(address)[0], site.url))
            expect(page.get_by_role("heading", name="You are subscribed")).to_be_visible()
            assert address in site.cli("subscribers", "list", "--status", "active").stdout
            with site.client() as client:
                subscribe(client, waiting)  # never confirmed
            published = site.cli("publish", "--clock", CLOCK)
            assert "1 sent" in published.stdout, published.stdout + published.stderr
            digest = next(m for m in site.messages(address, 2) if m["Subject"].startswith("Web Test Site"))
            assert [m["Subject"] for m in site.messages(waiting)] == ["Confirm your subscription to Web Test Site"]
            html = digest.get_body(("html",)).get_content()  # type: ignore[union-attr]
            found = re.search(r'href="([^"]+/unsubscribe\?token=[^"]+)"', html)
            assert found is not None
            page.goto(found.group(1).replace("&amp;", "&"))
            expect(page.get_by_role("heading", name="Unsubscribe")).to_be_visible()
            assert page.evaluate(FITS) <= 375
            page.get_by_role("button", name="Unsubscribe").click()
            expect(page.get_by_role("heading", name="You are unsubscribed")).to_be_visible()
            assert address in site.cli("subscribers", "list", "--status", "unsubscribed").stdout
        finally:
            chromium.close()
