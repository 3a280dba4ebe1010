"""Reading article files: find them (inside the articles folder only), decode them, name them (slug,
content hash), and the rules every text value obeys (XML 1.0 characters, plain titles, URIs)."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import stat
import string
from dataclasses import dataclass
from html.parser import HTMLParser
from operator import attrgetter
from pathlib import Path
from urllib.parse import SplitResult, quote, urlsplit, urlunsplit

import idna

from publisher.errors import ArticleError, ConfigError
from publisher.models import Problem, SourceFile

log = logging.getLogger(__name__)
MAX_ARTICLE_BYTES = 10 * 1024 * 1024
# Characters XML 1.0 forbids, plus DEL and the C1 controls it discourages (section 2.2): readers take
# those for Windows-1252 letters (U+009F becomes 'Ÿ'), so an id or title would read differently per feed.
XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
UNSAFE = re.compile(r"<\s*(script|style|iframe|object|embed|form)\b|\son\w+\s*=|javascript\s*:", re.I)
CHARREF = re.compile(r"&#(?:[xX]([0-9a-fA-F]{1,8})|([0-9]{1,10}));?")
SLUG_OK = re.compile(r"[^\W_][\w-]*")
NOT_IN_URLS = re.compile(r'[ "<>\\^`{|}]')  # ASCII a URL may never hold (RFC 3986); non-ASCII is an IRI, encoded
NETLOC_CHARS = frozenset(string.ascii_letters + string.digits + "-._~%!$&'()*+,;=:@[]")
LINK_HINT = "move the file into it or remove the link"


# --------------------------------------------------------------------------- finding files


def scan_checked(folder: Path, extensions: frozenset[str]) -> tuple[list[SourceFile], list[Problem]]:
    """Every article file inside `folder`, sorted by relative path, and what was left out and why.

    Hidden files and folders are skipped. A symbolic link is followed only when its target is inside
    the folder: a file link once (left out when its target is read under its own name), a folder link
    never (its files are read where they are; a link to the folder itself or above is a loop).
    """
    if not folder.is_dir():
        raise ConfigError(f"{folder}: articles folder not found",
                          "create it, or set [paths] articles in publisher.toml")
    root = os.path.realpath(folder)
    found: list[SourceFile] = []
    problems: list[Problem] = []
    links: dict[str, str] = {}  # rel of a file link -> the real path it reads
    pending = [(str(folder), "")]
    while pending:
        directory, prefix = pending.pop()
        opened, names = _listing(directory, prefix, problems)
        if opened >= 0:
            try:
                pending += _scan_folder(opened, os.path.join(directory, ""), prefix, names, extensions,
                                        (root, found, problems, links))
            finally:
                os.close(opened)
    found.sort(key=attrgetter("rel"))
    return _read_once(found, links, root, problems), problems


Found = tuple[str, list[SourceFile], list[Problem], dict[str, str]]  # root, files, problems, file links


def _scan_folder(opened: int, base: str, prefix: str, names: list[str], extensions: frozenset[str],
                 into: Found) -> list[tuple[str, str]]:
    """Add one folder's article files (and problems) to `into`; its subfolders, to scan next.

    One lstat per name, relative to the folder opened once (`opened`): the cheapest look at 22,250 files."""
    root, found, problems, links = into
    lstat, is_dir, is_link, is_file = os.lstat, stat.S_ISDIR, stat.S_ISLNK, stat.S_ISREG
    suspect = XML_ILLEGAL.search("/".join(names)) is not None  # one search for the whole folder
    folders = []
    for name in names:
        dot = name.rfind(".")  # os.path.splitext's extension, as no listed name starts with a dot
        wanted = dot > 0 and name[dot:].lower() in extensions
        rel = prefix + name
        try:
            st = lstat(name, dir_fd=opened)
            mode = st.st_mode
            if suspect and XML_ILLEGAL.search(name) and (wanted or is_dir(mode)
                                                          or (is_link(mode) and os.path.isdir(base + name))):
                problems.append(_bad_name(rel))  # the prefix's folders passed already
                continue
            if is_link(mode):
                target, problem = _follow(base + name, rel, root, wanted)
                if problem or target is None:
                    problems += [problem] if problem else []
                    continue
                links[rel] = target
                st = os.stat(name, dir_fd=opened)
                mode = st.st_mode
        except OSError as e:  # gone since the listing
            problems += [Problem(rel, f"file cannot be read: {e.strerror}", "", None, "warning")] if wanted else []
            continue
        if wanted and is_file(mode):
            found.append(SourceFile(base + name, rel, st.st_mtime_ns, st.st_size))
        elif is_dir(mode):
            folders.append((base + name, f"{rel}/"))
    return folders


def _listing(directory: str, prefix: str, problems: list[Problem]) -> tuple[int, list[str]]:
    """One folder opened (a descriptor the caller closes) and its visible names; a folder that cannot be
    listed is a problem, not a traceback, and gives (-1, [])."""
    opened = -1
    try:
        opened = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        return opened, [name for name in os.listdir(opened) if not name.startswith(".")]
    except OSError as e:
        if opened >= 0:
            os.close(opened)
        problems.append(Problem(prefix.rstrip("/") or ".", f"folder cannot be read: {e.strerror}",
                                "check its permissions", None, "warning"))
        return -1, []


def _bad_name(rel: str) -> Problem:
    """A name that is not UTF-8 (os.scandir gives lone surrogates) or holds control characters."""
    shown = "".join(c if c.isprintable() and not xml_clean(c)[1] else ascii(c)[1:-1] for c in rel)
    return Problem(shown, "file name is not UTF-8 text or holds control characters", "rename it")


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _follow(path: str, rel: str, root: str, wanted: bool) -> tuple[str | None, Problem | None]:
    """Where a symbolic link leads when it may be followed, else the problem (None for a link to a
    file that would not be read anyway)."""
    try:
        target = os.path.realpath(path, strict=True)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return None, Problem(rel, "symbolic link loop, not followed", "remove the link", None, "warning")
        return None, Problem(rel, f"symbolic link to {os.readlink(path)} points to nothing",
                             "remove the link", None, "warning") if wanted else None
    is_dir = os.path.isdir(target)
    if not (wanted or is_dir):
        return None, None
    if not _inside(target, root):
        return None, Problem(rel, f"symbolic link to {target} points outside the articles folder", LINK_HINT)
    if not is_dir:
        return target, None
    if _inside(os.path.realpath(os.path.dirname(path)), target):
        return None, Problem(rel, f"symbolic link to {target} makes a loop, not followed", "remove the link",
                             None, "warning")
    where = os.path.relpath(target, root)
    return None, Problem(rel, f"folder link not followed: its articles are read in {where}/",
                         "remove the link", None, "warning")


def _read_once(found: list[SourceFile], links: dict[str, str], root: str,
               problems: list[Problem]) -> list[SourceFile]:
    """Leave out a file link whose target is read already (under its own name or an earlier link)."""
    if not links:
        return found
    seen = {os.path.join(root, f.rel) for f in found if f.rel not in links}
    kept: list[SourceFile] = []
    for f in found:
        target = links.get(f.rel)
        if target is not None and target in seen:
            where = os.path.relpath(target, root)
            problems.append(Problem(f.rel, f"link to {where} left out: that file is read already",
                                    "remove the link", None, "warning"))
            continue
        if target is not None:
            seen.add(target)
        kept.append(f)
    return kept


_FOLDERS: dict[str, str] = {}  # folder -> its real path, for one run's reads (see resolve_inside)


def forget_folders() -> None:
    """Start a run's reads afresh: every folder's real path is looked up again (resolve_inside)."""
    _FOLDERS.clear()


def _real_folder(folder: str) -> str:
    real = _FOLDERS.get(folder)
    if real is None:
        real = _FOLDERS[folder] = os.path.realpath(folder)
    return real


def _real_path(path: str) -> str:
    """os.path.realpath(path, strict=True), with the folder part looked up once per folder per run: a
    file that is a link is followed at every read; a folder is resolved at the first read in it."""
    if stat.S_ISLNK(os.lstat(path).st_mode):
        return os.path.realpath(path, strict=True)
    folder, name = os.path.split(path)
    return os.path.join(_real_folder(folder), name)


def resolve_inside(source: SourceFile) -> str:
    """The real path of an article, checked again at read time to be inside the articles folder (a file
    swapped for a link since the scan is caught; a folder is checked at the first read in it, see
    forget_folders). Raises ArticleError; a vanished file is a warning."""
    path, rel = source.path, source.rel
    root = path[: len(path) - len(rel)] if path.replace(os.sep, "/").endswith("/" + rel) else ""
    try:
        real = _real_path(path)
    except FileNotFoundError as e:
        raise ArticleError(rel, "file vanished before it could be read (deleted or renamed during the run)",
                           "nothing to do: the next run will not look for it", severity="warning") from e
    except OSError as e:
        raise ArticleError(rel, f"file cannot be read: {e.strerror}", "check the file and its links") from e
    if not root or ".." in rel.split("/") or not _inside(real, _real_folder(root)):
        raise ArticleError(rel, f"points outside the articles folder, to {real}", LINK_HINT)
    return real


# --------------------------------------------------------------------------- reading files
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
    clean, removed = xml_clean(text)
    warnings = [removed_warning(rel, removed, text.count("\n", 0, removed.at) + 1)] if removed else []
    return clean, warnings


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


# --------------------------------------------------------------------------- the rules for values


@dataclass(frozen=True, slots=True)
class Removed:
    """What `xml_clean` took out of a value: how many characters, the first one and where it was."""

    count: int
    first: str
    at: int


def xml_clean(value: str) -> tuple[str, Removed | None]:
    """The one rule for every text value: characters XML 1.0 forbids (C0 controls but TAB, LF, CR;
    lone surrogates; U+FFFE, U+FFFF) or discourages (DEL, C1 controls) are removed. Returns the clean
    value and what was removed."""
    match = XML_ILLEGAL.search(value)
    if match is None:
        return value, None
    clean, count = XML_ILLEGAL.subn("", value)
    return clean, Removed(count, match.group(), match.start())


def removed_warning(rel: str, removed: Removed, line: int | None, field: str = "") -> Problem:
    where = f" from '{field}'" if field else ""
    return Problem(rel, f"removed {removed.count} character(s) that XML 1.0 forbids or discourages{where} "
                   f"(first U+{ord(removed.first):04X})", "", line, "warning")


class _TextOnly(HTMLParser):
    """Collects the text of an HTML fragment: tags dropped, the text inside them (even <script>) kept."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def _text_of(html: str) -> str:
    parser = _TextOnly()
    parser.feed(html)
    parser.close()
    return " ".join("".join(parser.parts).split())


