"""RSS 2.0 and Atom 1.0 through feedgen (the only module that imports it).

One feedgen generator serves both formats of a document (its entries are built once; the links and ids
that differ are set before each format is written). feedgen 1.0.0 quirks handled here: add_entry
prepends unless told to append; `updated` and lastBuildDate default to now (always set from the
articles); Atom entry links lose their attributes (feedgen #135, mended after rendering); the RSS
channel <link> is the last link added; media:content goes into a media:group unless told `group=None`
(a group of one is invalid: W3C "MediaGroupWithoutAlternatives"), so the image is a media:content
directly in the item.
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
FH_NS = "{http://purl.org/syndication/history/1.0}"  # RFC 5005 fh:archive


def _feed(ctx: FeedContext) -> FeedGenerator:
    """One generator for both XML formats of a document (built once: the articles are most of the work);
    `_for_rss` and `_for_atom` set what differs (the links, the entries' ids)."""
    site = ctx.site
    fg = FeedGenerator()
    fg.load_extension("dc", atom=False, rss=True)
    fg.load_extension("media", atom=True, rss=True)
    fg.id(ctx.feed_id or site.url)
    fg.title(ctx.feed_title)
    fg.subtitle(site.description or site.title)
    fg.language(site.language)
    fg.author({"name": ctx.author})
    fg.generator("publisher", version=__version__, uri="https://pypi.org/project/publisher/")
    fg.updated(ctx.updated)
    fg.lastBuildDate(ctx.updated)
    for article in ctx.articles:
        _entry(fg.add_entry(order="append"), article, ctx.author)
    return fg


def _generator(ctx: FeedContext) -> FeedGenerator:
    """The document's generator, made by the first XML format rendered and reused by the other."""
    built = ctx.shared.get("feedgen")
    if not isinstance(built, FeedGenerator):
        built = ctx.shared["feedgen"] = _feed(ctx)
    return built


def _for_rss(ctx: FeedContext) -> FeedGenerator:
    """The generator set for RSS: its self link (feedgen writes no other atom:link; see _add_rss_links)
    and each item's guid as the state keeps it."""
    fg = _generator(ctx)
    fg.link([{"href": ctx.feed_urls["rss"], "rel": "self"}, {"href": ctx.site.url, "rel": "alternate"}],
            replace=True)  # the site last: feedgen uses the last link for the RSS channel <link>
    for fe, article in zip(fg.entry(), ctx.articles, strict=True):
        fe.guid(article.identity.id, permalink=False)
    return fg


def _for_atom(ctx: FeedContext) -> FeedGenerator:
    """The generator set for Atom: self, hub and site links, and each entry's id as an absolute URI
    (feedgen's id() and guid() each set both ids, so the format being rendered sets its own)."""
    fg = _generator(ctx)
    links = [{"href": ctx.feed_urls["atom"], "rel": "self"}, *({"href": hub, "rel": "hub"} for hub in ctx.hubs),
             {"href": ctx.site.url, "rel": "alternate"}]
    fg.link(links, replace=True)
    for fe, article in zip(fg.entry(), ctx.articles, strict=True):
        fe.id(atom_id(article, ctx.site))
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


def _entry(fe: FeedEntry, article: Article, default_author: str) -> None:
    """One item, all but its id (set per format: _for_rss, _for_atom)."""
    entry = article.entry
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


def history_links(ctx: FeedContext, fmt: str) -> list[tuple[str, str]]:
    """(rel, href) of the RFC 5005 links of this format's document: current, prev-archive, next-archive."""
    history = ctx.history
    if history is None:
        return []
    rels = (("current", history.current), ("prev-archive", history.prev), ("next-archive", history.next))
    return [(rel, urls[fmt]) for rel, urls in rels if fmt in urls]


def _add_links(parent: etree._Element, after: etree._Element, links: Sequence[tuple[str, str]],
               archive: bool) -> None:
    """<atom:link href rel> elements right after `after` (a child of `parent`), then <fh:archive/> for an
    archive document (RFC 5005 section 4)."""
    at = parent.index(after)
    added: list[etree._Element] = []
    for rel, href in links:
        added.append(etree.Element(f"{ATOM_NS}link", href=href, rel=rel))
    if archive:
        added.append(etree.Element(f"{FH_NS}archive"))
    for offset, element in enumerate(added, 1):
        element.tail = after.tail
        parent.insert(at + offset, element)


def _serialize(root: etree._Element, archive: bool) -> bytes:
    if archive:  # the fh prefix declared once, on the root element
        etree.cleanup_namespaces(root, top_nsmap={"fh": FH_NS[1:-1]})
    out: bytes = etree.tostring(root, pretty_print=True, xml_declaration=True, encoding="UTF-8")
    return out


def render_rss(ctx: FeedContext) -> bytes:
    data: bytes = _for_rss(ctx).rss_str(pretty=True)
    links = [("hub", hub) for hub in ctx.hubs] + history_links(ctx, "rss")
    archive = ctx.history is not None and ctx.history.archive
    return _add_rss_links(data, links, archive) if links or archive else data


def _add_rss_links(data: bytes, links: Sequence[tuple[str, str]], archive: bool) -> bytes:
    """WebSub discovery and RFC 5005 links in RSS: an <atom:link> each (rel="hub", "current",
    "prev-archive", "next-archive"), after the channel's rel="self" link; <fh:archive/> for an archive."""
    root = etree.fromstring(data)
    channel = root.find("channel")
    selflink = None if channel is None else channel.find(f"{ATOM_NS}link[@rel='self']")
    if channel is None or selflink is None:
        raise OutputError("the RSS feed has no self link to put the hub and archive links after",
                          "report this bug")
    _add_links(channel, selflink, links, archive)
    return _serialize(root, archive)


def render_atom(ctx: FeedContext) -> bytes:
    data: bytes = _for_atom(ctx).atom_str(pretty=True)
    root = etree.fromstring(data)  # feedgen's tree has names without a namespace: its output is read back
    for link in root.iter(f"{ATOM_NS}entry"):
        for element in link.iter(f"{ATOM_NS}link"):
            element.set("rel", "alternate")
            element.set("type", "text/html")
    links = history_links(ctx, "atom")
    archive = ctx.history is not None and ctx.history.archive
    if links or archive:
        last = root.findall(f"{ATOM_NS}link")[-1]  # after the feed's own links (self, hubs, alternate)
        _add_links(root, last, links, archive)
    return _serialize(root, archive)
