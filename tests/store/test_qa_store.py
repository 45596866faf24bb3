"""QA regressions for the catalog: what the CLI and library write must land in the right columns."""

from __future__ import annotations

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