def plain_title(title: str) -> str:
    """A title as plain text, as WordPress and Hugo make feed titles: tags stripped, the text kept,
    character references decoded once ('AT&amp;T' -> 'AT&T'; 'AT&T' and '1 < 2' stay), whitespace
    collapsed. Stripping repeats (never decoding again) until no tag is left: '&lt;b&gt;' brings none back."""
    if "<" not in title and "&" not in title:  # no tag, no reference (most titles): nothing to parse
        return " ".join(title.split())
    text = _text_of(title)
    for _ in range(8):
        again = _text_of(text.replace("&", "&amp;"))
        if again == text:
            break
        text = again
    return text


def to_uri(url: str) -> str:
    """An IRI (or a sloppy URL) as a URI (RFC 3987 section 3.1): the host in IDNA, everything that may
    not appear in a URI percent-encoded as UTF-8; a valid URI comes back unchanged. ValueError when
    the URL cannot be one (a bad host or port)."""
    parts = urlsplit(url.strip())
    path = quote(parts.path, safe="/%:@!$&'()*+,;=~")
    query = quote(parts.query, safe="/?%:@!$&'()*+,;=~")
    fragment = quote(parts.fragment, safe="/?%:@!$&'()*+,;=~#")
    uri = urlunsplit((parts.scheme.lower(), _netloc(parts), path, query, fragment))
    return re.sub(r"%(?![0-9A-Fa-f]{2})", "%25", uri)


