"""Settings still pointing at localhost or an example domain: `check` and `send` warn (exit code unchanged),
and SMTP delivery refuses links to this machine (exit 2, nothing sent); the outbox transport is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from publisher.safety import is_example, is_local, mail_domain
from tests.conftest import CLOCK, Site, run_cli
from tests.mailserver import smtp_server

WARNING = "warning: "
SMTP = """\
[email]
transport = "smtp"
[email.smtp]
host = "127.0.0.1"
port = {port}
security = "none"
timeout = 5
"""


def site_with(root: Path, url: str, sender: str = "") -> Site:
    site = Site(root)
    (root / "publisher.toml").write_text(f'[site]\ntitle = "Safety"\nurl = "{url}"\ntimezone = "UTC"\n'
                                         '[related]\ncount = 0\n', encoding="utf-8")  # no ranking: faster
    if sender:
        site.configure(f'[email]\nfrom = "{sender}"')
    site.write("hello.md", "---\ntitle: Hello\ndate: 2026-11-20\n---\nThe first post.\n")
    return site


def warnings_of(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(WARNING)]


@pytest.mark.parametrize(("host", "local", "example"), [
    ("localhost", True, True), ("LocalHost.", True, True), ("news.localhost", True, True),
    ("127.0.0.1", True, False), ("127.8.9.1", True, False), ("[::1]", True, False), ("IPv6:::1", True, False),
    ("0.0.0.0", True, False), ("example.com", False, True), ("news.example.org", False, True),
    ("example.net", False, True), ("site.test", False, True), ("news.publisher-weekly.com", False, False),
    ("192.0.2.10", False, False), ("examples.com", False, False),
])
def test_hosts_local_and_example(host: str, local: bool, example: bool) -> None:
    assert (is_local(host), is_example(host)) == (local, example)


def test_mail_domain_of_a_mailbox() -> None:
    assert mail_domain('"News, Weekly" <news@Example.ORG>') == "Example.ORG"
    assert mail_domain("noreply@localhost") == "localhost"
    assert mail_domain("no address") == ""


def test_check_on_a_fresh_init_site_warns_about_localhost(tmp_path: Path) -> None:
    assert run_cli("init", "new", "--clock", CLOCK, cwd=tmp_path).returncode == 0
    result = run_cli("check", "--clock", CLOCK, cwd=tmp_path / "new")
    assert result.returncode == 0, result.stderr
    url, sender = warnings_of(result.stderr)
    assert "site.url 'http://localhost:8080/'" in url and "set site.url" in url
    assert "noreply@localhost" in sender and "set email.from" in sender
    assert "2 warnings" in result.stdout


@pytest.mark.parametrize(("url", "sender", "named"), [
    ("https://example.com/", "News <news@news.publisher-weekly.com>", ["site.url 'https://example.com/'"]),
    ("https://news.publisher-weekly.com/", "News <news@example.org>", ["news@example.org"]),
    ("http://127.0.0.1:8080/", "", ["site.url 'http://127.0.0.1:8080/'", "noreply@127.0.0.1"]),
    ("https://news.publisher-weekly.com/", "", []),  # the default sender is at the site's own host
])
def test_check_and_send_warn_once_per_setting(tmp_path: Path, url: str, sender: str, named: list[str]) -> None:
    site = site_with(tmp_path / "site", url, sender)
    checked = run_cli("check", "--clock", CLOCK, cwd=site.root)
    sent = run_cli("send", "--clock", CLOCK, cwd=site.root)
    for result in (checked, sent):
        assert result.returncode == 0, result.stderr
        lines = warnings_of(result.stderr)
        assert len(lines) == len(named), result.stderr
        for line, name in zip(lines, named, strict=True):
            assert name in line and "set " in line and "\n" not in line


def test_smtp_refuses_a_localhost_site_url_and_sends_nothing(tmp_path: Path) -> None:
    site = site_with(tmp_path / "site", "http://localhost:8080/", "News <news@news.publisher-weekly.com>")
    with smtp_server() as (collector, port):
        site.configure(SMTP.format(port=port).replace("[email]\n", ""))
        added = run_cli("subscribers", "add", "ana@mail.publisher-weekly.com", cwd=site.root)
        assert added.returncode == 0, added.stderr
        published = site.publish()
        sent = run_cli("send", "--clock", CLOCK, cwd=site.root)
        assert collector.messages == []
    assert published.returncode == 2 and sent.returncode == 2
    for result in (published, sent):
        (error,) = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert "site.url = 'http://localhost:8080/' points to this machine" in error and "1 subscriber" in error
        assert "Traceback" not in result.stderr
    assert not site.feeds.exists(), "publish refused before writing or recording anything"


def test_smtp_sends_when_only_example_addresses_would_get_local_links(tmp_path: Path) -> None:
    """Readers at reserved domains have no real mailbox: a site tried out on 127.0.0.1 still delivers."""
    site = site_with(tmp_path / "site", "http://127.0.0.1:8080/", "News <news@example.com>")
    with smtp_server() as (collector, port):
        site.configure(SMTP.format(port=port).replace("[email]\n", ""))
        site.subscribe(2)
        published = site.publish()
        assert published.returncode == 0, published.stderr
        assert len(collector.messages) == 2


def test_outbox_accepts_a_localhost_site_url(tmp_path: Path) -> None:
    site = site_with(tmp_path / "site", "http://localhost:8080/")
    assert run_cli("subscribers", "add", "ana@mail.publisher-weekly.com", cwd=site.root).returncode == 0
    published = site.publish()
    assert published.returncode == 0, published.stderr
    assert "1 sent" in published.stdout and len(list((site.root / "outbox").rglob("*.eml"))) == 1
