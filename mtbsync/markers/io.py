"""Marker files: reference markers in (ref_markers.csv), transferred markers out (new_markers.csv).

ref_markers.csv is written by people, in spreadsheets and text editors, so it is read leniently:
``name,t_ref[,colour][,comment]`` with an optional header row, UTF-8 with or without a BOM, RFC 4180
quoting, blank lines and ``#`` comment lines skipped, times in seconds, ``mm:ss.fff`` or
``hh:mm:ss.fff``. Whatever is wrong is reported with the line it is on.

new_markers.csv is written by mtbsync with a fixed header, which is its format version:
``name,t_ref,t_new,confidence,needs_review,colour,comment``.

Both open in spreadsheets, so a text field that a spreadsheet would run as a formula (``=``, ``+``,
``-``, ``@``, tab or carriage return first) is written with a leading ``'``; both readers take it
off again (`mtbsync.io.csvfile.spreadsheet_text`), so names come back exactly as they were.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from mtbsync.errors import MarkerFileError
from mtbsync.io.csvfile import cell as csv_cell
from mtbsync.io.csvfile import read_csv_rows, read_spreadsheet_text, spreadsheet_text
from mtbsync.io.files import atomic_write_text
from mtbsync.markers.model import Marker, TransferredMarker

NEW_MARKERS_HEADER = ("name", "t_ref", "t_new", "confidence", "needs_review", "colour", "comment")

# Header cells people use for each column of ref_markers.csv (after `_header_key`).
_HEADER_ROLES: dict[str, frozenset[str]] = {
    "name": frozenset({"name", "marker", "marker_name", "label", "title"}),
    "t_ref": frozenset(
        {"t_ref", "time", "t", "seconds", "secs", "sec", "s", "t_ref_s", "time_s", "ref_time", "timestamp"}
    ),
    "colour": frozenset({"colour", "color"}),
    "comment": frozenset({"comment", "comments", "note", "notes", "description"}),
}
# Where each column is when there is no header, or the header does not name it.
_DEFAULT_COLUMNS = {"name": 0, "t_ref": 1, "colour": 2, "comment": 3}

_SECONDS = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_CLOCK = re.compile(r"([+-]?)(?:(\d+):)?(\d+):(\d+(?:\.\d*)?)")
_NON_FINITE = frozenset({"inf", "infinity", "nan"})
_TRUE = frozenset({"true", "1", "yes", "y"})
_FALSE = frozenset({"false", "0", "no", "n"})


def parse_time(text: str) -> float:
    """Parse a time written as seconds (``12.5``), ``mm:ss(.fff)`` or ``hh:mm:ss(.fff)``.

    The sign and finiteness are left to the caller, so that it can say which is wrong: ``-3`` gives
    -3.0 and ``nan`` gives NaN.

    Args:
        text: The time as written; surrounding spaces and a trailing ``s`` unit are allowed.

    Returns:
        The time in seconds.

    Raises:
        ValueError: ``text`` is none of the accepted forms, or a minutes/seconds part is 60 or more.
    """
    s = text.strip()
    if s.endswith("s") and s[:-1].rstrip()[-1:].isdigit():
        s = s[:-1].rstrip()
    if _SECONDS.fullmatch(s) or s.lstrip("+-").lower() in _NON_FINITE:
        return float(s)
    clock = _CLOCK.fullmatch(s)
    if clock is None:
        raise ValueError(f"{text.strip()!r} is not seconds (12.5), mm:ss(.fff) or hh:mm:ss(.fff)")
    sign, hours, minutes, seconds = clock.groups()
    if float(seconds) >= 60 or (hours is not None and int(minutes) >= 60):
        raise ValueError(f"{text.strip()!r}: minutes and seconds must be under 60")
    value = int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)
    return -value if sign == "-" else value


def read_reference_markers(path: str | Path) -> list[Marker]:
    """Read the reference run's markers from ``name,t_ref[,colour][,comment]`` CSV.

    A header row is optional; it is recognised when its time cell is not a time and it names a
    column (``name``/``marker``/``label``, ``t_ref``/``time``/``t``/``seconds``, ``colour``/``color``,
    ``comment``/``notes``); then columns are found by name, in any order, and unnamed columns are
    ignored (the name and time default to the first two). A comment in the last column that holds
    unquoted commas is kept whole. Duplicated names are kept.

    Args:
        path: The CSV file.

    Returns:
        The markers in file order.

    Raises:
        MarkerFileError: The file is missing, unreadable, holds no markers, or a row has no name, no
            time, or a time that is not a time, negative or not finite (the error names the line).
    """
    path = Path(path)
    rows = read_csv_rows(path, error=MarkerFileError)
    columns = dict(_DEFAULT_COLUMNS)
    if rows and _is_reference_header(rows[0].fields):
        line, header, _ = rows.pop(0)
        columns = _header_columns(header, path, line)
    # A comment in the last column may hold unquoted commas: take the rest of the row.
    comment_col = columns.get("comment")
    rest_is_comment = comment_col is not None and comment_col == max(columns.values())
    markers = []
    for line, fields, raw in rows:

        def cell(role: str, fields: list[str] = fields) -> str:
            return read_spreadsheet_text(csv_cell(fields, columns, role))

        name = cell("name")
        if not name:
            raise MarkerFileError("the marker has no name (expected name,t_ref)", path=path, line=line)
        time_text = csv_cell(fields, columns, "t_ref")  # a number: never marked as text
        if not time_text:
            raise MarkerFileError(f"marker {name!r} has no time (expected name,t_ref)", path=path, line=line)
        t_ref = _checked_time(time_text, f"marker {name!r}", path, line)
        comment = cell("comment")
        if rest_is_comment and comment_col is not None and len(fields) > comment_col + 1:
            comment = read_spreadsheet_text(_rest_of_row(raw, fields, comment_col))
        markers.append(Marker(name=name, t_ref=t_ref, colour=cell("colour"), comment=comment))
    if not markers:
        raise MarkerFileError("no markers in the file (expected rows of name,t_ref)", path=path)
    return markers


def _rest_of_row(raw: str, fields: list[str], col: int) -> str:
    """The text from column ``col`` to the end of the row, commas and spaces as written."""
    if '"' not in raw:
        return raw.split(",", col)[col].strip()
    # With quotes about, the raw text cannot be split naively; the parsed fields are close enough.
    return ", ".join(f.strip() for f in fields[col:]).strip()


def _header_key(cell: str) -> str:
    key = cell.strip().lower()
    key = re.sub(r"\s*\((?:s|sec|secs|seconds)\)$", "_s", key)
    return re.sub(r"[\s-]+", "_", key)


def _is_reference_header(fields: list[str]) -> bool:
    if len(fields) > 1:
        try:
            parse_time(fields[1])
            return False
        except ValueError:
            pass
    keys = {_header_key(f) for f in fields}
    return bool(keys & (_HEADER_ROLES["name"] | _HEADER_ROLES["t_ref"]))


def _header_columns(header: list[str], path: Path, line: int) -> dict[str, int]:
    named: dict[str, int] = {}
    for col, cell in enumerate(header):
        key = _header_key(cell)
        for role, names in _HEADER_ROLES.items():
            if key in names and role not in named:
                named[role] = col
    columns = dict(named)
    taken = set(named.values())
    for role in ("name", "t_ref"):
        # A header that names only some columns ("label,secs" names both, "id,time" only one)
        # keeps the name and the time at their usual places; colour and comment are read only by name.
        col = _DEFAULT_COLUMNS[role]
        if role not in columns and col not in taken:
            columns[role] = col
            taken.add(col)
    if "name" not in columns or "t_ref" not in columns:
        raise MarkerFileError(
            "the header names no marker name or no time column (expected name,t_ref)", path=path, line=line
        )
    return columns


def _checked_time(text: str, what: str, path: Path, line: int) -> float:
    try:
        value = parse_time(text)
    except ValueError as exc:
        raise MarkerFileError(f"time of {what}: {exc}", path=path, line=line) from None
    if not math.isfinite(value):
        raise MarkerFileError(f"time of {what} is not a finite number: {text!r}", path=path, line=line)
    if value < 0:
        raise MarkerFileError(f"time of {what} is negative: {text!r}", path=path, line=line)
    return value


def write_new_markers(path: str | Path, markers: list[TransferredMarker]) -> Path:
    """Write transferred markers as new_markers.csv, atomically.

    Times and confidence have 3 decimals (times to the millisecond); ``t_new`` is blank for a marker
    that was not placed; ``needs_review`` is ``true``/``false``. UTF-8 without a BOM, ``\\n`` line ends,
    RFC 4180 quoting; name, colour and comment never start like a spreadsheet formula
    (`mtbsync.io.csvfile.spreadsheet_text`; `read_new_markers` restores them).

    Args:
        path: The file to write.
        markers: The markers, written in this order.

    Returns:
        The path written.
    """
    path = Path(path)
    lines = [_csv_line(NEW_MARKERS_HEADER)]
    for m in markers:
        lines.append(
            _csv_line(
                (
                    spreadsheet_text(m.name),
                    f"{m.t_ref:.3f}",
                    "" if m.t_new is None else f"{m.t_new:.3f}",
                    f"{m.confidence:.3f}",
                    "true" if m.needs_review else "false",
                    spreadsheet_text(m.colour),
                    spreadsheet_text(m.comment),
                )
            )
        )
    atomic_write_text(path, "".join(lines))
    return path


def _csv_line(fields: tuple[str, ...]) -> str:
    return ",".join(_csv_field(f, first=k == 0) for k, f in enumerate(fields)) + "\n"


def _csv_field(value: str, *, first: bool) -> str:
    # csv.writer does not quote a lone "\r" with a "\n" terminator, nor a "#" opening the row (which
    # our reader would take for a comment line).
    if any(c in value for c in ',"\r\n') or (first and value.lstrip().startswith("#")):
        return '"' + value.replace('"', '""') + '"'
    return value


def read_new_markers(path: str | Path) -> list[TransferredMarker]:
    """Read new_markers.csv as written by `write_new_markers` (columns found by header name).

    Args:
        path: The CSV file.

    Returns:
        The transferred markers in file order (an empty list for a header-only file).

    Raises:
        MarkerFileError: Missing or unreadable file, a header without the required columns, or a bad
            value (the error names the line).
    """
    path = Path(path)
    rows = read_csv_rows(path, error=MarkerFileError)
    if not rows:
        raise MarkerFileError(f"empty file (expected the header {','.join(NEW_MARKERS_HEADER)})", path=path)
    header_line, header, _ = rows[0]
    col = {}
    for k, cell in enumerate(header):
        col.setdefault(cell.strip().lower(), k)
    missing = [c for c in NEW_MARKERS_HEADER[:5] if c not in col]
    if missing:
        raise MarkerFileError(
            f"not a new_markers.csv: the header lacks {', '.join(missing)}", path=path, line=header_line
        )
    markers = []
    for line, fields, _ in rows[1:]:

        def cell(name: str, fields: list[str] = fields) -> str:
            return csv_cell(fields, col, name)

        def text(name: str, fields: list[str] = fields) -> str:
            return read_spreadsheet_text(csv_cell(fields, col, name))

        name = text("name")
        if not name:
            raise MarkerFileError("the marker has no name", path=path, line=line)
        t_ref = _checked_time(cell("t_ref"), f"marker {name!r} (t_ref)", path, line)
        t_new = (
            _checked_time(cell("t_new"), f"marker {name!r} (t_new)", path, line) if cell("t_new") else None
        )
        try:
            confidence = float(cell("confidence"))
        except ValueError:
            confidence = math.nan
        if not 0.0 <= confidence <= 1.0:
            raise MarkerFileError(
                f"confidence of marker {name!r} is not a number from 0 to 1: {cell('confidence')!r}",
                path=path,
                line=line,
            )
        review = cell("needs_review").lower()
        if review not in _TRUE | _FALSE:
            raise MarkerFileError(
                f"needs_review of marker {name!r} is not true/false: {cell('needs_review')!r}",
                path=path,
                line=line,
            )
        markers.append(
            TransferredMarker(
                name=name,
                t_ref=t_ref,
                t_new=t_new,
                confidence=confidence,
                needs_review=review in _TRUE,
                colour=text("colour"),
                comment=text("comment"),
            )
        )
    return markers
