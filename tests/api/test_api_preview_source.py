"""`PreviewSource` without HTTP: a run that is not aligned; markers given without the reference file."""

from __future__ import annotations

from pathlib import Path

import pytest
from web_fixtures import truth_warp

from mtbsync.align.warp import load_warp, save_warp
from mtbsync.api import PreviewFiles, PreviewSource
from mtbsync.errors import NotFoundError
from mtbsync.markers import read_reference_markers, transfer_markers, write_new_markers


def test_a_run_that_is_not_aligned_says_why(sample_pair, tmp_path: Path) -> None:
    warp = load_warp(truth_warp(sample_pair, tmp_path / "truth.npz"))
    warp.ok, warp.reason = False, "coverage 0.10 under 0.30"
    failed = save_warp(warp, tmp_path / "failed.npz")
    source = PreviewSource(
        PreviewFiles(
            sample_pair.reference,
            sample_pair.new,
            failed,
            reference_markers=sample_pair.reference_markers_csv,
            out_dir=tmp_path / "out",
        )
    )
    run = source.get_run("new")
    assert run.state == "not aligned"
    assert "coverage 0.10" in run.reason
    assert all(m.t_new is None for m in source.markers("new").markers)
    assert source.alignment("new").ok is False
    assert source.markers("new").splits == []


def test_markers_without_the_reference_file_still_give_reference_markers(sample_pair, tmp_path: Path) -> None:
    warp_path = truth_warp(sample_pair, tmp_path / "truth.npz")
    transferred = transfer_markers(
        read_reference_markers(sample_pair.reference_markers_csv), load_warp(warp_path)
    )
    new_markers = write_new_markers(tmp_path / "new_markers.csv", transferred)
    source = PreviewSource(
        PreviewFiles(
            sample_pair.reference, sample_pair.new, warp_path, new_markers=new_markers, out_dir=tmp_path / "o"
        )
    )
    view = source.markers("new")
    assert [m.name for m in view.reference_markers] == [m.name for m in transferred]
    for got, want in zip(view.markers, transferred, strict=True):  # the CSV keeps milliseconds
        assert (got.t_new is None) == (want.t_new is None)
        assert got.t_new is None or got.t_new == pytest.approx(want.t_new, abs=1e-3)
    reference_view = source.markers("reference")
    assert [m.t_new for m in reference_view.markers] == [m.t_ref for m in view.reference_markers]
    with pytest.raises(NotFoundError):
        source.media_path("../new")
