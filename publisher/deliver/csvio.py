"""The CSV side of subscriber import and export: reading rows, writing rows, formula escaping.

No database and no address checks here (publisher.deliver.subscribers does those): `entries` turns an
open text stream into (line, email, name) entries, `write` turns rows into CSV. A cell a spreadsheet
would run as a formula (OWASP CSV injection: it starts with =, +, -, @, tab or CR) is written with a
leading apostrophe (`escape_cell`) and read back without it (`unescape_cell`), so an export imports
back unchanged.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from _csv import Reader  # what csv.reader returns (typeshed's name; the runtime class is _csv.reader)

EXPORT_COLUMNS = ("email", "name", "status", "created")
DELIMITERS = (",", ";", "\t")  # the first of these in the header row separates the columns
FORMULA = ("=", "+", "-", "@", "\t", "\r")  # a CSV cell starting so is a formula to a spreadsheet (OWASP)


class HeaderError(ValueError):
    """The input has no header row naming an `email` column (or no row at all)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One non-blank row: its line number, the email and name cells (unescaped), or why it is unreadable."""

    line: int
    email: str = ""
    name: str = ""
    problem: str | None = None  # set when the row is not readable CSV; email and name are then empty


def entries(stream: TextIO) -> Iterator[Entry]:
    """The rows of a CSV stream (opened with newline="") below its header row, which must name an
    `email` column (and may name `name`; other columns are ignored). A `;` or tab separator, blank lines
    and a row that is not readable CSV (an Entry with `problem`) are fine. The header is read now:
    HeaderError at once when it is missing."""
    lines = iter(stream)
    first = next(lines, "")
    delimiter = next((d for d in DELIMITERS if d in first), ",")
    reader = csv.reader(itertools.chain([first], lines), delimiter=delimiter, strict=False)
    column, name_column = _header(reader)
    return _rows(reader, column, name_column)


def _header(reader: Reader) -> tuple[int, int | None]:
    """The index of the `email` column and of the `name` column (None when absent)."""
    for header in reader:
        if not any(cell.strip() for cell in header):
            continue
        names = [cell.strip().lower() for cell in header]
        if "email" not in names:
            found = ", ".join(repr(n) for n in names[:8])
            raise HeaderError(f"the header row has no 'email' column (found {found})")
        return names.index("email"), names.index("name") if "name" in names else None
    raise HeaderError("the file is empty")


def _rows(reader: Reader, column: int, name_column: int | None) -> Iterator[Entry]:
    while True:
        line = reader.line_num + 1  # csv.reader counts physical lines, quoted newlines too
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            yield Entry(line, problem=f"unreadable CSV row: {e}")
            continue
        if not any(cell.strip() for cell in row):
            continue  # a blank line
        yield Entry(line, _cell(row, column), _cell(row, name_column))


def _cell(row: list[str], index: int | None) -> str:
    return unescape_cell(row[index]) if index is not None and index < len(row) else ""


def write(stream: TextIO, rows: Iterable[tuple[str, str, str, str]]) -> int:
    """Write the EXPORT_COLUMNS header and `rows` (email, name, status, created), the email and name
    cells escaped (`escape_cell`); returns the number of rows."""
    writer = csv.writer(stream)
    writer.writerow(EXPORT_COLUMNS)
    count = 0
    for email, name, status, created in rows:
        writer.writerow((escape_cell(email), escape_cell(name), status, created))
        count += 1
    return count


def _formula_like(cell: str) -> bool:
    """A cell that starts, after any apostrophes, with a character that makes it a spreadsheet formula."""
    return cell.lstrip("'").startswith(FORMULA)


def escape_cell(cell: str) -> str:
    """OWASP CSV injection: a cell starting with =, +, -, @, tab or CR gets a leading apostrophe (so does
    one that starts with apostrophes before such a character, which keeps `unescape_cell` exact)."""
    return "'" + cell if _formula_like(cell) else cell


def unescape_cell(cell: str) -> str:
    """The inverse of `escape_cell` (a cell no export wrote comes back unchanged but for that case)."""
    return cell[1:] if cell.startswith("'") and _formula_like(cell[1:]) else cell
