"""The bytes of every digest email: UTF-8 bodies that decode strictly, headers folded under 998 octets that
nothing can add to, addresses in a form we can send (IDNA domains; SMTPUTF8 local parts only when allowed),
settings that end up in headers validated when the config is loaded, and a valid List-Id for any host.

Every message is checked with tests/mailcheck.py (strict decoding by the declared charset), including the
bytes a real aiosmtpd server received.
"""

from __future__ import annotations

import email
import email.policy
import quopri
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.header import decode_header, make_header
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.config import Settings, load_settings
from publisher.deliver.message import (
    MessageTemplate,
    header_line,
    mailbox_line,
    one_line,
    quoted_printable,
    subject_text,
)
from publisher.deliver.tokens import list_id
from publisher.errors import ConfigError
from publisher.render.digest import GREETING, UNSUBSCRIBE
from tests.conftest import Site, run_cli
from tests.mailcheck import MAX_LINE, check_headers_ascii, check_lines, parse, strict_parts
from tests.mailserver import Collector, free_port

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
MULTILINGUAL = {
    "latin1": "Caf\u00e9 \u00b7 \u00a3600m \u00e9t\u00e9",
    "cjk": "\u65e5\u672c\u8a9e\u306e\u8a18\u4e8b \u4e2d\u6587",
    "emoji": "\U0001f600\U0001f30d\U0001f680",
    "arabic": "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
    "hebrew": "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd",
}
IDN_DOMAIN = "user@\u03c0\u03b1\u03c1\u03ac\u03b4\u03b5\u03b9\u03b3\u03bc\u03b1.\u03b4\u03bf\u03ba\u03b9\u03bc\u03ae"
IDN_ASCII = "user@xn--hxajbheg2az3al.xn--jxalpdlp"
UTF8_LOCAL = "\u03b4\u03bf\u03ba\u03b9\u03bc\u03ae@\u03c0\u03b1\u03c1\u03ac\u03b4\u03b5\u03b9\u03b3\u03bc\u03b1." \
             "\u03b4\u03bf\u03ba\u03b9\u03bc\u03ae"
UTF8_LOCAL_SENT = "\u03b4\u03bf\u03ba\u03b9\u03bc\u03ae@xn--hxajbheg2az3al.xn--jxalpdlp"


def settings_of(tmp_path: Path, toml: str) -> Settings:
    path = tmp_path / "publisher.toml"
    path.write_text(toml, encoding="utf-8")
    return load_settings(path, tmp_path)


def template(tmp_path: Path, toml: str = "", text: str = "", html: str = "") -> MessageTemplate:
    config = settings_of(tmp_path, toml or '[site]\ntitle = "Test Site"\nurl = "https://example.com/"\n')
    text = text or f"Hello\n\nUnsubscribe: {UNSUBSCRIBE}\n"
    html = html or f'<p>Hello</p><a href="{UNSUBSCRIBE}">Unsubscribe</a>\n'
    return MessageTemplate(config, "2026-11-25", "Test Site: news", html, text, NOW)


def render(t: MessageTemplate, name: str = "Ann", address: str = "ann@example.org") -> bytes:
    return t.render(subscriber_id="s1", name=name, address=address,
                    unsubscribe_url="https://example.com/unsubscribe?token=s1.abc-_DEF")


@contextmanager
def server(smtputf8: bool) -> Iterator[tuple[Collector, int]]:
    """aiosmtpd on 127.0.0.1 with SMTPUTF8 offered or not (tests/mailserver.py always offers it)."""
    collector, port = Collector(), free_port()
    controller = Controller(collector, hostname="127.0.0.1", port=port, enable_SMTPUTF8=smtputf8)
    controller.start()
    try:
        yield collector, port
    finally:
        controller.stop()


