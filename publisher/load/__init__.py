"""Load: one reader per source format, picked by file extension (imported only when needed).

`read` is the load boundary: every Document leaving it has passed `normalise`, the one place where
text values are made safe for XML, SQLite and the feed libraries (see `source.xml_clean`).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from zoneinfo import ZoneInfo

from publisher.errors import ArticleError
from publisher.load.source import (
    check_image,
    check_size,
    check_slug,
    decode,
    forget_folders,
    plain_title,
    removed_warning,
    resolve_inside,
    scan_checked,
    xml_clean,
)
from publisher.models import Document, Problem, SourceFile

READERS = {".txt": "publisher.load.text", ".md": "publisher.load.markdown", ".markdown": "publisher.load.markdown"}
EXTENSIONS = frozenset(READERS)
PROSE = frozenset({"title", "summary", "author", "tags", "references"})  # whitespace collapsed

__all__ = ["EXTENSIONS", "READERS", "forget_folders", "normalise", "read", "scan_checked"]


def read(source: SourceFile, tz: ZoneInfo) -> Document:
    """Read, parse and normalise one file inside the articles folder. Raises ArticleError naming the file
    (and line) when it is unusable; a file that vanished since the scan is an ArticleError of severity
    "warning"."""
    check_size(source.rel, source.size)
    real = resolve_inside(source)
    try:
        with open(real, "rb") as handle:
            data = handle.read()
    except FileNotFoundError as e:
        raise ArticleError(source.rel, "file vanished before it could be read (deleted or renamed during "
                           "the run)", "nothing to do: the next run will not look for it",
                           severity="warning") from e
    except OSError as e:
        raise ArticleError(source.rel, f"file cannot be read: {e.strerror}", "check its permissions") from e
    body, warnings = decode(source.rel, data)
    reader = importlib.import_module(READERS[os.path.splitext(source.path)[1].lower()])
    return normalise(reader.parse(source.rel, body, tz, warnings))


class _Fields:
    """Cleans the values of one Document, collecting the warnings (each naming the field's line)."""

    def __init__(self, doc: Document) -> None:
        self.doc, self.lines, self.warnings = doc, dict(doc.lines), list(doc.warnings)

    def text(self, name: str, value: str) -> str:
        """The one rule (`xml_clean`), then whitespace: collapsed in prose values, stripped in names."""
        clean, removed = xml_clean(value)
        if removed:
            self.warnings.append(removed_warning(self.doc.source, removed, self.lines.get(name), name))
        return " ".join(clean.split()) if name in PROSE else clean.strip()

    def required(self, name: str, value: str) -> str:
        clean = plain_title(self.text(name, value)) if name == "title" else self.text(name, value)
        if not clean:
            removed = "characters XML 1.0 forbids or discourages" + (" and HTML tags" if name == "title" else "")
            raise ArticleError(self.doc.source, f"'{name}' is empty once {removed} are removed",
                               f"write the {name} in plain text", self.lines.get(name))
        return check_slug(self.doc.source, clean, self.lines.get(name)) if name == "slug" else clean

    def optional(self, name: str, value: str | None) -> str | None:
        clean = self.text(name, value) if value is not None else ""
        if name == "image" and clean:
            image, problem = check_image(self.doc.source, clean, self.lines.get(name))
            self.warnings += [problem] if problem else []
            return image
        if name == "link" and clean:
            return self.link(clean)
        return clean or None

    def link(self, value: str) -> str | None:
        """The front matter `link` (the original): an absolute http(s) URL, else left out with a warning."""
        uri, _ = check_image(self.doc.source, value, self.lines.get("link"))
        if uri is None or not uri.startswith(("http://", "https://")):
            self.warnings.append(Problem(self.doc.source, f"link {value[:100]!r} left out: not an http(s) URL",
                                         "write link: https://example.org/the-original", self.lines.get("link"),
                                         "warning"))
            return None
        return uri

    def items(self, name: str, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(clean for value in values if (clean := self.text(name, value))))


def normalise(doc: Document) -> Document:
    """The load boundary's one pass over every text value of a Document: XML-illegal characters and
    lone surrogates removed (a warning naming the file and line), the title made plain text, the image
    made a URI. A required value with nothing left (title, slug, guid) raises ArticleError. The body needs
    no pass here: its text was cleaned when the file was decoded, and its HTML is cleaned after sanitizing."""
    f = _Fields(doc)
    return dataclasses.replace(
        doc, title=f.required("title", doc.title), slug=f.required("slug", doc.slug),
        guid=f.required("guid", doc.guid) if doc.guid is not None else None,
        summary=f.optional("summary", doc.summary), author=f.optional("author", doc.author),
        image=f.optional("image", doc.image), tags=f.items("tags", doc.tags),
        link=f.optional("link", doc.link), image_alt=f.optional("image_alt", doc.image_alt),
        references=f.items("references", doc.references),
        warnings=tuple(dict.fromkeys(f.warnings)))
