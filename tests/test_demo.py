"""`mtbsync demo`, the main job: a generated pair through index -> sync -> transfer into a catalog."""

from __future__ import annotations

from typer.testing import CliRunner

from mtbsync.cli import EXIT_OK, app
from mtbsync.store.catalog import Catalog


def test_demo_aligns_scores_and_records_into_its_own_catalog(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--out", str(out), "--duration", "12"], catch_exceptions=False)
    assert result.exit_code == EXIT_OK, result.output
    assert "within one frame" in result.output
    assert (out / "sync" / "new_markers.csv").is_file()

    with Catalog.open(out / "catalog.duckdb", read_only=True) as catalog:
        runs = catalog.query("SELECT run_id, trail_id FROM runs ORDER BY run_id")
        assert runs.height == 2
        assert runs["trail_id"].null_count() == 0  # both runs are on the demo trail
        aligned = catalog.query("SELECT ok FROM alignments")
        assert aligned["ok"].to_list() == [True]
        splits = catalog.query("SELECT delta_s FROM splits WHERE NOT is_reference")
        assert splits.height >= 1
        assert splits["delta_s"].null_count() == 0  # every split has its reference split
