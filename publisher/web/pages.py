"""The HTML pages of the web service, from the site's templates (templates/*.html.j2, overridable),
with the headers every page carries, and the reading of a small form body (urlencoded, or a JSON object)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import HTMLResponse

from publisher.config import Settings
from publisher.render.templates import render

FORM_LIMIT = 16_384  # bytes of a form body
FORM_FIELDS = 20
PAGES = ("subscribe.html.j2", "subscribed.html.j2", "confirm.html.j2", "unsubscribe.html.j2",
         "unsubscribed.html.j2", "error.html.j2")
HEADERS = {
    # The pages carry tokens in their URL: no Referer to other sites, no caching, no framing
    # (clickjacking of the buttons), no script at all.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}


class Pages:
    def __init__(self, settings: Settings, feeds: list[dict[str, str]]) -> None:
        self.settings = settings
        self.feeds = feeds  # {"type", "url", "name"} of each feed, for the autodiscovery links

    def text(self, template: str, **context: Any) -> str:
        return render(self.settings.paths.templates, template, site=self.settings.site, feeds=self.feeds,
                      **context)

    def page(self, template: str, status: int = 200, *, headers: dict[str, str] | None = None,
             background: BackgroundTask | None = None, **context: Any) -> HTMLResponse:
        return HTMLResponse(self.text(template, **context), status_code=status, headers={**HEADERS, **(headers or {})},
                            background=background)

    def error(self, status: int, title: str, message: str, *, link: bool = True,
              headers: dict[str, str] | None = None) -> HTMLResponse:
        """A friendly page for anything that went wrong; `link` offers the subscribe form."""
        return self.page("error.html.j2", status, headers=headers, title=title, message=message,
                         subscribe_link=link)


URLENCODED = "application/x-www-form-urlencoded"
JSON = "application/json"


def body_kind(request: Request) -> str:
    """The media type of the request body, lower case, without parameters ("" when there is none)."""
    return request.headers.get("content-type", "").partition(";")[0].strip().lower()


def readable_form(request: Request) -> bool:
    """A body read_form understands: a plain HTML form (urlencoded), a JSON object, or none at all."""
    return body_kind(request) in ("", URLENCODED, JSON)


async def read_form(request: Request, limit: int = FORM_LIMIT) -> dict[str, str] | None:
    """The fields of an application/x-www-form-urlencoded body (the first of repeated names) or of a JSON
    object (its string values); {} for another kind of body; None when the body is larger than `limit`."""
    kind = body_kind(request)
    if kind not in (URLENCODED, JSON):
        return {}
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    text = body.decode("utf-8", "replace")
    return _json_fields(text) if kind == JSON else _form_fields(text)


def _form_fields(text: str) -> dict[str, str]:
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=FORM_FIELDS)
    except ValueError:
        return {}
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)
    return fields


def _json_fields(text: str) -> dict[str, str]:
    try:
        found = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(found, dict) or len(found) > FORM_FIELDS:
        return {}
    return {str(k): v for k, v in found.items() if isinstance(v, str)}
