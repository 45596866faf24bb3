"""Lenient CSV reading shared by every CSV mtbsync reads (markers, pairs): each row knows its line."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from mtbsync.errors import MtbsyncError


class CsvRow(NamedTuple):
    """One row of a CSV file.

    Attributes:
        line: The 1-based line the row starts on.
        fields: The parsed fields.
        raw: The row's text as in the file (several lines when a quoted field holds newlines).
    """

    line: int
    fields: list[str]
    raw: str


def read_csv_rows(path: str | Path, *, error: type[MtbsyncError]) -> list[CsvRow]:
    """Read a CSV file into rows, each with the 1-based line it starts on.

    UTF-8 with or without a BOM; RFC 4180 quoting (commas, quotes and newlines inside quoted fields
    survive); spaces after a comma are dropped; blank lines, rows of empty fields and lines starting
    with ``#`` are skipped (a quoted field starting with ``#`` is data).

    Args:
        path: The CSV file.
        error: The error class to raise (the file kind's own, e.g. `PairsFileError`).

    Returns:
        The rows, in file order.

    Raises:
        MtbsyncError: (of class ``error``) the file is missing, unreadable, not UTF-8 or badly quoted.
    """
    path = Path(path)
    if not path.is_file():
        raise error("file not found" if not path.exists() else "not a file", path=path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"cannot read the file ({exc.strerror})", path=path) from None
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise error("not UTF-8 text; save it as 'CSV UTF-8'", path=path, line=line) from None
    lines = _Lines(text)
    reader = csv.reader(lines, skipinitialspace=True, strict=True)
    rows = []
    while True:
        lines.at_row_start = True
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise error(f"malformed CSV ({exc})", path=path, line=lines.row_start) from None
        if any(f.strip() for f in fields):
            rows.append(CsvRow(lines.row_start, fields, "".join(lines.raw)))
    return rows


class _Lines:
    """Physical lines for `csv.reader`, skipping blank and comment lines between rows only.

    The reader pulls one line per row, and more only while a quoted field is open, so a line that
    starts with ``#`` inside a quoted field stays data, and a comment line holding a stray quote
    cannot swallow the rows after it.
    """

    def __init__(self, text: str) -> None:
        self._lines = io.StringIO(text, newline="")
        self.line = 0
        self.row_start = 0
        self.at_row_start = True
        self.raw: list[str] = []

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        while True:
            raw = next(self._lines)
            self.line += 1
            if self.at_row_start:
                stripped = raw.strip()
                if not stripped or stripped.startswith("#"):
                    continue
                self.row_start = self.line
                self.at_row_start = False
                self.raw = []
            self.raw.append(raw)
            return raw


def cell(fields: list[str], columns: dict[str, int], name: str) -> str:
    """The stripped text of column ``name`` in a row, or ``""`` when the file has no such column or
    the row is short (readers then report the missing value with its line)."""
    k = columns.get(name)
    return fields[k].strip() if k is not None and k < len(fields) else ""


# A spreadsheet takes a cell starting with one of these for a formula (OWASP "CSV injection"):
# ``=HYPERLINK(...)`` in a marker name would run when an editor opens the export.
FORMULA_STARTS = frozenset("=+-@\t\r")
_TEXT_MARK = "'"


def spreadsheet_text(text: str) -> str:
    """A text field as it is written to a CSV a spreadsheet may open: never read as a formula.

    A field starting with ``= + - @``, a tab or a carriage return gets a leading ``'`` (what
    spreadsheets themselves use to mark text). So that `read_spreadsheet_text` gives back exactly
    the original, a field that already starts with ``'`` followed by one of those (or by another
    ``'``) gets one too. Only text fields go through this: a negative number stays a number.

    Args:
        text: The field's text.

    Returns:
        The text to write.
    """
    if text[:1] in FORMULA_STARTS or (text[:1] == _TEXT_MARK and _is_marked(text)):
        return _TEXT_MARK + text
    return text


def read_spreadsheet_text(text: str) -> str:
    """The original text of a field written by `spreadsheet_text` (a hand-made ``'Til dawn`` stays).

    Args:
        text: The field as read.

    Returns:
        The text without the leading ``'`` that `spreadsheet_text` adds.
    """
    return text[1:] if _is_marked(text) else text


def _is_marked(text: str) -> bool:
    return len(text) > 1 and text[0] == _TEXT_MARK and (text[1] in FORMULA_STARTS or text[1] == _TEXT_MARK)