def display_name(data: bytes, field: str) -> str:
    """The display name of a mailbox header, decoded by RFC 2047 (`email.header.decode_header`: the space
    between two encoded words is no part of the text; the newer header parser keeps it, a known bug)."""
    head = re.sub(r"\r\n(?=[ \t])", "", data.split(b"\r\n\r\n", 1)[0].decode("utf-8"))  # unfolded
    (raw,) = [line.split(":", 1)[1].strip() for line in head.split("\r\n") if line.startswith(f"{field}:")]
    if "=?" not in raw:
        return str(parse(data)[field].addresses[0].display_name)
    return str(make_header(decode_header(raw))).rsplit(" <", 1)[0]


def received(collector: Collector) -> dict[str, bytes]:
    with collector.lock:
        return {rcpt: data for rcpt, data in collector.messages}


# --- the encoder -------------------------------------------------------------------------------------------------


def test_a_multilingual_digest_decodes_strictly_as_utf8_in_every_part(site: Site) -> None:
    words = " ".join(MULTILINGUAL.values())
    site.write("world.md", f"---\ntitle: \"News {MULTILINGUAL['latin1']}\"\nsummary: \"{words}\"\n---\n{words}\n")
    result = run_cli("preview", "--clock", "2026-11-29T08:00:00Z", cwd=site.root)
    assert result.returncode == 0, result.stderr
    data = (site.feeds / "preview" / "digest.eml").read_bytes()
    check_headers_ascii(data)
    parts = strict_parts(data)
    assert sorted(parts) == ["html", "plain"]
    for kind, text in parts.items():
        for script, sample in MULTILINGUAL.items():
            assert sample in text, f"{script} missing from the {kind} part"
        assert "29 November 2026 \u00b7 " in text, "the date line keeps its middle dot"
    assert parse(data)["Subject"] == f"Test Site: News {MULTILINGUAL['latin1']}"
    joined = data.replace(b"=\r\n", b"")  # soft line breaks may fall between the two bytes of a character
    assert b"=C2=B7" in joined and b"=B7" not in joined.replace(b"=C2=B7", b""), "the dot is UTF-8, not Latin-1"


@settings(max_examples=60, deadline=None)
@given(st.text(st.characters(exclude_categories=["Cs"]), max_size=300))
def test_quoted_printable_is_ascii_lines_of_76_that_decode_to_the_utf8_text(text: str) -> None:
    encoded = quoted_printable(text)
    assert all(len(line) <= 75 for line in encoded.split("\r\n"))
    wire = encoded.encode("ascii")  # strict
    expected = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")
    assert quopri.decodestring(wire).decode("utf-8") == expected


def test_pieces_joined_around_a_long_url_keep_every_line_within_76(tmp_path: Path) -> None:
    long_line = "\u00e9" * 40 + "x" * 33  # ends the piece on a full encoded line
    t = template(tmp_path, text=f"{long_line}{UNSUBSCRIBE}{long_line}\n",
                 html=f'<a href="{UNSUBSCRIBE}">{long_line}</a>\n')
    url = "https://example.com/unsubscribe?token=" + "A" * 150
    data = t.render(subscriber_id="s1", name="Ann", address="ann@example.org", unsubscribe_url=url)
    body = data.split(b"\r\n\r\n", 1)[1]
    assert max(len(line) for line in body.split(b"\r\n")) <= 76
    parts = strict_parts(data)
    assert parts["plain"] == f"{long_line}{url}{long_line}\r\n"
    assert f'href="{url}"' in parts["html"]


def test_an_url_with_html_specials_is_escaped_in_the_html_part_only(tmp_path: Path) -> None:
    url = "https://example.com/unsubscribe?token=s1.abc&list=<a>&q=\"x\"'"
    data = template(tmp_path).render(subscriber_id="s1", name="Ann", address="ann@example.org", unsubscribe_url=url)
    parts = strict_parts(data)
    assert f"Unsubscribe: {url}\r\n" in parts["plain"]
    assert 'href="https://example.com/unsubscribe?token=s1.abc&amp;list=&lt;a&gt;&amp;q=&quot;x&quot;&#x27;"' \
        in parts["html"]


