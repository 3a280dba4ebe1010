"""A subscribe form that embeds anywhere: POST /subscribe from any page, with no cookie and no token (double
opt-in protects the list), answered as a page or as JSON, with CORS for site.url's origin only; the honeypot
and the per-client rate limit refuse; `publisher subscribe-form` prints the snippet; the welcome email.

Real parts: uvicorn on 127.0.0.1, aiosmtpd (tests/mailserver.py), the CLI in subprocesses, and Debian's
Chromium loading the snippet from a second local server (`python -m http.server`, another origin) and posting
it to a real `publisher serve`.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from publisher.config import load_settings
from publisher.web import create_app
from tests import mailcheck
from tests.conftest import CLOCK, SEED, run_cli
from tests.mailserver import Collector, free_port, smtp_server
from tests.test_digest_browser import ARGS, CHROMIUM
from tests.test_web import CONFIG, HTML, Web, confirm_link, uvicorn_server

LIMIT = 4  # web.subscribe_limit of these sites
OTHER = "https://blog.example.net"  # an embedding page's origin, not site.url's


def write_site(root: Path, port: int, smtp: int, extra: str = "") -> None:
    root.mkdir(parents=True)
    (root / "articles").mkdir()
    shutil.copy(SEED, root / "articles" / SEED.name)
    (root / "publisher.toml").write_text(CONFIG.format(port=port, smtp=smtp) + f"\n[web]\nsubscribe_limit = {LIMIT}\n"
                                         + extra, encoding="utf-8")


@contextmanager
def embed_site(root: Path, *, publish: bool = True, extra: str = "") -> Iterator[Web]:
    """A site (its state in an SQLite file) served by create_app under uvicorn in a thread."""
    port = free_port()
    with smtp_server() as (collector, smtp_port):
        write_site(root, port, smtp_port, extra)
        if publish:
            run_cli("publish", "--clock", CLOCK, cwd=root, check=True)
        settings = load_settings(root / "publisher.toml", root)
        with uvicorn_server(create_app(settings), port) as url:
            yield Web(root, url, settings, collector)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    with embed_site(tmp_path_factory.mktemp("embed") / "site") as web:
        yield web


def origin(web: Web) -> str:
    return web.url.rstrip("/")


def post(web: Web, client_ip: str, fields: dict[str, str], **headers: str) -> httpx.Response:
    """A cross-site form POST as a browser sends it: no cookie, no token, an Origin header."""
    with web.client(client_ip) as client:
        return client.post("subscribe", data=fields, headers={"Origin": OTHER, **headers})


def test_a_post_from_another_site_without_cookie_starts_double_opt_in(site: Web) -> None:
    address = "embedded@example.org"
    answer = post(site, "203.0.113.1", {"email": address, "website": ""})
    assert answer.status_code == 200 and answer.headers["content-type"] == HTML, answer.text[:300]
    assert "Check your inbox" in answer.text and address in answer.text and "set-cookie" not in answer.headers
    assert "access-control-allow-origin" not in answer.headers, "a form post needs no CORS; other origins get none"
    assert site.statuses()[address] == "pending", "pending until the emailed link is opened"
    (message,) = site.messages(address)
    assert message["Subject"] == "Confirm your subscription to Web Test Site"
    assert confirm_link(message, site.url).startswith(site.url + "confirm?token=")


def test_json_answers_with_cors_for_the_site_origin_only(site: Web) -> None:
    mine = post(site, "203.0.113.2", {"email": "json@example.org"}, Accept="application/json",
                Origin=origin(site))
    assert mine.status_code == 200 and mine.headers["content-type"] == "application/json"
    body = mine.json()
    assert body["ok"] is True and "json@example.org" in body["message"] and "48 hours" in body["message"]
    assert mine.headers["access-control-allow-origin"] == origin(site) and "Origin" in mine.headers["vary"]
    other = post(site, "203.0.113.2", {"email": "json2@example.org"}, Accept="application/json")
    assert other.status_code == 200 and other.json()["ok"] is True
    assert "access-control-allow-origin" not in other.headers, "no CORS for another origin"
    bad = post(site, "203.0.113.2", {"email": "not an address"}, Accept="application/json", Origin=origin(site))
    assert bad.status_code == 400 and bad.json() == {"ok": False, "field": "email",
                                                     "error": "Please enter an email address such as "
                                                              "reader@example.com."}
    assert bad.headers["access-control-allow-origin"] == origin(site)
    with site.client("203.0.113.2") as client:  # a script may send JSON too
        sent = client.post("subscribe", json={"email": "body@example.org", "name": "Body"},
                           headers={"Accept": "application/json"})
    assert sent.status_code == 200 and sent.json()["ok"] is True
    assert {a: site.statuses()[a] for a in ("json@example.org", "json2@example.org", "body@example.org")} == \
        dict.fromkeys(("json@example.org", "json2@example.org", "body@example.org"), "pending")


def test_the_preflight_allows_the_site_origin_only(site: Web) -> None:
    ask = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    with site.client() as client:
        mine = client.options("subscribe", headers={"Origin": origin(site), **ask})
        other = client.options("subscribe", headers={"Origin": OTHER, **ask})
        lookalike = client.options("subscribe", headers={"Origin": origin(site) + "0", **ask})
    assert mine.status_code == 204 and mine.headers["access-control-allow-origin"] == origin(site)
    assert "POST" in mine.headers["access-control-allow-methods"]
    assert "content-type" in mine.headers["access-control-allow-headers"].lower()
    for refused in (other, lookalike):
        assert refused.status_code == 204 and not any(h.startswith("access-control-") for h in refused.headers)


def test_a_filled_honeypot_looks_accepted_but_does_nothing(site: Web, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="publisher.web.app")
    bot, person = "bot@example.org", "person@example.org"
    trapped = post(site, "203.0.113.3", {"email": bot, "website": "http://spam.example/"})
    real = post(site, "203.0.113.4", {"email": person, "website": ""})
    assert trapped.status_code == real.status_code == 200
    assert trapped.text.replace(bot, "ADDRESS") == real.text.replace(person, "ADDRESS"), "the same page"
    assert sorted(trapped.headers.keys() - {"date", "content-length"}) == \
        sorted(real.headers.keys() - {"date", "content-length"})
    as_json = post(site, "203.0.113.3", {"email": bot, "website": "x"}, Accept="application/json")
    assert as_json.status_code == 200 and as_json.json()["ok"] is True
    site.messages(person)  # the person's confirmation arrived: the bot's would have by now
    assert site.mail.copies()[bot] == 0 and bot not in site.statuses()
    lines = [r.getMessage() for r in caplog.records if "'website'" in r.getMessage()]
    assert len(lines) == 2 and "203.0.113.3" in lines[0], lines


def test_the_rate_limit_refuses_as_a_page_and_as_json(site: Web) -> None:
    answers = [post(site, "198.51.100.20", {"email": f"many{n}@example.org"}, Accept="application/json",
                    Origin=origin(site)) for n in range(LIMIT + 2)]
    assert [a.status_code for a in answers] == [200] * LIMIT + [429, 429]
    refused = answers[-1]
    assert refused.json()["ok"] is False and "try again in" in refused.json()["error"]
    assert int(refused.headers["retry-after"]) > 0 and refused.headers["access-control-allow-origin"] == origin(site)
    page = post(site, "198.51.100.20", {"email": "page@example.org"})
    assert page.status_code == 429 and "Too many attempts" in page.text and page.headers["content-type"] == HTML
    statuses = site.statuses()
    assert sum(a.startswith("many") for a in statuses) == LIMIT and "page@example.org" not in statuses


# the snippet


class Form(HTMLParser):
    """The tags of the snippet, their attributes, and the styles and aria-hidden of what holds each."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None], list[dict[str, str | None]]]] = []
        self.open: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs), list(self.open)))
        if tag not in ("input", "br"):
            self.open.append(dict(attrs))

    def handle_endtag(self, tag: str) -> None:
        self.open.pop()