def _netloc(parts: SplitResult) -> str:
    netloc, port = parts.netloc, parts.port  # ValueError for a port that is not a number
    if netloc.isascii() and set(netloc) <= NETLOC_CHARS:
        return netloc
    host = parts.hostname or ""
    try:
        ascii_host = idna.encode(host, uts46=True).decode("ascii")
    except idna.IDNAError as e:
        raise ValueError(f"{host!r} is not a host name") from e
    userinfo = netloc.rpartition("@")[0]
    return ((quote(userinfo, safe=":%!$&'()*+,;=~") + "@" if userinfo else "") + ascii_host
            + (f":{port}" if port is not None else ""))


def check_image(rel: str, value: str, line: int | None) -> tuple[str | None, Problem | None]:
    """The front matter `image` as a URI: an http(s) URL or a path (joined to the site's URL later);
    anything else is left out with a warning naming the line."""
    try:
        parts = urlsplit(value)
        if parts.scheme not in ("", "http", "https") or (parts.scheme and not parts.hostname):
            raise ValueError("not an http(s) URL")
        uri = to_uri(value)
    except ValueError as e:
        return None, Problem(rel, f"image {value[:100]!r} left out: {e}",
                             "write image: https://example.com/picture.jpg or a path like /images/picture.jpg",
                             line, "warning")
    if bad := sorted(set(NOT_IN_URLS.findall(value))):
        return uri, Problem(rel, f"image {value[:100]!r} holds {' '.join(map(repr, bad))}, which a URL may not: "
                            f"published percent-encoded as {uri[:100]!r}", "check the image's address", line,
                            "warning")
    return uri, None


def find_bad_charrefs(rel: str, text: str, first_line: int = 1) -> list[Problem]:
    """Warn, with its line, about a character reference (&#x1;, &#0;, &#xD800;) that names no
    character XML 1.0 allows: the sanitizer decodes it, and the result is removed or becomes U+FFFD."""
    for match in CHARREF.finditer(text):
        code = int(match.group(1), 16) if match.group(1) else int(match.group(2))
        if code == 0 or code > 0x10FFFF or xml_clean(chr(code))[1]:
            line = first_line + text.count("\n", 0, match.start())
            return [Problem(rel, f"character reference {match.group()!r} names a character XML 1.0 forbids; "
                            "it is not published as written", "", line, "warning")]
    return []
