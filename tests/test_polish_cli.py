"""Polish of the command line: warnings shown once, marker times as m:ss.fff, splits with two decimals."""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl
from rich.console import Console
from typer.testing import CliRunner

from mtbsync.cli import EXIT_OK, app
from mtbsync.cli._common import _unless_in_result, clock_text, markers_table, results_shown
from mtbsync.cli.sample_commands import splits_table
from mtbsync.errors import IN_RESULT
from mtbsync.markers import TransferredMarker
from mtbsync.store.catalog import Catalog

runner = CliRunner()


def _render(table) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(table)
    return console.export_text()


def test_polish_cli_set_reference_reports_a_run_not_realigned_once(sample_pair, tmp_path: Path) -> None:
    db = tmp_path / "c.duckdb"
    with Catalog.open(db) as catalog:
        gone = catalog.record_video_run("b", tmp_path / "gone-b.mp4", name="b")
        here = catalog.record_video_run("a", sample_pair.reference, name="a")
        trail = catalog.create_trail("Hill", reference_run_id=gone)
        catalog.assign_run(here, trail)
    result = runner.invoke(
        app, ["trail", "set-reference", "Hill", "a", "--db", str(db)], env={"COLUMNS": "250"}
    )
    assert result.exit_code == EXIT_OK, result.output
    assert f"run #{gone}: not aligned" in result.output
    # The library's own log line ("run #N not re-aligned: ...") would say the same thing again.
    assert "not re-aligned" not in result.output
    assert result.output.count("gone-b.mp4") == 1, result.output


def test_polish_cli_in_result_records_are_hidden_only_while_the_result_is_shown() -> None:
    logger = logging.getLogger("mtbsync")
    flagged = logger.makeRecord("mtbsync", logging.WARNING, __file__, 1, "shown in the result", (), None)
    flagged.__dict__.update(IN_RESULT)
    plain = logger.makeRecord("mtbsync", logging.WARNING, __file__, 1, "only in the log", (), None)
    assert _unless_in_result(flagged) and _unless_in_result(plain)
    with results_shown():
        assert not _unless_in_result(flagged)
        assert _unless_in_result(plain)
    assert _unless_in_result(flagged)  # e.g. `serve`: the worker's warnings still reach the console


def test_polish_cli_markers_table_reads_minutes_seconds_and_milliseconds() -> None:
    assert clock_text(65.25) == "1:05.250"
    assert clock_text(5.0) == "0:05.000"
    assert clock_text(3723.5) == "1:02:03.500"
    assert clock_text(59.9996) == "1:00.000"
    markers = [
        TransferredMarker("gap jump", 65.25, 125.3, 0.91, False),
        TransferredMarker("rock garden", 70.0, None, 0.0, True),
    ]
    text = _render(markers_table(markers))
    assert "1:05.250" in text and "2:05.300" in text and "1:10.000" in text
    assert "125.300" not in text


def test_polish_cli_demo_splits_have_two_decimals_throughout() -> None:
    frame = pl.DataFrame(
        {
            "split": ["a -> b", "b -> c"],
            "new run s": [2.0, 1.55],
            "reference s": [1.5, 1.0],
            "delta s": [0.5, 0.55],
        }
    )
    text = _render(splits_table(frame))
    assert "2.00" in text and "1.55" in text and "1.00" in text and "0.50" in text
    cells = [c for line in text.splitlines() for c in line.split() if c[:1].isdigit()]
    assert all(len(c.split(".")[-1]) == 2 for c in cells if "." in c), cells