def test_subscribe_form_prints_a_plain_deterministic_form(tmp_path: Path) -> None:
    (tmp_path / "publisher.toml").write_text('[site]\ntitle = "A & B"\nurl = "https://news.example.com/"\n',
                                             encoding="utf-8")
    first, again = run_cli("subscribe-form", cwd=tmp_path), run_cli("subscribe-form", cwd=tmp_path)
    assert first.returncode == 0 and first.stderr == "" and first.stdout == again.stdout, first.stderr
    snippet = first.stdout
    assert "<script" not in snippet and "A &amp; B" in snippet
    parser = Form()
    parser.feed(snippet)
    parser.close()
    assert not parser.open, "every tag is closed"
    tags = {(tag, attrs.get("name")): (attrs, holders) for tag, attrs, holders in parser.tags}
    form, _ = tags["form", None]
    assert form["method"] == "post" and form["action"] == "https://news.example.com/subscribe"
    email, holders = tags["input", "email"]
    assert email["type"] == "email" and email["autocomplete"] == "email" and "required" in email
    assert any(h is not None for h in holders), "inside its label"
    trap, holders = tags["input", "website"]
    assert trap["tabindex"] == "-1" and trap["autocomplete"] == "off" and trap["value"] == ""
    hidden = [h for h in holders if h.get("aria-hidden") == "true"]
    assert hidden and "left:-10000px" in (hidden[0].get("style") or ""), "off screen and hidden from screen readers"
    assert tags["button", None][0]["type"] == "submit"
    named = run_cli("subscribe-form", "--with-name", "--config", "publisher.toml", cwd=tmp_path)
    assert 'name="name"' in named.stdout and 'name="name"' not in snippet