WHITESPACE_AND_CONTROLS = " \t\r\n\x0b\x0c\x1c\x1f\x85\xa0\u1680\u2007\u2028\u2029\u3000\x00\x7f\ud800\ufeff"


@settings(max_examples=300, deadline=None)
@given(st.text(st.one_of(st.sampled_from(WHITESPACE_AND_CONTROLS), st.characters()), max_size=60))
def test_one_line_replaces_every_unprintable_character_and_collapses_spaces(text: str) -> None:
    expected = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    got = one_line(text)
    assert got == expected
    assert got.isprintable() and "  " not in got and got == got.strip(" ")


@pytest.mark.parametrize(("value", "expected"), [
    ("Weekly  news ", "Weekly news"), ("caf\u00e9 \u65e5\u672c", "caf\u00e9 \u65e5\u672c"),
    ("a\r\nBcc: x", "a Bcc: x"), ("a\u2028b\x85c\u3000d\xa0e", "a b c d e"), ("\ud800x\x00", "x"), ("", ""),
])
def test_one_line_examples(value: str, expected: str) -> None:
    assert one_line(value) == expected


# --- headers ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["N" * 5000, "\u540d" * 5000, "A, B \"C\" <d@e> " * 300,
                                  "=?utf-8?q?not_a_word?= Ann", "Ann\r\nBcc: victim@example.org\u2028X-Evil: 1"])
def test_any_name_stays_in_the_to_header_folded_under_998_octets(tmp_path: Path, name: str) -> None:
    data = render(template(tmp_path), name=name)
    check_lines(data)
    check_headers_ascii(data)
    strict_parts(data)
    message = parse(data)
    (address,) = message["To"].addresses
    assert address.addr_spec == "ann@example.org"
    assert display_name(data, "To") == " ".join(name.replace("\r\n", " ").replace("\u2028", " ").split())
    assert message["Bcc"] is None and message["X-Evil"] is None
    head = re.sub(rb"\r\n(?=[ \t])", b"\n", data.split(b"\r\n\r\n", 1)[0])  # each header, its lines by LF
    (to,) = [field for field in head.split(b"\r\n") if field.startswith(b"To:")]
    assert max(len(line) for line in to.split(b"\n")) <= 78 < MAX_LINE


def test_long_values_in_every_header_fold_and_decode_back(tmp_path: Path) -> None:
    title = "Site \u00b7 " + "T" * 3000
    toml = (f'[site]\ntitle = "{title}"\nurl = "https://example.com/"\n'
            f'[email]\nfrom = "{"F" * 2000} <news@example.com>"\nreply_to = "R\u00e9 {"r" * 2000} <r@example.com>"\n')
    t = template(tmp_path, toml)
    t2 = MessageTemplate(settings_of(tmp_path, toml), "d", "S\u00fcbject " + "s" * 3000, "<p>x</p>", "x", NOW)
    for data in (render(t), render(t2)):
        check_lines(data)
        check_headers_ascii(data)
        message = parse(data)
        assert display_name(data, "From") == "F" * 2000
        assert display_name(data, "Reply-To") == f"R\u00e9 {'r' * 2000}"
        assert message["List-Id"] == f"{title} <digest.example.com>"
    assert parse(render(t2))["Subject"] == "S\u00fcbject " + "s" * 3000


def test_header_line_keeps_plain_ascii_readable_and_encodes_the_rest() -> None:
    assert header_line("Subject", "Weekly news: 3 articles") == "Subject: Weekly news: 3 articles\r\n"
    assert header_line("Subject", "Caf\u00e9").startswith("Subject: =?utf-8?")
    assert mailbox_line("To", 'Bob "B" Smith', "bob@example.org") == 'To: "Bob \\"B\\" Smith" <bob@example.org>\r\n'
    assert mailbox_line("To", "", IDN_DOMAIN) == f"To: {IDN_ASCII}\r\n"


