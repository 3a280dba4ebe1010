"""SmtpTransport against real aiosmtpd servers on 127.0.0.1: reuse, reconnects, refusals, TLS, AUTH, pacing.

No mocks: every test speaks SMTP over a real socket with smtplib (through the transport) on one side and
aiosmtpd (or a bare socket) on the other.
"""

from __future__ import annotations

import email
import email.policy
import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from publisher.config import SmtpSettings
from publisher.deliver.smtp import SmtpLoginError, SmtpSetupError, SmtpTransport
from publisher.deliver.transport import ConnectionFailure, Outgoing, PermanentFailure, SendFailure, TemporaryFailure
from tests.mailcheck import check_headers_ascii, parse, strict_parts

SENDER = "news@example.com"
PASSWORD = "s3cret-Pa55word"


# --- a real server ------------------------------------------------------------------------------------------------


def free_port() -> int:
    """aiosmtpd 1.4's Controller cannot take port=0 (start() connects to self.port to wake the server up)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Received:
    sender: str
    recipient: str
    data: bytes
    tls: bool
    user: str | None
    mail_options: list[str]


class Mailbox:
    """aiosmtpd handler: keeps what it accepts, answers chosen refusals, can drop connections.

    `refuse(address, reply, at=...)` answers `reply` to MAIL (address = the sender), RCPT or DATA (address = the
    recipient) `times` times (-1: always). `drop_on_mail` hangs up without a reply when MAIL arrives (that many
    times, -1: always); `close_every` hangs up after every n-th accepted message.

    `pipelining=True` adds PIPELINING to the EHLO answer (aiosmtpd reads commands in order from its buffer,
    so it can take them pipelined, but does not say so). `grouped` records, for each MAIL, whether the RCPT
    and DATA after it were already waiting in the server's buffer (sent in the same write), `rsets` counts RSET."""

    def __init__(self, pipelining: bool = False) -> None:
        self.received: list[Received] = []
        self.rules: dict[tuple[str, str], list[Any]] = {}
        self.drop_on_mail = 0
        self.close_every = 0
        self.quits = 0
        self.rsets = 0
        self.pipelining = pipelining
        self.grouped: list[bool] = []
        self.lock = threading.Lock()

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname  # the 5-argument hook must set it (aiosmtpd 1.4)
        return [*responses[:-1], "250-PIPELINING", *responses[-1:]] if self.pipelining else responses

    async def handle_RSET(self, server: Any, session: Any, envelope: Any) -> str:
        self.rsets += 1
        return "250 OK"

    def refuse(self, address: str, reply: str, *, at: str = "RCPT", times: int = -1) -> None:
        self.rules[(at, address)] = [reply, times]

    def _rule(self, at: str, address: str) -> str | None:
        rule = self.rules.get((at, address))
        if rule is None or rule[1] == 0:
            return None
        rule[1] -= 1 if rule[1] > 0 else 0
        return str(rule[0])

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        waiting = bytes(server._reader._buffer).lower()  # what came after MAIL and is not read yet
        self.grouped.append(waiting.startswith(b"rcpt to:") and b"\r\ndata\r\n" in waiting)
        if self.drop_on_mail:
            self.drop_on_mail -= 1 if self.drop_on_mail > 0 else 0
            server.transport.close()  # no reply at all: the client reads EOF
            return "250 OK"
        if reply := self._rule("MAIL", address):
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if reply := self._rule("RCPT", address):
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        recipient = envelope.rcpt_tos[0]
        if reply := self._rule("DATA", recipient):
            return reply
        tls = server.transport.get_extra_info("ssl_object") is not None
        user = session.auth_data.login.decode() if session.authenticated else None
        with self.lock:
            self.received.append(Received(envelope.mail_from, recipient, bytes(envelope.original_content), tls,
                                          user, list(envelope.mail_options)))
            count = len(self.received)
        if self.close_every and count % self.close_every == 0:
            server.loop.call_soon(server.transport.close)  # after the 250 below is written
        return "250 OK queued"

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        self.quits += 1
        return "221 Bye"

    def copies(self, recipient: str) -> int:
        with self.lock:
            return sum(1 for r in self.received if r.recipient == recipient)