def test_subscribe_form_with_a_bad_config_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "publisher.toml").write_text('[site]\nurl = "not a url"\n', encoding="utf-8")
    result = run_cli("subscribe-form", cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert "site.url" in line, line


# the welcome email


def confirm_and_welcome(web: Web, address: str, name: str = "") -> str:
    """Subscribe and confirm `address`; the confirmation page's text."""
    assert post(web, "203.0.113.50", {"email": address, "name": name}).status_code == 200
    page = httpx.get(confirm_link(web.messages(address)[0], web.url), timeout=10)
    assert page.status_code == 200 and "You are subscribed" in page.text
    assert web.statuses()[address] == "active"
    return page.text


def test_no_welcome_email_when_turned_off(tmp_path: Path) -> None:
    with embed_site(tmp_path / "site", publish=False, extra="welcome = false\n") as web:
        confirm_and_welcome(web, "quiet@example.org")
        after = post(web, "203.0.113.51", {"email": "other@example.org"})
        assert after.status_code == 200
        web.messages("other@example.org")  # a later message arrived, and the welcome goes at once when it is on
        time.sleep(0.5)
        assert web.mail.copies()["quiet@example.org"] == 1, "only the confirmation"


def test_a_welcome_that_cannot_be_sent_is_one_line_and_the_reader_is_subscribed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="publisher.web.signup")
    address = "refused@example.org"
    with embed_site(tmp_path / "site", publish=False) as web:
        assert post(web, "203.0.113.52", {"email": address}).status_code == 200
        link = confirm_link(web.messages(address)[0], web.url)
        web.mail.replies[address] = "550 5.1.1 mailbox unavailable"
        page = httpx.get(link, timeout=10)
        assert page.status_code == 200 and "You are subscribed" in page.text
        deadline = time.monotonic() + 10
        while not web.mail.refused[address] and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        assert web.statuses()[address] == "active"
    lines = [r for r in caplog.records if r.getMessage().startswith("welcome email")]
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING and "not sent" in lines[0].getMessage()


def test_the_welcome_email_greets_by_name_and_links_the_home_page_before_any_digest(tmp_path: Path) -> None:
    address = "ana@example.org"
    with embed_site(tmp_path / "site", publish=False) as web:
        confirm_and_welcome(web, address, name="Ana")
        welcome = next(m for m in web.messages(address, 2) if m["Subject"] == "Welcome to Web Test Site")
        raw = next(r for r in web.mail.raw(address) if b"Subject: Welcome" in r)
    parts = {kind: text.replace("\r\n", "\n") for kind, text in mailcheck.strict_parts(raw).items()}
    mailcheck.check_headers_ascii(raw)
    assert parts["plain"].startswith("Hi Ana,\n") and "Hi Ana," in parts["html"]
    assert web.url + "\n" in parts["plain"] and "digests/latest" not in parts["plain"], "no digest yet: the home page"
    assert welcome["To"].addresses[0].display_name == "Ana"


# a page on another origin, in Chromium, posting to a real `publisher serve`


