"""QA regressions for the catalog: what the CLI and library write must land in the right columns."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mtbsync.align.fit import fit_warp
from mtbsync.cli import EXIT_OK, EXIT_USER_ERROR, app
from mtbsync.config import WarpGates
from mtbsync.errors import CatalogError
from mtbsync.store.catalog import Catalog, WarpPoints

runner = CliRunner()


def test_qa_store_alignment_records_the_warps_coverage(tmp_path: Path) -> None:
    # A real fitted warp: its metrics name coverage per run (coverage_new / coverage_ref).
    t_new = np.linspace(0.0, 9.0, 20)
    warp = fit_warp(
        t_new,
        t_new * 1.1,
        np.full(20, 50),
        np.ones(20, bool),
        gates=WarpGates(),
        new_duration=10.0,
        ref_duration=11.0,
        path_points=20,
    )
    assert warp.ok
    with Catalog.open(tmp_path / "c.duckdb") as catalog:
        ref = catalog.record_video_run("ref", "/v/ref.mp4")
        new = catalog.record_video_run("new", "/v/new.mp4")
        catalog.record_alignment(
            new, ref, ok=True, points=WarpPoints(t_new, t_new * 1.1, np.ones(20)), metrics=warp.metrics
        )
        row = catalog.latest_alignment(new)
    # The run summary's coverage column was always empty before.
    assert row["coverage"] == pytest.approx(warp.metrics["coverage_new"])
    assert row["coverage"] > 0.8


def test_qa_store_a_folder_as_catalog_says_so(tmp_path: Path) -> None:
    for read_only in (True, False):
        with pytest.raises(CatalogError, match="this is a folder"):
            Catalog.open(tmp_path, read_only=read_only)


def test_qa_cli_trail_create_never_claims_a_reference_it_did_not_set(tmp_path: Path) -> None:
    db = tmp_path / "c.duckdb"
    with Catalog.open(db) as catalog:
        first = catalog.record_video_run("first", "/v/first.mp4")
        catalog.record_video_run("second", "/v/second.mp4")
    created = runner.invoke(app, ["trail", "create", "Hill", "--reference", "first", "--db", str(db)])
    assert created.exit_code == EXIT_OK, created.output
    again = runner.invoke(app, ["trail", "create", "Hill", "--reference", "second", "--db", str(db)])
    assert again.exit_code == EXIT_USER_ERROR
    assert "already exists" in again.output and "set-reference" in again.output
    same = runner.invoke(app, ["trail", "create", "Hill", "--db", str(db)])
    assert same.exit_code == EXIT_OK and "already exists" in same.output
    with Catalog.open(db, read_only=True) as catalog:
        assert catalog.trail(catalog.trail_id("Hill"))["reference_run_id"] == first


def test_qa_cli_runs_table_reads_like_a_rider(tmp_path: Path) -> None:
    db = tmp_path / "c.duckdb"
    with Catalog.open(db) as catalog:
        catalog.record_video_run(
            "v1",
            "/v/long.mp4",
            name="long",
            duration_s=245.4,
            started_utc=datetime(2026, 5, 1, 10, 7, 33, 123456),
        )
    result = runner.invoke(app, ["runs", "--db", str(db)], env={"COLUMNS": "120"})
    assert result.exit_code == EXIT_OK, result.output
    row = next(line for line in result.output.splitlines() if "long" in line)
    assert "4:05" in row and "2026-05-01 10:07" in row
    assert "245.4" not in result.output and "33.123456" not in result.output
    as_csv = runner.invoke(app, ["runs", "--db", str(db), "--format", "csv"])
    assert as_csv.output.splitlines()[1].split(",")[5] == "245.4"  # machine formats keep the raw values


def test_qa_cli_an_ambiguous_run_name_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "c.duckdb"
    with Catalog.open(db) as catalog:
        first = catalog.record_video_run("a", "/trail1/new.mp4", name="new")
        catalog.record_video_run("b", "/trail2/new.mp4", name="new")
        catalog.create_trail("Hill")
    result = runner.invoke(app, ["trail", "assign", "new", "--trail", "Hill", "--db", str(db)])
    assert result.exit_code == EXIT_USER_ERROR, result.output
    assert "2 runs are called 'new'" in result.output
    by_number = runner.invoke(app, ["trail", "assign", str(first), "--trail", "Hill", "--db", str(db)])
    assert by_number.exit_code == EXIT_OK, by_number.output
    with Catalog.open(db, read_only=True) as catalog:
        assert catalog.run(first)["trail_id"] == catalog.trail_id("Hill")


def test_qa_cli_tables_show_times_to_the_second(tmp_path: Path) -> None:
    db = tmp_path / "c.duckdb"
    with Catalog.open(db) as catalog:
        run = catalog.record_video_run(
            "v1", "/v/a.mp4", name="a", started_utc=datetime(2026, 5, 1, 10, 7, 33, 123456)
        )
        catalog.create_trail("Hill", reference_run_id=run)
    table = runner.invoke(app, ["trails", "--db", str(db)], env={"COLUMNS": "120"})
    assert table.exit_code == EXIT_OK, table.output
    assert "2026-05-01 10:07:33" in table.output and ".123456" not in table.output
    as_json = runner.invoke(app, ["trails", "--db", str(db), "--format", "json"])
    assert "10:07:33.123456" in as_json.output


def test_qa_set_reference_to_a_moved_video_leaves_the_trail_as_it_was(tmp_path: Path) -> None:
    from mtbsync.library.runs import set_reference

    db = tmp_path / "c.duckdb"
    with Catalog.open(db) as catalog:
        first = catalog.record_video_run("a", tmp_path / "gone-a.mp4", name="a")
        second = catalog.record_video_run("b", tmp_path / "gone-b.mp4", name="b")
        trail = catalog.create_trail("Hill", reference_run_id=first)
        catalog.assign_run(second, trail)
        with pytest.raises(CatalogError, match="not at"):
            set_reference(catalog, "Hill", "b")
        assert catalog.trail(trail)["reference_run_id"] == first
