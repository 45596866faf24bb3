"""Trails through the library layer: GPS assignment, switching the reference and re-aligning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from mtbsync.library.runs import (
    TimingBuffer,
    assign_run,
    gps_overlap,
    record_index,
    record_to_catalog,
    record_video,
    set_reference,
    sync_and_record,
)
from mtbsync.store.catalog import Catalog
from mtbsync.store.records import IngestedRun
from mtbsync.timing import StageTimer


def _gps_run(catalog: Catalog, identity: str, lat0: float, lon0: float, *, noise: float = 0.0) -> int:
    t = np.linspace(0, 60, 120)
    rng = np.random.default_rng(len(identity))
    gps = pl.DataFrame(
        {
            "t": t,
            "lat": lat0 + 0.0001 * t + noise * rng.standard_normal(t.size),
            "lon": lon0 + 0.00005 * t,
            "usable": [True] * t.size,
            "chapter": [1] * t.size,
        }
    )
    run = IngestedRun(identity, identity, "/card", None, 60.0, None, (), gps=gps, gps_source="gpx")
    return catalog.record_ingested_run(run)


def test_store_gps_assigns_a_run_to_the_trail_it_rode(tmp_path: Path) -> None:
    with Catalog.open(tmp_path / "c.duckdb") as catalog:
        hill = catalog.create_trail("Hill", reference_run_id=_gps_run(catalog, "hill-ref", 46.0, 7.0))
        catalog.create_trail("Valley", reference_run_id=_gps_run(catalog, "valley-ref", 46.2, 7.3))
        new = _gps_run(catalog, "hill-again", 46.0, 7.0, noise=0.00005)  # ~5 m of GPS noise
        result = assign_run(catalog, new)
        assert (result.trail_id, result.method) == (hill, "gps")
        assert result.score > 0.9
        assert catalog.run(new)["trail_id"] == hill

        elsewhere = _gps_run(catalog, "elsewhere", 45.0, 6.0)
        assert assign_run(catalog, elsewhere).trail_id is None  # no GPS match and no reference index
        assert catalog.run(elsewhere)["trail_id"] is None


def test_store_gps_overlap_is_a_share_of_points() -> None:
    a = np.array([[46.0, 7.0], [46.0, 7.001], [46.01, 7.0]])
    assert gps_overlap(a, a) == 1.0
    assert gps_overlap(a, a[:1]) == pytest.approx(1 / 3)


def test_store_record_to_catalog_can_be_switched_off(tmp_path: Path) -> None:
    value, note = record_to_catalog("none", "nothing", lambda c: 1)
    assert (value, note) == (None, None)
    value, note = record_to_catalog(
        tmp_path / "c.duckdb", "a run", lambda c: c.record_video_run("x", "/v/x.mp4")
    )
    assert (value, note) == (1, None)
    bad = tmp_path / "not-a-db.duckdb"
    bad.write_text("hello" * 1000)
    value, note = record_to_catalog(bad, "the alignment of X", lambda c: 1)
    assert value is None and note.startswith("the alignment of X was not recorded in the catalog")


@pytest.mark.slow
def test_store_set_reference_realigns_and_keeps_moved_markers(sample_pair, tmp_path: Path) -> None:
    from mtbsync.config import SyncConfig
    from mtbsync.markers import read_reference_markers
    from mtbsync.pipeline import build_index

    config = SyncConfig()
    timer = StageTimer()
    buffer = TimingBuffer()
    timer.subscribe(buffer)
    with Catalog.open(tmp_path / "c.duckdb") as catalog:
        index = build_index(sample_pair.reference, tmp_path / "ref.npz", config, timer=timer)
        ref = record_index(catalog, sample_pair.reference, tmp_path / "ref.npz", index, timer)
        assert {r.name for r in buffer.drain()} >= {"decode", "features"}
        markers = read_reference_markers(sample_pair.reference_markers_csv)
        result, alignment_id = sync_and_record(
            catalog, sample_pair.reference, sample_pair.new, tmp_path / "sync", config,
            timer=timer, markers=markers, index_file=tmp_path / "ref.npz",
        )  # fmt: skip
        assert result.alignment.warp.ok
        new = record_video(catalog, sample_pair.new)
        trail = catalog.create_trail("Sample", reference_run_id=ref)

        # The new run is found on the trail by vision (no GPS): aligned to the reference's index.
        assert assign_run(catalog, new, config=config).trail_id == trail

        # An editor moves one transferred marker by hand; a re-run of the same sync keeps it.
        moved = catalog.markers(new, source="transferred").sort("ordinal").row(1, named=True)
        catalog.move_marker(moved["marker_id"], moved["t"] + 0.25)
        _, again = sync_and_record(
            catalog, sample_pair.reference, sample_pair.new, tmp_path / "sync", config,
            timer=timer, markers=markers, index_file=tmp_path / "ref.npz",
        )  # fmt: skip
        assert again == alignment_id  # same pair, same parameters: the same alignment row
        kept = catalog.markers(new, source="transferred").filter(pl.col("ordinal") == moved["ordinal"])
        assert kept["t"][0] == pytest.approx(moved["t"] + 0.25)
        assert kept["moved_by_user"][0]

        done = set_reference(catalog, "Sample", new, config=config, out_root=tmp_path / "realign")
        assert [(d.run_id, d.ok) for d in done] == [(ref, True)]
        assert catalog.trail(trail)["reference_run_id"] == new
        # The new reference's markers are its transferred ones made manual, the hand-moved time included.
        placed = catalog.markers(new, source="transferred").filter(pl.col("t").is_not_null())
        promoted = catalog.markers(new, source="manual")
        assert sorted(promoted["name"]) == sorted(placed["name"])  # unplaced ones cannot be reference markers
        assert promoted.filter(pl.col("name") == moved["name"])["t"][0] == pytest.approx(moved["t"] + 0.25)
        # The old reference is re-aligned to the new one and gets the markers carried back.
        assert len(catalog.markers(ref, source="transferred")) == len(promoted)
        assert catalog.latest_alignment(ref, new)["ok"]


def test_store_transfer_records_its_warp_once_and_links_the_markers(tmp_path: Path) -> None:
    from mtbsync.align.warp import Warp
    from mtbsync.library.runs import record_transfer
    from mtbsync.markers import Marker, transfer_markers

    t = np.linspace(0.0, 10.0, 11)
    warp = Warp(
        t,
        t + 2.0,
        np.full(t.size, 0.9),
        ok=True,
        metrics={"coverage_new": 1.0},
        gates={"min_coverage": 0.3},
        meta={"reference": {"identity": "ref-id"}, "new": {"identity": "new-id"}},
    )
    reference = [Marker("drop", 5.0), Marker("jump", 9.0)]
    transferred = transfer_markers(reference, warp)
    with Catalog.open(tmp_path / "c.duckdb") as catalog:
        # No alignment of the pair yet: the warp file's warp is recorded and the markers point at it.
        new_run = record_transfer(
            catalog, warp, transferred, warp_file=tmp_path / "w.npz", reference_markers=reference
        )
        alignments = catalog.query("SELECT alignment_id, warp_path FROM alignments")
        assert alignments["warp_path"].to_list() == [str(tmp_path / "w.npz")]
        assert len(catalog.warp_points(alignments["alignment_id"][0])) == t.size
        moved = catalog.markers(new_run, source="transferred")
        assert moved["alignment_id"].to_list() == [alignments["alignment_id"][0]] * 2
        assert moved["t"].to_list() == pytest.approx([3.0, 7.0])
        # Again: the same alignment is reused, not recorded twice.
        assert (
            record_transfer(catalog, warp, transferred, warp_file="w2.npz", reference_markers=reference)
            == new_run
        )
        assert len(catalog.query("SELECT * FROM alignments")) == 1
        assert len(catalog.markers(new_run, source="transferred")) == 2