@pytest.mark.parametrize(("url", "expected"), [
    ("http://[::1]:8080/", "digest.ip6-0000-0000-0000-0000-0000-0000-0000-0001.localhost"),
    ("https://Example.COM/news/", "digest.example.com"),
    ("http://127.0.0.1:8080/", "digest.127.0.0.1"),
    ("https://example.com:8443/", "digest.example.com"),
])
def test_list_id_is_a_dot_atom_for_every_host(url: str, expected: str) -> None:
    found = list_id(url)
    assert found == expected
    atext = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~")
    assert all(label and set(label) <= atext for label in found.split("."))


def test_an_ipv6_site_gives_valid_list_id_message_id_and_sender(tmp_path: Path) -> None:
    t = template(tmp_path, '[site]\ntitle = "Local"\nurl = "http://[::1]:8080/"\n')
    message = parse(render(t))
    assert message["List-Id"] == "Local <digest.ip6-0000-0000-0000-0000-0000-0000-0000-0001.localhost>"
    assert message["Message-ID"] == "<2026-11-25.s1@ip6-0000-0000-0000-0000-0000-0000-0000-0001.localhost>"
    assert message["From"].addresses[0].addr_spec == "noreply@[IPv6:::1]"
    assert not message.defects and not message["List-Id"].defects


# --- settings that end up in headers ------------------------------------------------------------------------------