@contextmanager
def process(args: list[str], cwd: Path, ready: str) -> Iterator[subprocess.Popen[str]]:
    """A subprocess, waited for until `ready` (a URL) answers; stopped with SIGTERM at the end."""
    proc = subprocess.Popen(args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(ready, timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, f"{args} did not start"
                time.sleep(0.1)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_a_snippet_on_another_origin_subscribes_in_chromium_and_the_welcome_follows(tmp_path: Path) -> None:
    address, root, blog = "chromium@example.org", tmp_path / "site", tmp_path / "blog"
    port, blog_port = free_port(), free_port()
    with smtp_server() as (mail, smtp_port):
        write_site(root, port, smtp_port)
        run_cli("publish", "--clock", CLOCK, cwd=root, check=True)
        snippet = run_cli("subscribe-form", cwd=root, check=True).stdout
        blog.mkdir()
        (blog / "index.html").write_text(f"<!doctype html>\n<html lang=en><head><meta charset=utf-8><title>My blog"
                                         f"</title></head><body><h1>My blog</h1>\n{snippet}</body></html>\n",
                                         encoding="utf-8")
        site_url, blog_url = f"http://127.0.0.1:{port}/", f"http://127.0.0.1:{blog_port}/"
        with process([sys.executable, "-m", "publisher", "serve", "--port", str(port)], root, site_url), \
                process([sys.executable, "-m", "http.server", str(blog_port), "--bind", "127.0.0.1"], blog, blog_url), \
                sync_playwright() as p:
            chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                page = chromium.new_page(viewport={"width": 375, "height": 800})
                page.goto(blog_url)
                page.get_by_label("Email address").fill(address)
                page.get_by_role("button", name="Subscribe").click()
                expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
                assert page.url == site_url + "subscribe"
                confirmation = wait_for(mail, address, 1)[0]
                page.goto(confirm_link(confirmation, site_url))
                expect(page.get_by_role("heading", name="You are subscribed")).to_be_visible()
            finally:
                chromium.close()
            welcome_raw = [r for r in wait_raw(mail, address, 2) if b"Subject: Welcome to Web Test Site" in r]
            assert len(welcome_raw) == 1 and statuses(root)[address] == "active"
            check_welcome(welcome_raw[0], site_url, root)


def wait_for(mail: Collector, address: str, count: int) -> list[EmailMessage]:
    deadline = time.monotonic() + 15
    while len(found := mail.parsed(address)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(found) >= count, f"{count} message(s) for {address} expected, {len(found)} arrived"
    return found


def wait_raw(mail: Collector, address: str, count: int) -> list[bytes]:
    wait_for(mail, address, count)
    return mail.raw(address)


def statuses(root: Path) -> dict[str, str]:
    listed = run_cli("subscribers", "list", "--json", cwd=root, check=True)
    return {row["email"]: row["status"] for row in map(json.loads, listed.stdout.splitlines())}


def check_welcome(raw: bytes, site_url: str, root: Path) -> None:
    """Strictly decoded; the latest digest's link answers 200; List-Unsubscribe is the body's link, and works."""
    mailcheck.check_headers_ascii(raw)
    parts = {kind: text.replace("\r\n", "\n") for kind, text in mailcheck.strict_parts(raw).items()}
    message = mailcheck.parse(raw)
    assert parts["plain"].startswith("Hello,\n"), parts["plain"][:80]
    latest = re.search(re.escape(site_url) + r"digests/latest\S*", parts["plain"])
    assert latest is not None, parts["plain"]
    page = httpx.get(latest.group(0), timeout=10)
    assert page.status_code == 200 and page.content == (root / "feeds" / "digests" / "latest.html").read_bytes()
    assert f'href="{latest.group(0)}"' in parts["html"]
    header = re.search(r"<(http://[^>]+/unsubscribe\?token=[^>]+)>", message["List-Unsubscribe"])
    assert header is not None and message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert header.group(1) in parts["plain"] and message["List-Id"] is not None
    assert message["Message-ID"].startswith("<welcome.")
    gone = httpx.post(header.group(1), content=b"List-Unsubscribe=One-Click", timeout=10,
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert gone.status_code == 200 and "You are unsubscribed" in gone.text
    assert statuses(root)[message["To"].addresses[0].addr_spec] == "unsubscribed"
