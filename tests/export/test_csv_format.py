"""The editor CSV: inline text, and names that survive a standard CSV reader."""

from __future__ import annotations

import csv
import io

from export_cases import AWKWARD_MARKERS, SMALL_MARKERS

from mtbsync.export import ExportOptions, FrameRate, csv_format

CSV_25 = """\
name,timecode,frame,seconds,colour,confidence,needs_review,comment
gap jump,01:00:05:00,125,5.000,#00ff00,0.900,false,big one
rock garden,01:00:12:08,308,12.340,sky,0.410,true,REVIEW (confidence 0.41)
berm,01:00:49:24,1249,49.960,,0.800,false,"clamped from 59.000 s, past the video's end"
"""


def test_csv_matches_inline_text() -> None:
    options = ExportOptions(FrameRate.from_string("25"), video_duration=50.0)
    assert csv_format.write_to_string(SMALL_MARKERS, options) == CSV_25


def test_awkward_names_survive_a_csv_reader() -> None:
    text = csv_format.write_to_string(AWKWARD_MARKERS, ExportOptions(FrameRate.from_string("29.97")))
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [r["name"] for r in rows] == [m.name for m in AWKWARD_MARKERS]
    assert [r["timecode"] for r in rows][:2] == ["01:00:01;00", "01:00:02;00"]
