"""Giving a trail's reference its markers after the fact: `set_run_markers` and ``mtbsync markers``.

The known catalog (store_cases) has a reference REF and runs aligned to it through linear knots; one
test points an alignment at a real warp file with other knots, which must win.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from store_cases import REFERENCE, build_known_catalog
from typer.testing import CliRunner

from mtbsync.align.warp import Warp, save_warp
from mtbsync.cli import EXIT_OK, EXIT_USER_ERROR, app
from mtbsync.errors import ConfigError
from mtbsync.library.runs import alignment_warp, reference_markers_of, set_run_markers
from mtbsync.markers import Marker
from mtbsync.store.catalog import Catalog, MarkerRow, WarpPoints
from mtbsync.store.service_file import remove_service_file, write_service_file

runner = CliRunner()

NEW_MARKERS = [("start", 1.5), ("gap jump", 11.0), ("berm", 16.0), ("finish", 29.0)]


def _run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _placed(catalog: Catalog, run_id: int) -> dict[str, float | None]:
    frame = catalog.markers(run_id, source="transferred")
    return {r["name"]: r["t"] for r in frame.iter_rows(named=True)}


@pytest.fixture()
def known(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    path = tmp_path / "known.duckdb"
    with Catalog.open(path) as catalog:
        ids = build_known_catalog(catalog)
    return path, ids


@pytest.fixture()
def markers_csv(tmp_path: Path) -> Path:
    path = tmp_path / "ref_markers.csv"
    path.write_text("name,t_ref,colour\n" + "".join(f"{n},{t},red\n" for n, t in NEW_MARKERS))
    return path


def test_store_refmarkers_import_retransfers_through_each_runs_warp(known, markers_csv) -> None:
    db, ids = known
    result = _run("markers", "import", "REF", markers_csv, "--db", db)
    assert result.exit_code == EXIT_OK, result.output
    assert "4 markers" in result.output and "carried onto 3 runs of trail Dummy Hill" in result.output
    assert "1 not aligned" in result.output
    with Catalog.open(db, read_only=True) as catalog:
        manual = catalog.markers(ids["REF"], source="manual").sort("ordinal")
        assert list(zip(manual["name"], manual["t"], strict=True)) == NEW_MARKERS
        assert set(manual["colour"]) == {"red"}
        for run in ("RUN_A", "RUN_B", "RUN_C"):
            row = catalog.latest_alignment(ids[run], ids["REF"])
            warp = alignment_warp(catalog, row)
            expected = warp.to_new([t for _, t in NEW_MARKERS])
            placed = _placed(catalog, ids[run])
            got = [placed[name] for name, _ in NEW_MARKERS]
            # The knots map 0..30 s (new) onto 0..31 s (reference): t_new = t_ref * 30 / 31.
            assert np.allclose(got, expected, atol=1e-6)
            assert np.allclose(got, [t * 30 / 31 for _, t in NEW_MARKERS], atol=1e-6)
            refs = catalog.markers(ids[run], source="transferred")
            assert sorted(refs["t_ref"].to_list()) == sorted(t for _, t in NEW_MARKERS)
        # The run that is not aligned lists the markers as not placed.
        assert set(_placed(catalog, ids["RUN_D"]).values()) == {None}


def test_store_refmarkers_hand_moved_marker_keeps_its_time(known) -> None:
    db, ids = known
    with Catalog.open(db) as catalog:
        berm = catalog.markers(ids["RUN_A"], source="transferred").filter(pl.col("name") == "berm")
        catalog.move_marker(int(berm["marker_id"][0]), 14.25)
        update = set_run_markers(catalog, "REF", [Marker(n, t) for n, t in NEW_MARKERS])
        assert ids["RUN_A"] in update.transferred and update.trail_id is not None
        placed = _placed(catalog, ids["RUN_A"])
        assert placed["berm"] == pytest.approx(14.25)
        assert placed["gap jump"] == pytest.approx(11.0 * 30 / 31)
        moved = catalog.markers(ids["RUN_A"], source="transferred").filter(pl.col("name") == "berm")
        assert moved["t_ref"][0] == pytest.approx(16.0) and moved["moved_by_user"][0]


def test_store_refmarkers_warp_file_wins_over_the_knots(known, tmp_path: Path) -> None:
    db, ids = known
    warp = Warp(np.array([0.0, 10.0, 20.0, 30.0]), np.array([0.0, 15.0, 25.0, 31.0]), np.full(4, 0.9))
    path = save_warp(warp, tmp_path / "run_a.npz")
    with Catalog.open(db) as catalog:
        # The knots recorded say otherwise: only the file is the warp the sync wrote.
        catalog.record_alignment(
            ids["RUN_A"],
            ids["REF"],
            ok=True,
            points=WarpPoints([0.0, 30.0], [0.0, 31.0], [0.9, 0.9]),
            params={"pinned": True},
            warp_path=path,
        )
        set_run_markers(catalog, ids["REF"], [Marker(n, t) for n, t in NEW_MARKERS])
        placed = _placed(catalog, ids["RUN_A"])
    expected = warp.to_new([t for _, t in NEW_MARKERS])
    assert np.allclose([placed[n] for n, _ in NEW_MARKERS], expected, atol=1e-6)
    assert abs(placed["gap jump"] - 11.0 * 30 / 31) > 0.5  # not what the linear knots give


def test_store_refmarkers_hilights_of_a_markerless_reference_are_transferred(tmp_path: Path) -> None:
    with Catalog.open(tmp_path / "hl.duckdb") as catalog:
        ref = catalog.record_video_run("id-ref", "/videos/ref.mp4", name="ref")
        new = catalog.record_video_run("id-new", "/videos/new.mp4", name="new")
        trail = catalog.create_trail("Hilight Hill", reference_run_id=ref)
        catalog.assign_run(new, trail)
        catalog.record_markers(ref, [MarkerRow("", 12.0), MarkerRow("", 4.0)], source="hilight")
        catalog.record_alignment(new, ref, ok=True, points=WarpPoints([0.0, 30.0], [0.0, 15.0], [0.9, 0.9]))
        assert [(m.name, m.t_ref) for m in reference_markers_of(catalog, ref)] == [
            ("HiLight 1", 4.0),
            ("HiLight 2", 12.0),
        ]
        update = set_run_markers(catalog, ref, [])
        assert update.transferred == (new,) and update.markers == 0
        assert _placed(catalog, new) == {"HiLight 1": pytest.approx(8.0), "HiLight 2": pytest.approx(24.0)}
        # Once the reference has its own markers, they take over from the HiLights.
        set_run_markers(catalog, ref, [Marker("drop", 5.0)])
        assert _placed(catalog, new) == {"drop": pytest.approx(10.0)}


def test_store_refmarkers_times_outside_the_run_are_refused(tmp_path: Path) -> None:
    with Catalog.open(tmp_path / "d.duckdb") as catalog:
        run = catalog.record_video_run("id-x", "/videos/x.mp4", name="x", duration_s=20.0)
        with pytest.raises(ConfigError, match="past the end"):
            set_run_markers(catalog, run, [Marker("late", 25.0)])
        with pytest.raises(ConfigError, match="not a time"):
            set_run_markers(catalog, run, [Marker("nan", float("nan"))])
        update = set_run_markers(catalog, "x", [Marker("ok", 3.0)])
        assert update.trail_id is None and update.transferred == ()
        assert catalog.markers(run, source="manual")["name"].to_list() == ["ok"]


def test_store_refmarkers_cli_list_shows_clock_times(known) -> None:
    db, _ = known
    listing = _run("markers", "list", "REF", "--db", db)
    assert listing.exit_code == EXIT_OK, listing.output
    assert "0:10.000" in listing.output and "gap jump" in listing.output and "manual" in listing.output
    unplaced = _run("markers", "list", "RUN_D", "--db", db)
    assert "not placed" in unplaced.output and len(REFERENCE) == 4


def test_store_refmarkers_cli_errors_are_one_line(known, markers_csv, tmp_path: Path) -> None:
    db, _ = known
    for args in (("list", "NOPE"), ("import", "NOPE", markers_csv)):
        result = _run("markers", *args, "--db", db)
        assert result.exit_code == EXIT_USER_ERROR and len(_lines(result.output)) == 1, result.output
        assert "no run 'NOPE'" in result.output
    bad = tmp_path / "bad.csv"
    bad.write_text("name,t_ref\ngap jump,soon\n")
    result = _run("markers", "import", "REF", bad, "--db", db)
    assert result.exit_code == EXIT_USER_ERROR and len(_lines(result.output)) == 1, result.output
    assert "line 2" in result.output


def test_store_refmarkers_cli_import_refused_while_the_service_owns_the_catalog(known, markers_csv) -> None:
    db, ids = known
    write_service_file(db, "http://127.0.0.1:9", token="t")
    try:
        result = _run("markers", "import", "REF", markers_csv, "--db", db)
    finally:
        remove_service_file(db)
    assert result.exit_code == EXIT_USER_ERROR and len(_lines(result.output)) == 1, result.output
    assert "owns the catalog" in result.output
    with Catalog.open(db, read_only=True) as catalog:
        assert catalog.markers(ids["REF"], source="manual")["t"].to_list() == list(REFERENCE.values())
