"""`publisher preview`: the next digest for a dummy reader, through the same code, recording nothing."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

from tests.conftest import Site, run_cli


def read_eml(site: Site) -> EmailMessage:
    data = (site.feeds / "preview" / "digest.eml").read_bytes()
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message

def test_preview_writes_html_text_and_eml_and_records_nothing(site: Site) -> None:
    site.write("one.md", "---\ntitle: First news\n---\nSomething happened.\n")
    result = site.publish("--dry-run")
    assert result.returncode == 0
    shown = site.root / "feeds"

    preview = run_cli("preview", "--clock", "2026-11-25T12:00:00Z", cwd=site.root)
    assert preview.returncode == 0, preview.stderr
    assert sorted(p.name for p in (shown / "preview").iterdir()) == ["digest.eml", "digest.html", "digest.txt"]
    message = read_eml(site)
    assert message["Subject"] == "Test Site: First news"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    html_part = message.get_body(("html",))
    assert html_part is not None and "First news" in html_part.get_content()
    assert "unsubscribe?token=preview" in html_part.get_content()
    published = site.publish()
    assert "digest 2026-11-25;" in published.stdout, "preview recorded nothing: the digest is still new"
    again = run_cli("preview", "--clock", "2026-11-25T13:00:00Z", cwd=site.root)
    assert "no new articles since the last digest" in again.stdout

def test_a_title_cannot_add_a_header(site: Site) -> None:
    site.write("evil.md", '---\ntitle: "Hello\\r\\nBcc: victim@example.org\\r\\nX-Evil: 1"\n---\nText.\n')

    assert run_cli("preview", "--clock", "2026-11-25T12:00:00Z", cwd=site.root).returncode == 0
    message = read_eml(site)
    assert message["Bcc"] is None and message["X-Evil"] is None
    assert "Bcc: victim@example.org" in message["Subject"]
    headers = (site.feeds / "preview" / "digest.eml").read_bytes().split(b"\r\n\r\n", 1)[0]
    assert b"\nBcc:" not in headers and b"\nX-Evil:" not in headers
