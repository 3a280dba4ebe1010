"""create_app: the Starlette application of `publisher serve`.

Routes: the output folder (static.py); GET/POST /subscribe (double opt-in: the answer is the same
page whatever the address's status, and the confirmation email goes out after the answer, so not even
the timing tells). The POST takes a form from any page, with no cookie and no token (the snippet of
`publisher subscribe-form`): a filled honeypot field gets the same answer and nothing is done; JSON for
`Accept: application/json`, CORS for site.url's origin (answers.py). GET /confirm?token=... (then the
welcome email, welcome.py); GET /unsubscribe?token=... (a page with one button) and
POST /unsubscribe?token=... (unsubscribes at once: the button, or an RFC 8058 one-click POST from a
mail provider with no cookie and no form token, since the signed token in the URL is the proof).

The app keeps nothing of its own but two in-memory rate limits (per process) and the signing key read
once from the state database; the database is opened for each request that needs it, in a worker
thread (on PostgreSQL a connection from the process's pool). So any number of `publisher serve`
processes, on any number of machines, may answer behind one proxy on one PostgreSQL state: a reader may
subscribe on one and confirm on another; only the rate limits count per process. Every failure is a
friendly page, never a traceback.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from publisher.config import Settings
from publisher.deliver.subscribers import (
    NeedsSmtpUtf8,
    Subscriber,
    SubscriberError,
    Subscribers,
    clean_name,
    normalize,
)
from publisher.deliver.tokens import list_id, signing_key, verify_token
from publisher.errors import PublisherError, StateError
from publisher.render import feed_formats
from publisher.render.templates import render
from publisher.store import Store, open_store
from publisher.web.answers import Answer, Cors, wants_json
from publisher.web.limits import RateLimiter, client_key
from publisher.web.options import WebOptions, web_options
from publisher.web.pages import Pages, read_form, readable_form
from publisher.web.signed import plain, read_confirm_token
from publisher.web.signup import EMAIL_TEMPLATE, confirmation_link, send_confirmation, send_welcome
from publisher.web.static import OutputFolder
from publisher.web.welcome import HTML_TEMPLATE as WELCOME_HTML
from publisher.web.welcome import TEXT_TEMPLATE as WELCOME_TEXT
from publisher.web.welcome import welcome_context

log = logging.getLogger(__name__)
T = TypeVar("T")
Clock = Callable[[], datetime]
HONEYPOT = "website"  # the hidden field of every subscribe form: people leave it empty, bots fill it in
MAX_EMAIL = 320
MAX_NAME = 100


class Service:
    """The request handlers, over the settings, the output folder and the state database."""

    def __init__(self, settings: Settings, options: WebOptions, clock: Clock) -> None:
        self.settings, self.options, self.clock = settings, options, clock
        formats = [f for f in feed_formats() if f.name in settings.feeds.formats]
        self.folder = OutputFolder(settings.paths.output, {f.filename: f.media_type for f in formats},
                                   site_url=settings.site.url, hubs=settings.feeds.hubs)
        self.pages = Pages(settings, [{"type": f.media_type, "url": settings.site.url + f.filename, "name": f.name}
                                      for f in formats])
        self.clients = RateLimiter(options.subscribe_limit, options.subscribe_window)
        self.recipients = RateLimiter(options.emails_per_address, options.email_window)
        self.list_id = list_id(settings.site.url)
        self.cors = Cors(settings.site.url)
        self._key: bytes | None = None
        self._key_lock = threading.Lock()

    # the state database, in a worker thread

    def _in_store(self, work: Callable[[Store], T]) -> T:
        try:
            with open_store(self.settings.paths.state) as store:
                return work(store)
        except PoolTimeout as e:  # every pooled connection busy for pool_timeout seconds
            raise StateError(f"{self.settings.paths.state}: no free connection to the state database",
                             "more requests at once than the pool holds; try again") from e

    async def store(self, work: Callable[[Store], T]) -> T:
        return await run_in_threadpool(self._in_store, work)

    def _load_key(self) -> bytes:
        with self._key_lock:
            key = self._key
            if key is None:
                key = self._in_store(lambda s: signing_key(self.settings, s))
                self._key = key
            return key

    async def key(self) -> bytes:
        if self._key is not None:
            return self._key
        return await run_in_threadpool(self._load_key)

    # the output folder

    async def static(self, request: Request) -> Response:
        response = await run_in_threadpool(self.folder.respond, request.path_params["path"], request.headers)
        return response or self.not_found()

    def not_found(self) -> Response:
        return self.pages.error(404, "Page not found", "There is nothing at this address.")

    # subscribing

    async def subscribe_form(self, request: Request) -> Response:
        return self._form(200)

    def _form(self, status: int, *, email: str = "", name: str = "", error: str = "",
              invalid: bool = False) -> Response:
        return self.pages.page("subscribe.html.j2", status, email=email, reader_name=name, error=error,
                               invalid=invalid, hours=self.options.confirm_hours)

    async def subscribe_preflight(self, request: Request) -> Response:
        return self.cors.preflight(request)

    async def subscribe(self, request: Request) -> Response:
        """A form posted from any page, with no cookie and no token (double opt-in protects the list):
        an HTML page, or JSON for `Accept: application/json`; CORS for site.url's origin."""
        answer = Answer(self.pages, self.options.confirm_hours, wants_json(request.headers.get("accept", "")))
        response = await self._subscribe(request, answer)
        response.headers.add_vary_header("Accept")
        return self.cors.apply(request, response)

    async def _subscribe(self, request: Request, answer: Answer) -> Response:
        now = self.clock()
        client = client_key(request.client.host if request.client else None)
        wait = self.clients.hit(client, now.timestamp())
        if wait:
            minutes = max(1, math.ceil(wait / 60))
            return answer.refused(429, "Too many attempts", f"Please try again in {minutes} minute"
                                  f"{'s' if minutes != 1 else ''}.", headers={"Retry-After": str(math.ceil(wait))})
        if not readable_form(request):
            return answer.refused(415, "That did not work", "Please send the form as a plain HTML form "
                                  "(application/x-www-form-urlencoded) or as a JSON object.")
        form = await read_form(request)
        if form is None:
            return answer.refused(413, "That was too much", "The form sent more than an address and a name.")
        email, name = form.get("email", "").strip()[:MAX_EMAIL], clean_name(form.get("name", ""))[:MAX_NAME]
        try:
            identity, address = normalize(email, smtputf8=self.settings.email.smtputf8)
        except NeedsSmtpUtf8:
            return answer.invalid(email, name, "We cannot send to an address with non-ASCII characters before "
                                  "the @. Please use another address.")
        except SubscriberError:
            return answer.invalid(email, name, "Please enter an email address such as reader@example.com.")
        if form.get(HONEYPOT, "").strip():
            log.info("subscribe: the hidden %r field was filled (a bot?) by client %s: nothing done", HONEYPOT,
                     client)
            return answer.accepted(address)
        subscriber = await self.store(lambda s: Subscribers(s.conn).request(identity, address, name, now))
        task = None
        if subscriber is not None and not self.recipients.hit(identity, now.timestamp()):
            link, expires = confirmation_link(self.settings, await self.key(), subscriber.id, now,
                                              self.options.confirm_hours)
            task = BackgroundTask(send_confirmation, self.settings, subscriber, link, expires, now)
        return answer.accepted(address, background=task)

    async def confirm(self, request: Request) -> Response:
        found = read_confirm_token(await self.key(), self.list_id, request.query_params.get("token", ""))
        if found is None:
            return self.bad_link("confirmation")
        now = self.clock()
        if now.timestamp() > found.expires:
            hours = self.options.confirm_hours
            return self.pages.error(410, "This link has expired", f"Confirmation links work for {hours} hour"
                                    f"{'' if hours == 1 else 's'}. Subscribe again and you will get a new one.")
        outcome, subscriber = await self.store(lambda s: self._confirm(s, found.subscriber_id, found.issued, now))
        if outcome == "unknown":
            return self.bad_link("confirmation")
        if outcome == "stale":
            return self.pages.error(410, "This link is no longer valid", "You unsubscribed after this link was "
                                    "sent, so it does not subscribe you again. The subscribe form does.")
        task = None
        if outcome == "confirmed" and subscriber is not None and self.settings.web.welcome:
            task = BackgroundTask(send_welcome, self.settings, subscriber, await self.key(), now)
        return self.pages.page("confirm.html.j2", already=outcome == "already", background=task)

    def _confirm(self, store: Store, subscriber_id: str, issued: int,
                 now: datetime) -> tuple[str, Subscriber | None]:
        """The outcome of the confirmation and, when it activated the reader, who (for the welcome email)."""
        subscribers = Subscribers(store.conn)
        outcome = subscribers.confirm(subscriber_id, issued, now)
        return outcome, subscribers.by_id(subscriber_id) if outcome == "confirmed" else None

    # unsubscribing

    async def _unsubscriber(self, request: Request) -> str | None:
        token = request.query_params.get("token", "")
        return verify_token(await self.key(), self.list_id, token) if plain(token) else None

    async def unsubscribe_page(self, request: Request) -> Response:
        if await self._unsubscriber(request) is None:
            return self.bad_link("unsubscribe")
        return self.pages.page("unsubscribe.html.j2", token=request.query_params["token"])

    async def unsubscribe(self, request: Request) -> Response:
        """The button of the page, or a one-click POST (RFC 8058): either way at once, and again is fine."""
        subscriber_id = await self._unsubscriber(request)
        if subscriber_id is None:
            return self.bad_link("unsubscribe")
        now = self.clock()
        await self.store(lambda s: Subscribers(s.conn).unsubscribe_id(subscriber_id, now))
        return self.pages.page("unsubscribed.html.j2")

    def bad_link(self, kind: str) -> Response:
        return self.pages.error(400, f"This {kind} link does not work", "It may have been cut short or changed on "
                                "the way. Copy the whole link from the email into the address bar, or use the "
                                "newest email.", link=kind == "confirmation")

    # errors

    async def http_error(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 404:
            return self.not_found()
        headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else {}
        return self.pages.error(status, "That did not work", "This address does not take that kind of request.",
                                headers=headers)

    async def client_gone(self, request: Request, exc: Exception) -> Response:
        """The client closed the connection before the whole request arrived (ClientDisconnect while the
        body is read): nobody is left to answer. One short line (shown with -v); the response goes nowhere."""
        log.info("%s %s: the client disconnected before sending the whole request", request.method,
                 request.url.path)
        return Response(status_code=400)

    async def busy(self, request: Request, exc: Exception) -> Response:
        """A PublisherError (the state database busy or unusable): one line, and a page asking to retry."""
        log.error("%s %s: %s", request.method, request.url.path, exc)
        return self._error_page(503, "Please try again", "The service is busy. Please try again in a minute.")

    async def server_error(self, request: Request, exc: Exception) -> Response:
        """A bug: one line here; Starlette re-raises it after this page, and uvicorn logs its traceback once."""
        log.error("%s %s failed: %r", request.method, request.url.path, exc)
        return self._error_page(500, "Something went wrong", "Something went wrong on our side. Please try again "
                                "later.")

    def _error_page(self, status: int, title: str, message: str) -> Response:
        try:
            return self.pages.error(status, title, message, link=False)
        except Exception:  # the error page itself is broken (a site template): plain text then
            return PlainTextResponse(message, status)

    def samples(self) -> None:
        """Render every page once with sample values: a broken site template fails at start, not per reader."""
        pages = self.pages
        pages.page("subscribe.html.j2", email="", reader_name="", error="e", invalid=True, hours=1)
        pages.page("subscribed.html.j2", address="reader@example.com", hours=1)
        pages.page("confirm.html.j2", already=False)
        pages.page("unsubscribe.html.j2", token="x.y")
        pages.page("unsubscribed.html.j2")
        pages.error(404, "t", "m")
        pages.text(EMAIL_TEMPLATE, link=self.settings.site.url, address="reader@example.com", hours=1, expires="e")
        for template in (WELCOME_TEXT, WELCOME_HTML):
            for name in ("", "Reader"):
                render(self.settings.paths.templates, template, **welcome_context(self.settings, name))


def create_app(settings: Settings, *, options: WebOptions | None = None, clock: Clock | None = None) -> Starlette:
    """The web service of a site. `options` default to the [web] settings (web_options); `clock` to the
    real time (tests pass another to see links expire)."""
    service = Service(settings, options or web_options(settings), clock or (lambda: datetime.now(UTC)))
    routes = [
        Route("/subscribe", service.subscribe_form, methods=["GET"]),
        Route("/subscribe", service.subscribe, methods=["POST"]),
        Route("/subscribe", service.subscribe_preflight, methods=["OPTIONS"]),
        Route("/confirm", service.confirm, methods=["GET"]),
        Route("/unsubscribe", service.unsubscribe_page, methods=["GET"]),
        Route("/unsubscribe", service.unsubscribe, methods=["POST"]),
        Route("/{path:path}", service.static, methods=["GET"]),
    ]
    # Handlers by class run inside the app (Starlette's ExceptionMiddleware): the exception ends there.
    # The one for Exception runs in ServerErrorMiddleware, which re-raises to the server after the page.
    return Starlette(routes=routes, exception_handlers={HTTPException: service.http_error,
                                                        ClientDisconnect: service.client_gone,
                                                        PublisherError: service.busy,
                                                        Exception: service.server_error})


def preflight(settings: Settings) -> None:
    """What `serve` checks before it listens: the state database opens (and has a signing key) and every
    page template renders. PublisherError (StateError, TemplateProblem) otherwise."""
    with open_store(settings.paths.state) as store:
        signing_key(settings, store)
    Service(settings, web_options(settings), lambda: datetime.now(UTC)).samples()
