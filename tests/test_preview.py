"""`publisher preview`: the next digest for a dummy reader, through the same code, recording nothing."""

from __future__ import annotations

from email.message import EmailMessage

from tests.conftest import Site, run_cli
from tests.mailcheck import check_headers_ascii, parse, strict_parts


def read_eml(site: Site) -> EmailMessage:
    """The preview message, its headers ASCII and every text part decoded strictly as UTF-8."""
    data = (site.feeds / "preview" / "digest.eml").read_bytes()
    check_headers_ascii(data)
    strict_parts(data)
    return parse(data)


def eml_parts(site: Site) -> dict[str, str]:
    return strict_parts((site.feeds / "preview" / "digest.eml").read_bytes())


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
    html = eml_parts(site)["html"]
    assert "First news" in html and "unsubscribe?token=preview" in html
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


def test_the_date_line_and_latin1_range_characters_are_utf8_in_both_parts(site: Site) -> None:
    site.write("money.md", "---\ntitle: \"\u00a3600m for caf\u00e9s\"\nsummary: \"Na\u00efve \u00b7 \u00a3600m \u2014 "
                           "\u540d\"\n---\nText.\n")
    assert run_cli("preview", "--clock", "2026-11-29T08:00:00Z", cwd=site.root).returncode == 0
    for kind, text in eml_parts(site).items():
        assert "29 November 2026 \u00b7 " in text, kind
        assert "Na\u00efve \u00b7 \u00a3600m \u2014 \u540d" in text, kind
    assert read_eml(site)["Subject"] == "Test Site: \u00a3600m for caf\u00e9s"
