"""A plain CSV of the markers for editors and spreadsheets.

Columns: ``name,timecode,frame,seconds,colour,confidence,needs_review,comment``. ``timecode`` is the
record timecode (start timecode + frame), ``frame`` counts from the video's first frame (0),
``seconds`` is the marker's time in the new video (3 decimals; the last frame's time when clamped),
``needs_review`` is ``true``/``false``, and ``comment`` is the marker's note (``REVIEW`` first when it
needs review). UTF-8 without a BOM, ``\\n`` line ends, RFC 4180 quoting: a field with a comma, a quote
or a line break is quoted, quotes doubled. A text field (name, colour, comment) that a spreadsheet
would run as a formula (``=``, ``+``, ``-``, ``@``, tab or carriage return first) gets a leading ``'``
(`mtbsync.io.csvfile.spreadsheet_text`; mtbsync's readers take it off again); numbers stay numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

from mtbsync.export.common import ExportOptions, PreparedMarkers, prepare
from mtbsync.io.csvfile import spreadsheet_text
from mtbsync.markers.model import TransferredMarker

HEADER = ("name", "timecode", "frame", "seconds", "colour", "confidence", "needs_review", "comment")


def write_to_string(markers: Sequence[TransferredMarker], options: ExportOptions) -> str:
    """The CSV text for ``markers``.

    Args:
        markers: Transferred markers; those not placed are skipped.
        options: Rate and start timecode.

    Returns:
        The CSV text.

    Raises:
        ExportError: Nothing to export, or timecode past 23:59:59.
    """
    return render(prepare(markers, options), options)


def render(prepared: PreparedMarkers, options: ExportOptions) -> str:
    """The CSV text for markers already placed on frames (see `prepare`)."""
    start = options.start_frame
    rows = [HEADER]
    for m in prepared.markers:
        rows.append(
            (
                spreadsheet_text(m.name),
                options.rate.frames_to_timecode(start + m.frame),
                str(m.frame),
                f"{m.seconds:.3f}",
                spreadsheet_text(m.colour),
                f"{m.confidence:.3f}",
                "true" if m.needs_review else "false",
                spreadsheet_text(m.note),
            )
        )
    return "".join(",".join(_field(v) for v in row) + "\n" for row in rows)


def _field(value: str) -> str:
    # csv.writer leaves a lone "\r" unquoted with a "\n" terminator; quote every line break.
    if any(c in value for c in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value
