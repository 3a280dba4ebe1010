"""Allow-list HTML sanitizing (nh3) and absolute URLs. The only module that imports nh3."""

from __future__ import annotations

from functools import cache
from html import escape
from urllib.parse import urljoin, urlsplit

import nh3

from publisher.load.source import to_uri, xml_clean

TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "dd", "del", "details", "dl", "dt",
    "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd",
    "li", "mark", "ol", "p", "pre", "q", "s", "samp", "small", "strong", "sub", "summary", "sup",
    "table", "tbody", "td", "tfoot", "th", "thead", "time", "tr", "u", "ul",
}
ATTRIBUTES = {
    "a": {"href", "title"}, "img": {"src", "alt", "title", "width", "height"},
    "abbr": {"title"}, "td": {"colspan", "rowspan"}, "th": {"colspan", "rowspan", "scope"},
    "time": {"datetime"}, "ol": {"start"}, "code": {"class"}, "q": {"cite"}, "blockquote": {"cite"},
}
URL_ATTRIBUTES = {"href", "src", "cite"}
SCHEMES = {"http", "https", "mailto"}


def absolute(base: str, page: str, value: str) -> str:
    """Make a relative URL absolute against the site (a bare #fragment against the page)."""
    value = value.strip()
    if value.startswith("#"):
        return page + value
    return value if urlsplit(value).scheme else urljoin(base, value)


@cache
def _cleaner(base: str) -> nh3.Cleaner:
    """One cleaner per site URL; bare #fragments are left for `sanitize` to point at the page."""

    def attribute_filter(tag: str, attr: str, value: str) -> str | None:
        """URLs absolute (a bare #fragment stays) and URIs, not IRIs; a URL that cannot be one is dropped."""
        if attr not in URL_ATTRIBUTES:
            return value
        try:
            return to_uri(value if value.lstrip().startswith("#") else absolute(base, base, value))
        except ValueError:
            return None

    return nh3.Cleaner(tags=TAGS, attributes=ATTRIBUTES, url_schemes=SCHEMES,
                       clean_content_tags={"script", "style"}, link_rel="noopener",
                       attribute_filter=attribute_filter, strip_comments=True)


def sanitize(html: str, base: str, page: str) -> str:
    """Allow-listed tags and attributes only: no script, event handlers, javascript: URLs, style; and no
    character XML 1.0 forbids (a reference such as &#x1; is decoded by the HTML parser, then removed:
    `load.source.find_bad_charrefs` has warned with its line)."""
    clean, _ = xml_clean(_cleaner(base).clean(html))
    return clean.replace('href="#', f'href="{escape(page)}#') if 'href="#' in clean else clean