@pytest.mark.parametrize(("toml", "key"), [
    ('[site]\ntitle = "Site\\r\\nX: y"\n', "site.title"),
    ('[site]\ntitle = "Site\\u2029"\n', "site.title"),
    ('[email]\nreply_to = "a@example.org\\u2028"\n', "email.reply_to"),
    ('[email]\nfrom = "Site\\r\\nBcc: x@example.org <a@example.org>"\n', "email.from"),
    ('[email]\nfrom = "a@example.org, b@example.org"\n', "email.from"),
    ('[email]\nfrom = "j\\u00f6rg@example.org"\n', "email.from"),
    ('[email]\nsubject = "{site}\\u0085Bcc: x"\n', "email.subject"),
    ('[email]\nsubject = "{site}\\tx"\n', "email.subject"),
    ('[site]\nurl = "http://exa\\tmple.com/"\n', "site.url"),
    ('[site]\nurl = "http://example.com\\r\\n/"\n', "site.url"),
    ('[site]\nurl = "http://ex ample.com/"\n', "site.url"),
    ('[site]\nurl = "http://[::1/"\n', "site.url"),
    ('[site]\nurl = "http://example.com:99999/"\n', "site.url"),
    ('[site]\nurl = "http://\\u03c0\\u03b1\\u03c1.example/"\n', "site.url"),
])
def test_header_bound_settings_are_refused_at_load_naming_the_key(tmp_path: Path, toml: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_of(tmp_path, toml)
    assert f"'{key}'" in str(caught.value)
    assert "\n" not in str(caught.value) and "\r" not in str(caught.value)


def test_an_iri_site_url_is_refused_with_its_ascii_form(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape("xn--hxajbheg2az3al.xn--jxalpdlp/%C3%A9")):
        settings_of(tmp_path, '[site]\nurl = "http://\u03c0\u03b1\u03c1\u03ac\u03b4\u03b5\u03b9\u03b3\u03bc\u03b1.'
                              '\u03b4\u03bf\u03ba\u03b9\u03bc\u03ae/\u00e9"\n')


def test_good_header_settings_load(tmp_path: Path) -> None:
    config = settings_of(tmp_path, '[site]\ntitle = "Caf\u00e9 \u00b7 News \U0001f600"\nurl = "http://[::1]:8080/"\n'
                                   '[email]\nreply_to = "Desk <desk@\u03c0\u03b1\u03c1.example>"\nsmtputf8 = true\n')
    assert config.email.smtputf8 is True
    assert config.email.sender == '"Caf\u00e9 \u00b7 News \U0001f600" <noreply@[IPv6:::1]>'
    data = MessageTemplate(config, "d", "s", "<p>x</p>", "x", NOW).render(
        subscriber_id="s", name="", address="a@example.org", unsubscribe_url="http://[::1]:8080/u?t=1")
    check_headers_ascii(data)
    assert parse(data)["Reply-To"].addresses[0].addr_spec == "desk@xn--mxa3ae.example"


# --- internationalised addresses, end to end through a real SMTP server -----------------------------------------


def use_smtp(site: Site, port: int, smtputf8: bool) -> None:
    site.configure(f'[email]\nfrom = "Test Site <news@example.com>"\ntransport = "smtp"\n'
                   f'smtputf8 = {str(smtputf8).lower()}\n'
                   f'[email.smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\ntimeout = 5\n')


def add(site: Site, address: str, name: str = "") -> tuple[int, str, str]:
    result = run_cli("subscribers", "add", address, "--name", name, cwd=site.root)
    return result.returncode, result.stdout, result.stderr


def test_a_utf8_local_part_is_refused_at_add_and_import_without_smtputf8(site: Site) -> None:
    site.configure("[email]\nsmtputf8 = false")
    code, _, error = add(site, UTF8_LOCAL)
    assert code == 2 and "Traceback" not in error
    assert "needs SMTPUTF8" in error and "set [email] smtputf8 = true" in error and len(error.splitlines()) == 1
    csv = site.root / "people.csv"
    csv.write_text(f"email,name\n{UTF8_LOCAL},Greek\nann@example.org,Ann\n", encoding="utf-8")
    result = run_cli("subscribers", "import", str(csv), cwd=site.root)
    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == "1 added, 0 duplicates, 1 invalid"
    assert "line 2:" in result.stdout and "needs SMTPUTF8" in result.stdout
    listed = run_cli("subscribers", "list", cwd=site.root).stdout
    assert "ann@example.org" in listed and "\u03b4\u03bf\u03ba" not in listed


def test_an_idn_domain_is_kept_in_punycode_and_is_one_subscriber_in_either_spelling(site: Site) -> None:
    code, out, _ = add(site, IDN_DOMAIN)
    assert code == 0 and out.strip() == f"added {IDN_ASCII}"
    code, _, error = add(site, IDN_ASCII)
    assert code == 1 and "already subscribed" in error
    removed = run_cli("subscribers", "remove", IDN_DOMAIN, cwd=site.root)
    assert removed.returncode == 0 and IDN_ASCII in removed.stdout


def test_an_import_finds_a_reader_an_older_version_stored_with_a_unicode_domain(site: Site) -> None:
    import sqlite3

    assert add(site, IDN_DOMAIN)[0] == 0
    with sqlite3.connect(site.state) as conn:  # as stored before domains were kept in their xn-- form
        conn.execute("UPDATE subscribers SET email = ?, address = ?", (IDN_DOMAIN.lower(), IDN_DOMAIN))
    csv = site.root / "again.csv"
    csv.write_text(f"email,name\n{IDN_DOMAIN},Again\n{IDN_ASCII},Again\n", encoding="utf-8")
    result = run_cli("subscribers", "import", str(csv), cwd=site.root)
    assert result.stdout.splitlines()[0] == "0 added, 2 duplicates, 0 invalid", result.stdout + result.stderr
    listed = run_cli("subscribers", "list", "--json", cwd=site.root).stdout.strip().splitlines()
    assert len(listed) == 1, listed  # one reader, not a second row that would get every digest twice


@pytest.mark.parametrize("offered", [True, False])
def test_idn_readers_beside_ascii_ones_through_a_real_server(site: Site, offered: bool) -> None:
    site.write("world.md", f"---\ntitle: World\n---\n{' '.join(MULTILINGUAL.values())}\n")
    readers = site.subscribe(3)
    with server(smtputf8=offered) as (collector, port):
        use_smtp(site, port, smtputf8=True)
        assert add(site, IDN_DOMAIN, "\u0399\u03b4\u03bd")[0] == 0
        assert add(site, UTF8_LOCAL, "\u0394\u03bf\u03ba\u03b9\u03bc\u03ae " * 200)[0] == 0
        result = site.publish()
        got = received(collector)
    summary = "5 sent, 0 failed, 0 bounced" if offered else "4 sent, 0 failed, 1 bounced"
    assert summary in result.stdout, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(got) == sorted(readers + [IDN_ASCII] + ([UTF8_LOCAL_SENT] if offered else []))
    for rcpt, data in got.items():
        utf8 = rcpt == UTF8_LOCAL_SENT
        check_headers_ascii(data, utf8_headers=utf8)
        parts = strict_parts(data)
        assert MULTILINGUAL["emoji"] in parts["plain"] and MULTILINGUAL["arabic"] in parts["html"]
        message = email.message_from_string(data.decode("utf-8"), policy=email.policy.default) if utf8 else parse(data)
        assert message["To"].addresses[0].addr_spec == rcpt  # (the byte parser reads headers as ASCII only)
    if not offered:
        status = run_cli("subscribers", "list", "--json", cwd=site.root).stdout
        assert UTF8_LOCAL_SENT in status


def test_confirmation_email_of_a_long_name_and_an_idn_address_is_folded_and_ascii(tmp_path: Path) -> None:
    from publisher.deliver.subscribers import Subscriber
    from publisher.web.signup import confirmation_message

    config = settings_of(tmp_path, '[site]\ntitle = "Caf\u00e9 \u00b7 Site"\nurl = "https://example.com/"\n')
    (tmp_path / "templates").mkdir()
    for name, address, utf8 in (("N" * 5000, IDN_ASCII, False), ("\u540d" * 900, UTF8_LOCAL_SENT, True)):
        reader = Subscriber("s1", address.lower(), address, name, "pending", 0)
        message = confirmation_message(config, reader, "https://example.com/confirm?token=t", NOW, NOW)
        check_headers_ascii(message.data, utf8_headers=utf8)
        assert "https://example.com/confirm?token=t" in strict_parts(message.data)["plain"]
        assert display_name(message.data, "To") == name
        assert message.recipient == address and message.sender == "noreply@example.com"


@settings(max_examples=80, deadline=None)
@given(st.text(st.characters(exclude_categories=["Cs"]), max_size=400))
def test_any_subject_folds_under_78_and_decodes_back_to_its_one_line_form(text: str) -> None:
    line = header_line("Subject", text).encode("ascii")  # strict: RFC 2047 words for the rest
    assert line.endswith(b"\r\n") and all(len(part) <= 78 for part in line[:-2].split(b"\r\n"))
    message = parse(line + b"\r\nbody\r\n")
    expected = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    assert str(message["Subject"]) == expected
    assert list(message.keys()) == ["Subject"]


# --- the greeting and the subject ----------------------------------------------------------------------------------


def greeted(tmp_path: Path, name: str) -> dict[str, str]:
    t = template(tmp_path, text=f"{GREETING}\n\nNews.\nUnsubscribe: {UNSUBSCRIBE}\n",
                 html=f'<p>{GREETING}</p><p>News.</p><a href="{UNSUBSCRIBE}">Unsubscribe</a>\n')
    return strict_parts(render(t, name=name))


@pytest.mark.parametrize(("name", "plain", "html"), [
    ("Ana María López", "Hi Ana,", "<p>Hi Ana,</p>"),
    ("", "Hello,", "<p>Hello,</p>"),
    ("<b>Bo&b</b> Smith", "Hi <b>Bo&b</b>,", "<p>Hi &lt;b&gt;Bo&amp;b&lt;/b&gt;,</p>"),
    ("Zoë\r\nBcc: evil@example.org", "Hi Zoë,", "<p>Hi Zoë,</p>"),
    ("\u65e5\u672c", "Hi \u65e5\u672c,", "<p>Hi \u65e5\u672c,</p>"),
])
def test_greeting_per_reader_in_strictly_decoded_parts(tmp_path: Path, name: str, plain: str, html: str) -> None:
    parts = greeted(tmp_path, name)
    assert parts["plain"].startswith(plain + "\r\n\r\nNews.")
    assert parts["html"].startswith(html)
    assert GREETING not in parts["plain"] + parts["html"]
    assert "https://example.com/unsubscribe?token=s1.abc-_DEF" in parts["plain"]


def test_greeting_and_a_long_url_keep_quoted_printable_lines_within_76(tmp_path: Path) -> None:
    long_line = "\u00e9" * 40 + "x" * 33
    t = template(tmp_path, text=f"{long_line}{GREETING}{long_line}{UNSUBSCRIBE}\n",
                 html=f"<p>{GREETING}{long_line}</p><a href=\"{UNSUBSCRIBE}\">x</a>\n")
    url = "https://example.com/unsubscribe?token=" + "A" * 150
    data = t.render(subscriber_id="s1", name="\u00c9lodie Durand", address="e@example.org", unsubscribe_url=url)
    body = data.split(b"\r\n\r\n", 1)[1]
    assert max(len(line) for line in body.split(b"\r\n")) <= 76
    parts = strict_parts(data)
    assert parts["plain"] == f"{long_line}Hi \u00c9lodie,{long_line}{url}\r\n"
    assert parts["html"].startswith(f"<p>Hi \u00c9lodie,{long_line}</p>")


def test_publish_greets_each_reader_by_name_and_the_archive_neutrally(site: Site) -> None:
    site.write("one.md", "---\ntitle: One\n---\nFirst.\n")
    site.write("two.md", "---\ntitle: Two & more\ndate: 2026-11-20\n---\nSecond.\n")
    for args in (("ana@example.org", "--name", "Ana María"), ("anon@example.org",)):
        assert run_cli("subscribers", "add", *args, cwd=site.root).returncode == 0
    assert site.publish().returncode == 0
    by_reader = {str(parse(p.read_bytes())["To"]): p.read_bytes()
                 for p in (site.root / "outbox" / "2026-11-25").glob("*.eml")}
    assert len(by_reader) == 2
    named = strict_parts(by_reader["Ana María <ana@example.org>"])
    anonymous = strict_parts(by_reader["anon@example.org"])
    assert "Hi Ana," in named["plain"] and "Hi Ana," in named["html"] and "Hello," not in named["plain"]
    assert "Hello," in anonymous["plain"] and "Hello," in anonymous["html"] and "Hi " not in anonymous["plain"]
    assert parse(by_reader["anon@example.org"])["Subject"] == "Test Site: One and 1 more"
    archive = (site.feeds / "digests" / "latest.html").read_text(encoding="utf-8")
    assert "Hello," in archive and "Hi Ana" not in archive and GREETING not in archive


def test_subject_more_is_the_other_articles_and_its_bracket_goes_when_alone() -> None:
    default = "{site}: {title}[ and {more} more]"
    args = {"site": "News", "title": "Lead", "date": "1 May 2026"}
    assert subject_text(default, count=4, **args) == "News: Lead and 3 more"
    assert subject_text(default, count=1, **args) == "News: Lead"
    assert subject_text("[{site}] {title} (+{more})", count=1, **args) == "[News] Lead (+0)"
    assert subject_text("{site}: {title}, {count} articles, {date}", count=2, **args) == \
        "News: Lead, 2 articles, 1 May 2026"
    assert subject_text("{site} [{more} new besides] {title}", count=3, **args) == "News 2 new besides Lead"


def test_subject_setting_accepts_more_and_names_an_unknown_placeholder(tmp_path: Path) -> None:
    base = '[site]\ntitle = "T"\nurl = "https://example.com/"\n[email]\n'
    assert settings_of(tmp_path, base + 'subject = "{title} and {more} more"\n').email.subject
    with pytest.raises(ConfigError, match=r"email.subject.*\{less\}.*\{more\}"):
        settings_of(tmp_path, base + 'subject = "{title} and {less} more"\n')