class CountingController(Controller):
    """aiosmtpd makes one SMTP protocol object per connection through factory(): count them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.opened = 0

    def factory(self) -> Any:
        self.opened += 1
        return super().factory()  # type: ignore[no-untyped-call]


class Server:
    def __init__(self, mailbox: Mailbox, port: int, **kwargs: Any) -> None:
        self.mailbox, self.port = mailbox, port
        self.controller = CountingController(mailbox, hostname="127.0.0.1", port=port, **kwargs)
        self.controller.start()
        self.baseline = self.controller.opened  # start() opens one connection itself to wake the server

    @property
    def connections(self) -> int:
        return int(self.controller.opened - self.baseline)

    def stop(self) -> None:
        self.controller.stop()


@contextmanager
def smtp_server(mailbox: Mailbox | None = None, port: int | None = None, **kwargs: Any) -> Iterator[Server]:
    server = Server(mailbox or Mailbox(), port or free_port(), **kwargs)
    try:
        yield server
    finally:
        server.stop()


def smtp_settings(port: int, security: str = "none", username: str = "", timeout: float = 5.0) -> SmtpSettings:
    return SmtpSettings(host="127.0.0.1", port=port, security=security, username=username, timeout=timeout)


def outgoing(recipient: str, n: int = 0) -> Outgoing:
    message = EmailMessage()
    message["From"] = f"News <{SENDER}>"
    message["To"] = recipient
    message["Subject"] = f"Digest number {n}"
    message.set_content(f"Hello {recipient},\n.a line that starts with a dot\n..and two\n\nmessage {n}\n")
    data = message.as_bytes(policy=email.policy.SMTP)
    assert data.endswith(b"\r\n") and b"\n." in data
    return Outgoing(f"d{n}", f"s{n}", SENDER, recipient, data)


def reader(n: int) -> str:
    return f"reader{n:03}@example.org"


# --- TLS material -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture(scope="module")
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


class Accounts:
    """aiosmtpd authenticator: one user, remembers the mechanisms used."""

    def __init__(self, user: str, password: str) -> None:
        self.user, self.password = user.encode(), password.encode()
        self.mechanisms: list[str] = []

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        self.mechanisms.append(mechanism)
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (self.user, self.password)
        # handled=False: aiosmtpd answers 535 itself (handled=True, the default, means "I replied", and it says nothing)
        return AuthResult(success=ok, handled=False, auth_data=data if ok else None)


# --- reuse and reconnects -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("pipelining", [False, True], ids=["one-by-one", "pipelined"])
def test_many_messages_go_over_one_connection_byte_for_byte(pipelining: bool) -> None:
    with smtp_server(Mailbox(pipelining)) as server:
        transport = SmtpTransport(smtp_settings(server.port), None)
        sent = [outgoing(reader(n), n) for n in range(20)]
        for message in sent:
            transport.send(message)
        assert server.connections == 1
        transport.close()
        transport.close()  # twice is fine
        assert server.mailbox.quits == 1
        assert server.mailbox.grouped == [pipelining] * 20  # MAIL, RCPT and DATA in one write, or one by one
        received = server.mailbox.received
        assert [(r.sender, r.recipient, r.data) for r in received] == [(SENDER, m.recipient, m.data) for m in sent]
        for n, r in enumerate(received):
            check_headers_ascii(r.data)
            parsed = parse(r.data)
            assert parsed["Subject"] == f"Digest number {n}" and parsed["To"] == reader(n)
            lines = strict_parts(r.data)["plain"].splitlines()
            assert lines[1:3] == [".a line that starts with a dot", "..and two"]  # dot-stuffing undone


@pytest.mark.parametrize("pipelining", [False, True], ids=["one-by-one", "pipelined"])
def test_a_connection_the_server_closed_between_messages_is_reopened_and_nothing_is_lost_or_doubled(
        pipelining: bool) -> None:
    mailbox = Mailbox(pipelining)
    mailbox.close_every = 2
    with smtp_server(mailbox) as server, SmtpTransport(smtp_settings(server.port), None) as transport:
        for n in range(5):
            transport.send(outgoing(reader(n), n))
        assert [r.recipient for r in mailbox.received] == [reader(n) for n in range(5)]
        assert server.connections == 3  # messages 1-2, 3-4, 5


def test_a_server_restart_between_messages_is_survived() -> None:
    port = free_port()
    first, second = Mailbox(), Mailbox()
    transport = SmtpTransport(smtp_settings(port), None)
    with smtp_server(first, port):
        transport.send(outgoing(reader(0), 0))
        transport.send(outgoing(reader(1), 1))
    with smtp_server(second, port) as server:
        transport.send(outgoing(reader(2), 2))
        transport.send(outgoing(reader(3), 3))
        assert server.connections == 1
        transport.close()
    assert [r.recipient for r in first.received] == [reader(0), reader(1)]
    assert [r.recipient for r in second.received] == [reader(2), reader(3)]


@pytest.mark.parametrize("pipelining", [False, True], ids=["one-by-one", "pipelined"])
def test_a_connection_dropped_again_after_the_one_reconnect_is_a_connection_failure(pipelining: bool) -> None:
    mailbox = Mailbox(pipelining)
    with smtp_server(mailbox) as server, SmtpTransport(smtp_settings(server.port), None) as transport:
        transport.send(outgoing(reader(0), 0))
        mailbox.drop_on_mail = -1
        with pytest.raises(ConnectionFailure, match="connection lost"):
            transport.send(outgoing(reader(1), 1))
        assert server.connections == 2  # the first one, then exactly one reconnect
        mailbox.drop_on_mail = 0
        transport.send(outgoing(reader(2), 2))  # the transport is usable again
        assert server.connections == 3
        assert [r.recipient for r in mailbox.received] == [reader(0), reader(2)]


@pytest.mark.parametrize("pipelining", [False, True], ids=["one-by-one", "pipelined"])
def test_a_single_drop_mid_message_is_retried_once_and_delivered_once(pipelining: bool) -> None:
    mailbox = Mailbox(pipelining)
    with smtp_server(mailbox) as server, SmtpTransport(smtp_settings(server.port), None) as transport:
        transport.send(outgoing(reader(0), 0))
        mailbox.drop_on_mail = 1
        transport.send(outgoing(reader(1), 1))
        assert mailbox.copies(reader(1)) == 1 and server.connections == 2


@pytest.mark.parametrize("pipelining", [False, True], ids=["one-by-one", "pipelined"])
def test_a_421_once_is_answered_by_a_reconnect_and_the_message_arrives(pipelining: bool) -> None:
    mailbox = Mailbox(pipelining)
    mailbox.refuse(reader(1), "421 4.3.2 Shutting down, come back later", times=1)
    with smtp_server(mailbox) as server, SmtpTransport(smtp_settings(server.port), None) as transport:
        for n in range(3):
            transport.send(outgoing(reader(n), n))
        assert [r.recipient for r in mailbox.received] == [reader(0), reader(1), reader(2)]
        assert server.connections == 2


# --- refusals -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("at", "reply", "kind", "reconnects"), [
    ("RCPT", "421 4.3.2 Service shutting down", TemporaryFailure, 2),
    ("RCPT", "451 4.3.0 Greylisted, try again later", TemporaryFailure, 0),
    ("RCPT", "452 4.2.2 Mailbox full", TemporaryFailure, 0),
    ("DATA", "421 4.3.2 Service shutting down", TemporaryFailure, 2),
    ("DATA", "451 4.3.0 Local error in processing", TemporaryFailure, 0),
    ("DATA", "452 4.3.1 Insufficient system storage", TemporaryFailure, 0),
    ("MAIL", "451 4.3.0 Sender check unavailable", TemporaryFailure, 0),
    ("MAIL", "421 4.3.2 Service shutting down", TemporaryFailure, 2),
    ("RCPT", "550 5.1.1 No such user", PermanentFailure, 0),
    ("RCPT", "553 5.1.3 Bad address syntax", PermanentFailure, 0),
    ("DATA", "554 5.6.0 Message rejected as spam", PermanentFailure, 0),
])
@pytest.mark.parametrize("pipelining", [False, True], ids=["one-by-one", "pipelined"])
def test_refusals_map_to_their_failure_and_code(at: str, reply: str, kind: type[SendFailure], reconnects: int,
                                                pipelining: bool) -> None:
    code = int(reply[:3])
    mailbox = Mailbox(pipelining)
    refused = outgoing(reader(1), 1)
    if at == "MAIL":  # a sender refusal: send the refused message from another sender
        refused = Outgoing("d1", "s1", "blocked@example.com", reader(1), refused.data)
        mailbox.refuse("blocked@example.com", reply, at="MAIL")
    else:
        mailbox.refuse(reader(1), reply, at=at)
    with smtp_server(mailbox) as server, SmtpTransport(smtp_settings(server.port), None) as transport:
        transport.send(outgoing(reader(0), 0))
        with pytest.raises(SendFailure) as caught:
            transport.send(refused)
        assert type(caught.value) is kind and caught.value.code == code
        assert str(code) in str(caught.value) and reader(1) in str(caught.value)
        transport.send(outgoing(reader(2), 2))  # the next message goes through (and RSET left no envelope open)
        assert [r.recipient for r in mailbox.received] == [reader(0), reader(2)]
        assert server.connections == 1 + reconnects  # 421: closed, reopened, refused again -> one more for reader 2
        if pipelining:
            assert mailbox.rsets == (0 if code == 421 else 1)  # a 421 closes the connection instead
            assert all(mailbox.grouped)


@pytest.mark.parametrize("pipelining", [False, True], ids=["one-by-one", "pipelined"])
def test_a_refused_sender_is_a_setup_error_not_a_bounce(pipelining: bool) -> None:
    mailbox = Mailbox(pipelining)
    mailbox.refuse("blocked@example.com", "553 5.7.1 Sender not allowed", at="MAIL")
    refused = Outgoing("d1", "s1", "blocked@example.com", reader(1), outgoing(reader(1), 1).data)
    with smtp_server(mailbox) as server, SmtpTransport(smtp_settings(server.port), None) as transport:
        with pytest.raises(SmtpSetupError) as caught:
            transport.send(refused)
        assert "553" in str(caught.value) and "[email] from" in caught.value.hint
        transport.send(outgoing(reader(2), 2))
        assert [r.recipient for r in mailbox.received] == [reader(2)]


@pytest.mark.parametrize("pipelining", [False, True], ids=["one-by-one", "pipelined"])
def test_550_for_chosen_recipients_leaves_the_others_delivered_on_the_same_connection(pipelining: bool) -> None:
    mailbox = Mailbox(pipelining)
    bad = {reader(1), reader(4)}
    for address in bad:
        mailbox.refuse(address, "550 5.1.1 User unknown")
    with smtp_server(mailbox) as server, SmtpTransport(smtp_settings(server.port), None) as transport:
        outcomes = {}
        for n in range(6):
            try:
                transport.send(outgoing(reader(n), n))
                outcomes[reader(n)] = "sent"
            except PermanentFailure as e:
                outcomes[reader(n)] = f"bounced {e.code}"
        assert outcomes == {reader(n): "bounced 550" if reader(n) in bad else "sent" for n in range(6)}
        assert sorted(r.recipient for r in mailbox.received) == sorted(set(map(reader, range(6))) - bad)
        assert server.connections == 1 and mailbox.grouped == [pipelining] * 6


class Lenient(Mailbox):
    """Refuses a recipient at RCPT yet answers 354 to the pipelined DATA after it (RFC 2920 3.1 allows a server
    this): the client must end that DATA with an empty message, then RSET."""

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        reply = await super().handle_RCPT(server, session, envelope, address, options)
        if not reply.startswith("250"):
            envelope.rcpt_tos.append(address)  # keeps the refused recipient, so DATA is not refused with 503
        return reply


@pytest.mark.parametrize(("reply", "kind"), [("550 5.1.1 No such user", PermanentFailure),
                                             ("452 4.2.2 Mailbox full", TemporaryFailure)])
def test_a_data_a_server_accepted_after_refusing_the_recipient_is_ended_empty_and_reset(
        reply: str, kind: type[SendFailure]) -> None:
    mailbox = Lenient(pipelining=True)
    mailbox.refuse(reader(1), reply)
    sent = [outgoing(reader(n), n) for n in range(3)]
    with smtp_server(mailbox) as server, SmtpTransport(smtp_settings(server.port), None) as transport:
        transport.send(sent[0])
        with pytest.raises(SendFailure) as caught:
            transport.send(sent[1])
        assert type(caught.value) is kind and caught.value.code == int(reply[:3])
        assert reply[4:] in str(caught.value)  # RCPT's reply, not the one to the empty message
        transport.send(sent[2])
        got = [(r.recipient, r.data) for r in mailbox.received]
        assert got == [(reader(0), sent[0].data), (reader(1), b""), (reader(2), sent[2].data)]
        assert mailbox.rsets == 1 and server.connections == 1 and mailbox.grouped == [True] * 3


@pytest.mark.parametrize("pipelining", [False, True], ids=["one-by-one", "pipelined"])
def test_a_non_ascii_address_uses_smtputf8_when_offered_and_is_refused_when_not(pipelining: bool) -> None:
    address = "jörg@example.org"
    with smtp_server(Mailbox(pipelining)) as server, SmtpTransport(smtp_settings(server.port), None) as transport:
        transport.send(outgoing(address))
        assert [(r.recipient, "SMTPUTF8" in r.mail_options) for r in server.mailbox.received] == [(address, True)]
    with smtp_server(Mailbox(pipelining), enable_SMTPUTF8=False) as server, \
            SmtpTransport(smtp_settings(server.port), None) as transport:
        with pytest.raises(PermanentFailure, match="SMTPUTF8"):
            transport.send(outgoing(address))
        transport.send(outgoing(reader(0)))
        assert [r.recipient for r in server.mailbox.received] == [reader(0)]


@pytest.mark.parametrize("pipelining", [False, True], ids=["one-by-one", "pipelined"])
def test_an_idn_domain_goes_out_in_idna_form_without_smtputf8(pipelining: bool) -> None:
    unicode_domain = "reader@b\u00fccher.example"  # as older rows kept it
    with smtp_server(Mailbox(pipelining), enable_SMTPUTF8=False) as server, \
            SmtpTransport(smtp_settings(server.port), None) as transport:
        transport.send(outgoing(unicode_domain))
        transport.send(outgoing(reader(1)))
        got = [(r.recipient, "SMTPUTF8" in r.mail_options) for r in server.mailbox.received]
        assert got == [("reader@xn--bcher-kva.example", False), (reader(1), False)]


@pytest.fixture(scope="module")
def pipelined_session() -> Iterator[tuple[Mailbox, SmtpTransport]]:
    with smtp_server(Mailbox(pipelining=True)) as server, SmtpTransport(smtp_settings(server.port), None) as transport:
        yield server.mailbox, transport


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(st.sampled_from(".. a\t=\u00e9"), max_size=6), max_size=8))
def test_any_lines_with_leading_dots_arrive_as_they_were_sent(
        pipelined_session: tuple[Mailbox, SmtpTransport], lines: list[str]) -> None:
    mailbox, transport = pipelined_session
    data = "".join(f"{line}\r\n" for line in lines).encode("utf-8") or b"\r\n"
    transport.send(Outgoing("d", "s", SENDER, reader(0), data))
    assert mailbox.received[-1].data == data  # dot-stuffed on the wire, unstuffed by the server
    assert mailbox.grouped[-1]


# --- no server, a mute server, a refusing greeting ----------------------------------------------------------------


def test_a_closed_port_is_a_connection_failure() -> None:
    transport = SmtpTransport(smtp_settings(free_port()), None)
    with pytest.raises(ConnectionFailure, match="cannot connect") as caught:
        transport.send(outgoing(reader(0)))
    assert caught.value.code is None
    transport.close()


def test_a_server_that_never_answers_is_a_connection_failure_after_the_timeout() -> None:
    with socket.socket() as mute:
        mute.bind(("127.0.0.1", 0))
        mute.listen(5)  # the kernel accepts the TCP connection; nobody ever says 220
        transport = SmtpTransport(smtp_settings(mute.getsockname()[1], timeout=1.0), None)
        start = time.monotonic()
        with pytest.raises(ConnectionFailure, match="cannot connect"):
            transport.send(outgoing(reader(0)))
        assert 0.9 < time.monotonic() - start < 4


@contextmanager
def greeting_server(line: bytes) -> Iterator[int]:
    """A bare socket that greets every connection with `line` and then waits for the client to go."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.settimeout(0.2)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(line)
                conn.settimeout(2)
                try:
                    while conn.recv(1024):
                        pass
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        done.set()
        thread.join()
        listener.close()


