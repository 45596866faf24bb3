"""Recording a large marker list in the catalog: one columnar insert, every value kept."""

from __future__ import annotations

import math
from pathlib import Path

from mtbsync.store.catalog import Catalog, MarkerRow


def test_store_records_300000_markers_with_their_values(tmp_path: Path) -> None:
    n = 300_000
    rows = [
        MarkerRow(
            f"marker {k}",
            None if k % 7 == 0 else k * 0.01,
            k * 0.02,
            (k % 100) / 100,
            k % 3 == 0,
            "red" if k % 2 else "",
            "" if k % 5 else f"note, with a comma {k}",
        )
        for k in range(n)
    ]
    rows[1] = MarkerRow("nan time", math.nan, math.inf, 0.5, False)
    with Catalog.open(tmp_path / "c.duckdb") as catalog:
        run = catalog.record_video_run("1:aa", tmp_path / "GX010001.MP4")
        assert catalog.record_markers(run, rows[:10], source="transferred") == 10
        assert catalog.record_markers(run, rows, source="transferred") == n  # replaced, not added
        frame = catalog.query(
            "SELECT name, ordinal, t, t_ref, confidence, needs_review, colour, comment, source "
            "FROM markers WHERE run_id = ? ORDER BY ordinal",
            [run],
        )
    assert len(frame) == n
    got = frame.rows()
    assert got[0] == ("marker 0", 0, None, 0.0, 0.0, True, "", "note, with a comma 0", "transferred")
    assert got[1][:4] == ("nan time", 1, None, None)
    assert got[12] == ("marker 12", 12, 0.12, 0.24, 0.12, True, "", "", "transferred")
    assert got[-1][:2] == (f"marker {n - 1}", n - 1)
