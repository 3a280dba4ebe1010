"""A small WebSub hub for the tests (W3C WebSub Recommendation, sections 5 to 7), on 127.0.0.1.

Why not Flask-WebSub's hub (PyPI, 0.4.1)? It installs and runs (with Celery in eager mode), but its
publish endpoint requires `hub.topic` and answers 400 to the `hub.url` ping publisher sends (the form
most hubs take), and it forwards every header of the topic's response to the subscribers, including a
`Content-Encoding: gzip` over a body it has already decoded. So the suite carries this one.

- Subscribing (5.1-5.3): a POST with hub.mode=subscribe|unsubscribe, hub.topic, hub.callback (and
  hub.secret, under 200 bytes) is answered 202 at once; then the hub verifies the intent with a GET to the
  callback (hub.mode, hub.topic, hub.challenge, hub.lease_seconds) and keeps the subscription only when the
  callback answers 2xx with the challenge as its body.
- Publishing: a POST with hub.mode=publish and hub.url (or hub.topic) is answered 202; the hub then fetches
  the topic and POSTs its bytes to every verified callback of that topic (7): the topic's Content-Type,
  `Link: <hub>; rel="hub", <topic>; rel="self"` and, with a secret, `X-Hub-Signature: sha256=<HMAC>` (7.1).
The work after a 202 runs in a thread; `idle()` waits until none is left.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

LEASE = 864000  # seconds (10 days, the spec's suggestion)
TIMEOUT = 5.0  # seconds per request the hub makes
MAX_SECRET = 200  # bytes (5.1)


def signature(secret: str, body: bytes) -> str:
    """The X-Hub-Signature value of `body` (7.1): sha256=<hex HMAC>."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


@dataclass
class HubLog:
    """What the hub did: the publish pings (their topic), the deliveries (topic, callback) and the failures."""

    pings: list[str] = field(default_factory=list)
    delivered: list[tuple[str, str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


class WebSubHub:
    def __init__(self, timeout: float = TIMEOUT) -> None:
        self.timeout = timeout
        self.subscriptions: dict[tuple[str, str], str | None] = {}  # (topic, callback) -> secret
        self.log = HubLog()
        self._lock = threading.Condition()
        self._busy = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode("utf-8", "replace")).items()}
                status, text = hub.accept(form)
                body = text.encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def accept(self, form: dict[str, str]) -> tuple[int, str]:
        """(status, text) for a POST to the hub; accepted work goes on in a thread."""
        mode = form.get("hub.mode", "")
        if mode in ("subscribe", "unsubscribe"):
            topic, callback, secret = form.get("hub.topic", ""), form.get("hub.callback", ""), form.get("hub.secret")
            if not (web_url(topic) and web_url(callback)):
                return 400, "hub.topic and hub.callback must be http(s) URLs"
            if secret is not None and len(secret.encode("utf-8")) >= MAX_SECRET:
                return 400, "hub.secret must be shorter than 200 bytes"
            self._later(self.verify, mode, topic, callback, secret)
            return 202, "verifying"
        if mode == "publish":
            topic = form.get("hub.url") or form.get("hub.topic", "")
            if not web_url(topic):
                return 400, "hub.url must be an http(s) URL"
            with self._lock:
                self.log.pings.append(topic)
            self._later(self.distribute, topic)
            return 202, "distributing"
        return 400, f"unknown hub.mode {mode!r}"

    def _later(self, work: Callable[..., None], *args: object) -> None:
        def run() -> None:
            try:
                work(*args)
            except Exception as e:  # a test hub: record it; the test looks at the failures
                with self._lock:
                    self.log.failures.append(f"{type(e).__name__}: {e}")
            finally:
                with self._lock:
                    self._busy -= 1
                    self._lock.notify_all()

        with self._lock:
            self._busy += 1
        threading.Thread(target=run, daemon=True).start()

    def verify(self, mode: str, topic: str, callback: str, secret: str | None) -> None:
        """5.3: the callback must echo the challenge; only then is the (un)subscription kept."""
        challenge = secrets.token_urlsafe(16)
        query = urlencode({"hub.mode": mode, "hub.topic": topic, "hub.challenge": challenge,
                           "hub.lease_seconds": LEASE})
        url = callback + ("&" if urlsplit(callback).query else "?") + query
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:
                echoed = response.read().decode("utf-8", "replace")
        except (OSError, ValueError) as e:
            with self._lock:
                self.log.failures.append(f"verification of {callback} failed: {e}")
            return
        if echoed != challenge:
            with self._lock:
                self.log.failures.append(f"{callback} did not echo the challenge")
            return
        with self._lock:
            if mode == "subscribe":
                self.subscriptions[topic, callback] = secret
            else:
                self.subscriptions.pop((topic, callback), None)

    def distribute(self, topic: str) -> None:
        """7: fetch the topic once, POST it to every verified callback of it."""
        with self._lock:
            targets = [(cb, secret) for (t, cb), secret in self.subscriptions.items() if t == topic]
        if not targets:
            return
        with urllib.request.urlopen(topic, timeout=self.timeout) as response:  # no Accept-Encoding: the bytes
            body, media = response.read(), response.headers.get("Content-Type", "application/octet-stream")
        for callback, secret in targets:
            headers = {"Content-Type": media, "Link": f'<{self.url}>; rel="hub", <{topic}>; rel="self"'}
            if secret:
                headers["X-Hub-Signature"] = signature(secret, body)
            request = urllib.request.Request(callback, data=body, headers=headers, method="POST")
            with urllib.request.urlopen(request, timeout=self.timeout):
                pass
            with self._lock:
                self.log.delivered.append((topic, callback))

    def idle(self, timeout: float = 10.0) -> bool:
        """Wait until no accepted work is left; whether that happened within `timeout` seconds."""
        with self._lock:
            return self._lock.wait_for(lambda: self._busy == 0, timeout)

    def subscribed(self, topic: str, callback: str) -> bool:
        with self._lock:
            return (topic, callback) in self.subscriptions

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def web_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)
