"""Reader for Markdown with YAML front matter (rendered by markdown-it-py, CommonMark + tables)."""

from __future__ import annotations

from functools import cache
from zoneinfo import ZoneInfo

from markdown_it import MarkdownIt

from publisher.errors import ArticleError
from publisher.load import frontmatter
from publisher.load.source import check_slug, content_hash, find_bad_charrefs, find_unsafe, slug_from_path
from publisher.models import Document, Problem


@cache
def render_markdown(text: str) -> str:
    """Markdown (CommonMark with the project's options) as HTML, not yet sanitized."""
    html: str = _renderer().render(text)
    return html


def _renderer() -> MarkdownIt:
    # Raw HTML and every link are let through here: the sanitizer (enrich) is the one place that
    # decides, and drops javascript: URLs instead of markdown-it printing them as literal text.
    md = MarkdownIt("commonmark", {"html": True, "typographer": False}).enable(["table", "strikethrough"])
    md.validateLink = lambda url: True  # type: ignore[method-assign]
    return md


def _first_heading(body: str) -> tuple[str | None, str]:
    """A leading '# Title' line serves as the title when the front matter has none."""
    lines = body.lstrip("\n").split("\n", 1)
    if lines[0].startswith("# "):
        return lines[0][2:].strip(), lines[1] if len(lines) > 1 else ""
    return None, body


def parse(rel: str, text: str, tz: ZoneInfo, warnings: list[Problem]) -> Document:
    """Markdown + front matter -> Document."""
    head, body, body_line = frontmatter.split(rel, text)
    values, lines, unknown = frontmatter.convert(rel, frontmatter.parse_yaml(rel, head or ""), tz)
    warnings += [Problem(rel, message, "", 1, "warning") for message in unknown]
    title = values.get("title") or None
    if title is None:
        lines["title"] = body_line + len(body) - len(body.lstrip("\n"))
        title, body = _first_heading(body)
    title = " ".join((title or "").split())  # one line, whatever the YAML held
    if not title:
        raise ArticleError(rel, "no title", "add 'title: ...' to the front matter", lines.get("title", 1))
    if not body.strip():
        raise ArticleError(rel, "no text after the front matter", "write the article below the --- line",
                           body_line)
    warnings += find_unsafe(rel, body, body_line) + find_bad_charrefs(rel, body, body_line)
    slug = values.get("slug") or slug_from_path(rel)
    if "related" in lines:
        lines["references"] = lines["related"]
    return Document(
        source=rel, slug=check_slug(rel, slug, lines.get("slug")), title=title,
        body_html=_renderer().render(body), content_hash=content_hash(text),
        date=values.get("date"), updated=values.get("updated"), author=values.get("author") or None,
        summary=values.get("summary") or None, tags=values.get("tags", ()),
        image=values.get("image") or None, draft=values.get("draft", False),
        references=values.get("related", ()), guid=values.get("guid") or None,
        link=values.get("link") or None, image_alt=values.get("image_alt") or None,
        warnings=tuple(warnings), lines=tuple(lines.items()),
    )
