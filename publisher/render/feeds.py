"""RSS 2.0 and Atom 1.0 through feedgen (the only module that imports it).

feedgen 1.0.0 quirks handled here: add_entry prepends unless told to append; `updated` and
lastBuildDate default to now (always set from the articles); Atom entry links lose their
attributes (feedgen #135, mended after rendering); the RSS channel <link> is the last link added;
media:content goes into a media:group unless told `group=None` (a group of one is invalid: W3C
"MediaGroupWithoutAlternatives"), so the image is a media:content directly in the item.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from urllib.parse import quote, urlsplit

from feedgen.entry import FeedEntry
from feedgen.feed import FeedGenerator
from lxml import etree

from publisher import __version__
from publisher.config import SiteSettings
from publisher.errors import OutputError
from publisher.models import Article
from publisher.render import FeedContext, uri

ATOM_NS = "{http://www.w3.org/2005/Atom}"


def _feed(ctx: FeedContext, self_url: str, *, atom: bool = False) -> FeedGenerator:
    site = ctx.site
    fg = FeedGenerator()
    fg.load_extension("dc", atom=False, rss=True)
    fg.load_extension("media", atom=True, rss=True)
    fg.id(site.url)
    fg.title(ctx.feed_title)
    fg.subtitle(site.description or site.title)
    fg.language(site.language)
    fg.author({"name": ctx.author})
    fg.generator("publisher", version=__version__, uri="https://pypi.org/project/publisher/")
    fg.link(href=self_url, rel="self")
    for hub in ctx.hubs if atom else ():  # RSS: feedgen writes only the self link; see _add_rss_hubs
        fg.link(href=hub, rel="hub")
    fg.link(href=site.url, rel="alternate")  # last: feedgen uses it for the RSS channel <link>
    fg.updated(ctx.updated)
    fg.lastBuildDate(ctx.updated)
    for article in ctx.articles:
        _entry(fg.add_entry(order="append"), article, ctx.author, atom_id(article, site) if atom else None)
    return fg


def body_html(article: Article) -> str:
    """The article's HTML; a body that sanitised to nothing becomes its summary (else title) as a paragraph."""
    if article.html.strip():
        return article.html
    text = article.entry.summary.strip() or article.entry.title
    return f"<p>{html.escape(text, quote=False)}</p>"


ABSOLUTE_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[!#-;=?-\[\]_a-z~]+")  # scheme ':' URI characters, no space


def atom_id(article: Article, site: SiteSettings) -> str:
    """Atom's <id> must be an absolute URI (RFC 4287 4.2.6). The state's ids are (urn:uuid:...), and so is a
    front-matter guid written as one; any other guid ('0123', 'same') becomes a tag: URI (RFC 4151) of the
    site's host and the day the article was first seen, both fixed, so the id never changes. RSS and JSON
    Feed, where an id may be any string, keep the guid as written."""
    ident = article.identity.id
    if ABSOLUTE_URI.fullmatch(ident):
        return ident
    host = urlsplit(site.url).hostname or "localhost"
    return f"tag:{host},{article.identity.first_seen:%Y-%m-%d}:{quote(ident, safe='')}"


def _entry(fe: FeedEntry, article: Article, default_author: str, atom_uri: str | None) -> None:
    """One item; `atom_uri` is its <id> in the Atom feed (feedgen's id() and guid() each set both ids)."""
    entry = article.entry
    fe.guid(article.identity.id, permalink=False)
    if atom_uri is not None:
        fe.id(atom_uri)
    fe.title(entry.title)
    fe.link(href=uri(article.url), rel="alternate", type="text/html")
    fe.published(article.identity.published)
    fe.updated(article.modified)
    fe.content(body_html(article), type="html")
    if entry.summary.strip():
        fe.summary(html.escape(entry.summary, quote=False), type="html")
    author = entry.author or default_author
    fe.author({"name": author})
    fe.dc.dc_creator(author)
    if entry.image:
        fe.media.content(url=entry.image, medium="image", group=None)
    for tag in entry.tags:
        fe.category(term=tag)


def render_rss(ctx: FeedContext) -> bytes:
    data: bytes = _feed(ctx, ctx.feed_urls["rss"]).rss_str(pretty=True)
    return _add_rss_hubs(data, ctx.hubs) if ctx.hubs else data


def _add_rss_hubs(data: bytes, hubs: Sequence[str]) -> bytes:
    """WebSub discovery in RSS: an <atom:link rel="hub"> per hub, after the channel's rel="self" link."""
    root = etree.fromstring(data)
    channel = root.find("channel")
    selflink = None if channel is None else channel.find(f"{ATOM_NS}link[@rel='self']")
    if channel is None or selflink is None:
        raise OutputError("the RSS feed has no self link to put the WebSub hubs after", "report this bug")
    at = channel.index(selflink)
    for offset, hub in enumerate(hubs, 1):
        link = etree.Element(f"{ATOM_NS}link", href=hub, rel="hub")
        link.tail = selflink.tail
        channel.insert(at + offset, link)
    out: bytes = etree.tostring(root, pretty_print=True, xml_declaration=True, encoding="UTF-8")
    return out


def render_atom(ctx: FeedContext) -> bytes:
    data: bytes = _feed(ctx, ctx.feed_urls["atom"], atom=True).atom_str(pretty=True)
    root = etree.fromstring(data)
    for link in root.iter(f"{ATOM_NS}entry"):
        for element in link.iter(f"{ATOM_NS}link"):
            element.set("rel", "alternate")
            element.set("type", "text/html")
    out: bytes = etree.tostring(root, pretty_print=True, xml_declaration=True, encoding="UTF-8")
    return out
