"""Reading article files: find them, decode them, and name them (slug, content hash)."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from publisher.errors import ArticleError, ConfigError
from publisher.models import Problem, SourceFile

MAX_ARTICLE_BYTES = 10 * 1024 * 1024
# Characters XML 1.0 forbids (lone surrogates cannot survive UTF-8 decoding).
XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
UNSAFE = re.compile(r"<\s*(script|style|iframe|object|embed|form)\b|\son\w+\s*=|javascript\s*:", re.I)
SLUG_OK = re.compile(r"[^\W_][\w-]*")


def scan(folder: Path, extensions: frozenset[str]) -> list[SourceFile]:
    """Every article file below `folder`, sorted by relative path (hidden files and folders skipped)."""
    if not folder.is_dir():
        raise ConfigError(f"{folder}: articles folder not found",
                          "create it, or set [paths] articles in publisher.toml")
    found: list[SourceFile] = []
    pending = [(str(folder), "")]
    while pending:
        directory, prefix = pending.pop()
        with os.scandir(directory) as listing:
            for item in listing:
                if item.name.startswith("."):
                    continue
                if item.is_dir():
                    pending.append((item.path, f"{prefix}{item.name}/"))
                elif os.path.splitext(item.name)[1].lower() in extensions and item.is_file():
                    st = item.stat()
                    found.append(SourceFile(item.path, prefix + item.name, st.st_mtime_ns, st.st_size))
    found.sort(key=lambda f: f.rel)
    return found


def check_size(rel: str, size: int) -> None:
    """Refuse an article too large to be one (checked before the file is read)."""
    if size > MAX_ARTICLE_BYTES:
        raise ArticleError(rel, f"file is {size / 2**20:.1f} MB, over the "
                           f"{MAX_ARTICLE_BYTES // 2**20} MB limit for one article",
                           "split it into smaller articles")


def decode(rel: str, data: bytes) -> tuple[str, list[Problem]]:
    """Bytes -> text with LF line ends and no XML-illegal characters (removed with a warning)."""
    if not data.strip():
        raise ArticleError(rel, "empty file", "write the article or remove the file")
    check_size(rel, len(data))
    if b"\x00" in data:
        raise ArticleError(rel, "binary file, not an article", "move it out of the articles folder")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ArticleError(rel, f"not valid UTF-8 (byte 0x{data[e.start]:02x})",
                           "save the file as UTF-8", line) from e
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    warnings: list[Problem] = []
    if match := XML_ILLEGAL.search(text):
        count = len(XML_ILLEGAL.findall(text))
        line = text.count("\n", 0, match.start()) + 1
        warnings.append(Problem(rel, f"removed {count} control character(s) that XML 1.0 forbids "
                                f"(first U+{ord(match.group()):04X})", "", line, "warning"))
        text = XML_ILLEGAL.sub("", text)
    return text, warnings


def content_hash(text: str) -> str:
    """A hash of the normalized text: an edit changes it, line-end or trailing-space changes do not."""
    normal = "\n".join(line.rstrip() for line in text.strip().split("\n"))
    return hashlib.sha256(normal.encode("utf-8")).hexdigest()[:32]


def slugify(text: str) -> str:
    """Lowercase words joined by '-': 'My Post.md' -> 'my-post'."""
    return re.sub(r"[^\w]+", "-", text.lower()).strip("-_")


def slug_from_path(rel: str) -> str:
    """The default slug: the relative path without extension, folders joined by '-'."""
    stem = rel.rsplit(".", 1)[0]
    return "-".join(filter(None, (slugify(part) for part in stem.split("/"))))


def check_slug(rel: str, slug: str, line: int | None = None) -> str:
    """Refuse slugs that could name a path outside the output folder."""
    if not SLUG_OK.fullmatch(slug):
        raise ArticleError(rel, f"slug {slug!r} is not allowed",
                           "use letters, digits, '-' and '_' only, for example my-first-post", line)
    return slug


def find_unsafe(rel: str, text: str, first_line: int = 1) -> list[Problem]:
    """Warn, with its line, about HTML the sanitizer will remove (script, on*=, javascript:, ...)."""
    match = UNSAFE.search(text)
    if not match:
        return []
    line = first_line + text.count("\n", 0, match.start())
    return [Problem(rel, f"unsafe HTML {match.group().strip()!r} will be removed", "", line, "warning")]
