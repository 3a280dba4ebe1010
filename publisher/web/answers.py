"""How POST /subscribe answers a form embedded anywhere: an HTML page for a browser's form, JSON for a
script that asks for it (`Accept: application/json`), and CORS for the origin of site.url only.

A plain HTML form posted from another site needs no CORS (it is a navigation, not a script reading the
answer); a script on the site's own origin (site.url's scheme, host and port) may read the JSON answer.
Other origins get no Access-Control-Allow-Origin, so their scripts cannot read it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from publisher.web.pages import HEADERS, Pages

DEFAULT_PORTS = {"http": 80, "https": 443}
JSON_HEADERS = {k: v for k, v in HEADERS.items() if k in ("Cache-Control", "X-Content-Type-Options",
                                                                "Referrer-Policy")}
PREFLIGHT = {"Access-Control-Allow-Methods": "POST", "Access-Control-Allow-Headers": "Content-Type, Accept",
             "Access-Control-Max-Age": "86400"}


def origin_of(url: str) -> str | None:
    """The serialised origin of a URL (RFC 6454): scheme://host[:port], lower case, no default port;
    None for something that is not an http(s) URL with a host."""
    try:
        parts = urlsplit(url.strip())
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not host:
        return None
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}" + (f":{port}" if port and port != DEFAULT_PORTS[scheme] else "")


def _quality(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


def wants_json(accept: str) -> bool:
    """True when the Accept header prefers application/json to text/html (an explicit, higher q);
    browsers' form posts ask for text/html first, and no Accept at all means HTML."""
    json_q = html_q = 0.0
    for item in accept.split(","):
        kind, _, params = item.partition(";")
        kind = kind.strip().lower()
        if kind == "application/json":
            json_q = max(json_q, _quality(params))
        elif kind in ("text/html", "application/xhtml+xml"):
            html_q = max(html_q, _quality(params))
    return json_q > 0 and json_q >= html_q


class Cors:
    """Access-Control-Allow-Origin for the origin of site.url, and for no other."""

    def __init__(self, site_url: str) -> None:
        self.origin = origin_of(site_url)

    def allowed(self, request: Request) -> str | None:
        origin = request.headers.get("origin")
        return origin if origin and self.origin and origin_of(origin) == self.origin else None

    def apply(self, request: Request, response: Response) -> Response:
        response.headers.add_vary_header("Origin")
        origin = self.allowed(request)
        if origin:
            response.headers["Access-Control-Allow-Origin"] = origin
        return response

    def preflight(self, request: Request) -> Response:
        """OPTIONS /subscribe: the allowed method and headers for site.url's origin; nothing for others."""
        response = Response(status_code=204, headers=PREFLIGHT if self.allowed(request) else {})
        return self.apply(request, response)


def json_answer(status: int, message: str, *, field: str | None = None, headers: dict[str, str] | None = None,
                background: BackgroundTask | None = None) -> JSONResponse:
    """`{"ok": true, "message": ...}` for a success, `{"ok": false, "error": ..., "field": ...}` otherwise."""
    body: dict[str, object] = {"ok": True, "message": message} if status < 400 else {"ok": False, "error": message}
    if field and status >= 400:
        body["field"] = field
    return JSONResponse(body, status_code=status, headers={**JSON_HEADERS, **(headers or {})},
                        background=background)


class Answer:
    """The answers of POST /subscribe, as the page a browser's form gets or as JSON."""

    def __init__(self, pages: Pages, hours: int, as_json: bool) -> None:
        self.pages, self.hours, self.as_json = pages, hours, as_json

    def refused(self, status: int, title: str, message: str, *, headers: dict[str, str] | None = None) -> Response:
        if self.as_json:
            return json_answer(status, message, headers=headers)
        return self.pages.error(status, title, message, link=False, headers=headers)

    def invalid(self, email: str, name: str, message: str) -> Response:
        """The address is not one we can send to: the form again, with the message by the field."""
        if self.as_json:
            return json_answer(400, message, field="email")
        return self.pages.page("subscribe.html.j2", 400, email=email, reader_name=name, error=message,
                               invalid=True, hours=self.hours)

    def accepted(self, address: str, background: BackgroundTask | None = None) -> Response:
        """The same answer for every address (new, pending, active, unsubscribed; or a bot's)."""
        if not self.as_json:
            return self.pages.page("subscribed.html.j2", address=address, hours=self.hours, background=background)
        hours = f"{self.hours} hour{'' if self.hours == 1 else 's'}"
        return json_answer(200, f"Check your inbox: if {address} can get email, a message with a confirmation "
                           f"link is on its way to it. The link works for {hours}.", background=background)