@pytest.mark.parametrize("code", [421, 554])
def test_a_refusing_greeting_is_a_connection_failure_with_its_code(code: int) -> None:
    with greeting_server(f"{code} mail.example.org not now\r\n".encode()) as port:
        transport = SmtpTransport(smtp_settings(port), None)
        with pytest.raises(ConnectionFailure, match=f"{code} mail.example.org not now") as caught:
            transport.send(outgoing(reader(0)))
        assert caught.value.code == code


def test_close_after_the_server_went_away_does_not_raise() -> None:
    with smtp_server() as server:
        transport = SmtpTransport(smtp_settings(server.port), None)
        transport.send(outgoing(reader(0)))
    transport.close()


# --- TLS and AUTH -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
@pytest.mark.parametrize("pipelining", [False, True], ids=["one-by-one", "pipelined"])
def test_starttls_and_auth(mechanism: str, pipelining: bool, server_tls: ssl.SSLContext, client_tls: ssl.SSLContext,
                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    accounts = Accounts("bob", PASSWORD)
    other = "LOGIN" if mechanism == "PLAIN" else "PLAIN"
    with smtp_server(Mailbox(pipelining), tls_context=server_tls, require_starttls=True, authenticator=accounts,
                     auth_required=True, auth_exclude_mechanism=[other]) as server:
        transport = SmtpTransport(smtp_settings(server.port, "starttls", "bob"), PASSWORD, ssl_context=client_tls)
        for n in range(3):
            transport.send(outgoing(reader(n), n))
        transport.close()
        assert [(r.recipient, r.tls, r.user) for r in server.mailbox.received] == \
               [(reader(n), True, "bob") for n in range(3)]
        assert server.connections == 1 and accounts.mechanisms == [mechanism]
        assert server.mailbox.grouped == [pipelining] * 3
    assert PASSWORD not in repr(transport)
    assert not [r for r in caplog.records if r.name.startswith("publisher") and PASSWORD in r.getMessage()]


def test_a_wrong_password_is_a_login_error_that_never_shows_the_password(
        server_tls: ssl.SSLContext, client_tls: ssl.SSLContext, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wr0ng-" + PASSWORD
    with smtp_server(tls_context=server_tls, require_starttls=True, authenticator=Accounts("bob", PASSWORD),
                     auth_required=True) as server:
        transport = SmtpTransport(smtp_settings(server.port, "starttls", "bob"), wrong, ssl_context=client_tls)
        with pytest.raises(SmtpLoginError) as caught:
            transport.send(outgoing(reader(0)))
        transport.close()
        assert server.mailbox.received == []
    error = caught.value
    assert error.exit_code == 2
    assert error.message == f"127.0.0.1:{server.port}: login refused for user 'bob' (535)"
    assert error.hint == "check [email.smtp] username and PUBLISHER_SMTP_PASSWORD"
    for text in (str(error), repr(error), repr(error.args), repr(transport), caplog.text):
        assert wrong not in text and PASSWORD not in text
    assert error.__cause__ is None and error.__suppress_context__


def test_a_username_without_a_password_is_refused_before_connecting() -> None:
    with pytest.raises(SmtpLoginError, match="no password for user 'bob'"):
        SmtpTransport(smtp_settings(free_port(), "none", "bob"), None)


def test_an_untrusted_certificate_is_a_setup_error(server_tls: ssl.SSLContext) -> None:
    with smtp_server(tls_context=server_tls, require_starttls=True) as server:
        transport = SmtpTransport(smtp_settings(server.port, "starttls"), None)  # system CAs: no trustme CA
        with pytest.raises(SmtpSetupError, match="certificate check failed") as caught:
            transport.send(outgoing(reader(0)))
        assert caught.value.exit_code == 2 and server.mailbox.received == []


def test_starttls_asked_of_a_server_without_it_is_a_setup_error(client_tls: ssl.SSLContext) -> None:
    with smtp_server() as server:
        transport = SmtpTransport(smtp_settings(server.port, "starttls"), None, ssl_context=client_tls)
        with pytest.raises(SmtpSetupError, match="STARTTLS extension not supported") as caught:
            transport.send(outgoing(reader(0)))
        assert "security" in caught.value.hint and server.mailbox.received == []


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_implicit_tls_with_auth(server_tls: ssl.SSLContext, client_tls: ssl.SSLContext) -> None:
    # aiosmtpd offers AUTH only after its own STARTTLS unless auth_require_tls=False, even on an implicit-TLS port
    with smtp_server(ssl_context=server_tls, authenticator=Accounts("bob", PASSWORD), auth_required=True,
                     auth_require_tls=False) as server:
        transport = SmtpTransport(smtp_settings(server.port, "tls", "bob"), PASSWORD, ssl_context=client_tls)
        transport.send(outgoing(reader(0), 0))
        transport.send(outgoing(reader(1), 1))
        transport.close()
        assert [(r.recipient, r.tls, r.user) for r in server.mailbox.received] == \
               [(reader(0), True, "bob"), (reader(1), True, "bob")]
        assert server.connections == 1


def test_implicit_tls_against_a_plain_server_is_a_connection_failure(client_tls: ssl.SSLContext) -> None:
    with smtp_server() as server:
        transport = SmtpTransport(smtp_settings(server.port, "tls", timeout=2), None, ssl_context=client_tls)
        with pytest.raises(ConnectionFailure, match="cannot connect"):
            transport.send(outgoing(reader(0)))


# --- pacing -------------------------------------------------------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.starts: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.mark.parametrize(("rate", "busy", "slept"), [
    (2.0, 0.0, 2.0),   # 5 messages, 4 gaps of 0.5 s
    (2.0, 0.2, 1.2),   # each send takes 0.2 s of (fake) time already: 4 gaps of 0.3 s
    (2.0, 0.7, 0.0),   # slower than the rate anyway: no sleeping
    (0.0, 0.0, 0.0),   # unlimited
])
def test_rate_spaces_message_starts(rate: float, busy: float, slept: float) -> None:
    fake = FakeTime()

    class Slow(Mailbox):
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            fake.starts.append(fake.now)
            fake.now += busy
            return await super().handle_DATA(server, session, envelope)

    with smtp_server(Slow()) as server:
        transport = SmtpTransport(smtp_settings(server.port), None, rate=rate, clock=fake.clock, sleep=fake.sleep)
        real = time.monotonic()
        for n in range(5):
            transport.send(outgoing(reader(n), n))
        transport.close()
        assert time.monotonic() - real < 2  # nothing really waited
        assert len(server.mailbox.received) == 5
    assert sum(fake.sleeps) == pytest.approx(slept)
    if rate:
        gaps = [b - a for a, b in zip(fake.starts, fake.starts[1:], strict=False)]
        assert all(gap >= 1 / rate - 1e-9 for gap in gaps)
