"""Runs recorded as several GoPro chapter files align as one continuous timeline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mtbsync.cli import EXIT_NOT_ALIGNED, EXIT_OK, app
from mtbsync.config import preset
from mtbsync.errors import IndexFileError
from mtbsync.evaluate import read_truth_markers, score_markers
from mtbsync.features.index import load_index
from mtbsync.features.keyframes import extract_keyframes
from mtbsync.ingest.card import recording_chapters
from mtbsync.io.sources import videos_of_warp
from mtbsync.io.split import split_into_chapters
from mtbsync.io.video import probe
from mtbsync.markers import read_new_markers
from mtbsync.timing import StageTimer

runner = CliRunner()


def _run(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def card(sample_pair, tmp_path_factory: pytest.TempPathFactory):
    """The sample pair as a card: the new run in 3 chapters (one cut at a marker), the reference in 2."""
    folder = tmp_path_factory.mktemp("card") / "DCIM" / "100GOPRO"
    truth = read_truth_markers(sample_pair.truth_markers_csv)
    frame = 1 / sample_pair.new_fps
    new_duration = probe(sample_pair.new).duration
    inside = sorted(t for t in truth.values() if 3.0 < t < new_duration - 3.0)
    # A cut on the frame where a marker's place is reached: its refinement window spans two chapters.
    at_marker = round(inside[len(inside) // 2] / frame) * frame
    cuts = sorted({at_marker, 3.0 if at_marker > 6.0 else new_duration - 3.0})
    new = split_into_chapters(sample_pair.new, folder, cuts, number="0007")
    ref = split_into_chapters(sample_pair.reference, folder, [6.5], number="0006")
    boundary_marker = next(name for name, t in truth.items() if abs(t - at_marker) < frame)
    return {"new": new, "ref": ref, "cut": at_marker, "boundary_marker": boundary_marker, "truth": truth}


@pytest.fixture(scope="module")
def synced(card, sample_pair, tmp_path_factory: pytest.TempPathFactory):
    """`mtbsync sync` given the first chapter of each run, once for the module."""
    out = tmp_path_factory.mktemp("sync")
    result = _run(
        "sync",
        "--reference",
        card["ref"][0],
        "--new",
        card["new"][0],
        "--out",
        out,
        "--reference-markers",
        sample_pair.reference_markers_csv,
        "--no-plot",
    )
    return out, result


def test_sync_of_chapters_joins_them_and_says_so(synced, card) -> None:
    out, result = synced
    assert result.exit_code == EXIT_OK, result.output
    assert "reference GX010006.MP4: 2 chapters joined (0:14)" in result.output
    assert "new GX010007.MP4: 3 chapters joined (0:" in result.output
    meta = json.loads((out / "timewarp.json").read_text())["meta"]
    assert [Path(p).name for p in meta["new"]["chapters"]] == [p.name for p in card["new"]]
    assert meta["new"]["chapter_starts"][0] == 0.0
    assert meta["new"]["identity"].startswith("rec:") and meta["reference"]["identity"].startswith("rec:")
    assert meta["new"]["duration"] == pytest.approx(sum(probe(p).duration for p in card["new"]), abs=1e-6)


def test_markers_of_a_chaptered_run_land_within_frames_of_truth(synced, card, sample_pair) -> None:
    out, _ = synced
    markers = read_new_markers(out / "new_markers.csv")
    score = score_markers(markers, card["truth"], 1 / sample_pair.new_fps)
    summary = score.summary()
    assert summary["wrongly_placed"] == 0
    assert summary["missed"] <= 1
    assert summary["within_one_frame"] >= 0.7, summary
    assert summary["max_frames"] <= 4, summary
    at_cut = next(m for m in markers if m.name == card["boundary_marker"])
    assert at_cut.t_new is not None, at_cut.comment
    assert "keyframes only" not in (at_cut.comment or "")  # timed at full frame rate across the cut
    assert abs(at_cut.t_new - card["truth"][at_cut.name]) <= 1.5 / sample_pair.new_fps


def test_transfer_refines_in_the_warps_chapters(synced, card, sample_pair, tmp_path: Path) -> None:
    out, _ = synced
    from mtbsync.align.warp import load_warp

    videos = videos_of_warp(load_warp(out / "warp.npz"))
    assert videos is not None and list(videos[1]) == [p.resolve() for p in card["new"]]
    result = _run(
        "transfer",
        "--reference-markers",
        sample_pair.reference_markers_csv,
        "--warp",
        out / "warp.npz",
        "--out",
        tmp_path / "m.csv",
    )
    assert result.exit_code == EXIT_OK, result.output
    assert "at full frame rate in GX010007.MP4 (+2 chapters)" in result.output
    at_cut = next(m for m in read_new_markers(tmp_path / "m.csv") if m.name == card["boundary_marker"])
    assert at_cut.t_new is not None
    assert abs(at_cut.t_new - card["truth"][at_cut.name]) <= 1.5 / sample_pair.new_fps


def test_keyframes_of_chapters_are_those_of_the_whole_run(card, sample_pair) -> None:
    # Full decode: key frames differ (each chapter starts a GOP, as a camera's chapters do).
    config = preset("default").with_overrides(decode={"mode": "full"})
    joined = extract_keyframes(card["new"], config, timer=StageTimer())
    whole = extract_keyframes(sample_pair.new, config, timer=StageTimer())
    np.testing.assert_allclose(joined.index.times, whole.index.times, atol=1e-6)
    assert joined.index.video["chapters"] == [str(p.resolve()) for p in card["new"]]
    assert "chapters" not in whole.index.video  # a single file's facts are as before
    assert joined.info.duration == pytest.approx(whole.info.duration, abs=1e-6)


def test_index_of_chapters_names_the_recording(card, tmp_path: Path) -> None:
    out = tmp_path / "ref.npz"
    result = _run("index", "--reference", card["ref"][0], "--fps", "2", "--out", out)
    assert result.exit_code == EXIT_OK, result.output
    assert "2 chapters joined (0:14)" in result.output
    index = load_index(out, expected_identity=probe(card["ref"]).identity)
    assert index.times[-1] > 7.0  # keyframes of the second chapter, on the joined timeline
    with pytest.raises(IndexFileError, match="built for"):
        load_index(out, expected_identity=probe(card["ref"][0]).identity)


def test_no_chapters_aligns_the_file_alone(card, tmp_path: Path) -> None:
    out = tmp_path / "first.npz"
    result = _run("index", "--reference", card["ref"][0], "--fps", "2", "--out", out, "--no-chapters")
    assert result.exit_code == EXIT_OK, result.output
    assert "joined" not in result.output
    assert "chapters" not in load_index(out).video and load_index(out).times[-1] < 6.6


def test_recording_chapters_stops_at_a_gap_and_leaves_later_chapters_alone(tmp_path: Path) -> None:
    for name in (
        "GX010011.MP4",
        "GX020011.MP4",
        "GX040011.MP4",
        "GX010012.MP4",
        "GOPR0013.MP4",
        "GP010013.MP4",
    ):
        (tmp_path / name).write_bytes(b"x")
    files, notes = recording_chapters(tmp_path / "GX010011.MP4")
    assert [p.name for p in files] == ["GX010011.MP4", "GX020011.MP4"]
    assert "chapter 3" in notes[0] and "GX040011.MP4" in notes[0]
    files, notes = recording_chapters(tmp_path / "GX020011.MP4")
    assert [p.name for p in files] == ["GX020011.MP4"] and "GX010011.MP4" in notes[0]
    assert recording_chapters(tmp_path / "GX010012.MP4") == ((tmp_path / "GX010012.MP4",), ())
    files, _ = recording_chapters(tmp_path / "GOPR0013.MP4")
    assert [p.name for p in files] == ["GOPR0013.MP4", "GP010013.MP4"]
    assert recording_chapters(tmp_path / "run.mp4") == ((tmp_path / "run.mp4",), ())


def test_export_of_a_chaptered_run_uses_the_joined_timeline(synced, card, tmp_path: Path) -> None:
    out, _ = synced
    placed = [m for m in read_new_markers(out / "new_markers.csv") if m.t_new is not None]
    late = max(placed, key=lambda m: m.t_new)
    assert late.t_new > probe(card["new"][0]).duration  # placed past the first chapter's end
    target = tmp_path / "markers.export.csv"
    result = _run("export", "csv", "--markers", out / "new_markers.csv", "--out", target)
    assert result.exit_code == EXIT_OK, result.output
    assert "The clip is the joined recording: 3 chapters from GX010007.MP4" in result.output
    assert "clamped" not in result.output  # not cut at the first chapter's end
    text = target.read_text()
    assert late.name in text


def test_chapters_proxies_play_on_the_main_files_timeline(card, tmp_path: Path) -> None:
    import shutil

    for chapter in card["new"]:
        shutil.copy(chapter, tmp_path / chapter.name)
        shutil.copy(chapter, tmp_path / ("GL" + chapter.stem[2:] + ".LRV"))
    chapters = sorted(tmp_path.glob("GX*.MP4"))
    config = preset("default").with_overrides(decode={"prefer_proxy": True, "mode": "full"})
    result = extract_keyframes(chapters, config, timer=StageTimer())
    assert result.report.mode == "proxy"
    assert result.index.params["decoded_from"].count(".LRV") == 3
    plain = extract_keyframes(
        chapters, config.with_overrides(decode={"prefer_proxy": False}), timer=StageTimer()
    )
    np.testing.assert_allclose(result.index.times, plain.index.times, atol=1e-6)


def test_recording_identity_is_the_catalogs(card) -> None:
    # An index of a chaptered run names the recording as the library's ingest does.
    from mtbsync.io.video import video_identity
    from mtbsync.library.ingest import recording_identity

    assert probe(card["new"]).identity == recording_identity([video_identity(p) for p in card["new"]])


def test_export_per_chapter_puts_each_marker_on_its_chapters_time(synced, card, tmp_path: Path) -> None:
    import csv

    out, _ = synced
    result = _run("export", "csv", "--markers", out / "new_markers.csv", "--out", tmp_path, "--per-chapter")
    assert result.exit_code == EXIT_OK, result.output
    starts = probe(card["new"]).chapter_starts
    placed = {m.name: m.t_new for m in read_new_markers(out / "new_markers.csv") if m.t_new is not None}
    seen = {}
    for k, chapter in enumerate(card["new"]):
        path = tmp_path / f"new_markers.{chapter.stem}.export.csv"
        if not path.exists():
            continue
        assert f"on {chapter.name}'s own time" in result.output
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        for row in rows:
            seen[row["name"]] = float(row["seconds"]) + starts[k]
    assert len(seen) == len(placed) and len({p.name for p in tmp_path.iterdir()}) >= 2
    for name, t in seen.items():
        assert t == pytest.approx(placed[name], abs=1 / 25 + 1e-6)


def test_sync_of_chapters_records_one_run_per_recording(synced, card) -> None:
    # The catalog gets the recording (one run, a media row per chapter), not its first file.
    import os

    from mtbsync.store.catalog import Catalog

    _out, result = synced
    assert result.exit_code in (EXIT_OK, EXIT_NOT_ALIGNED), result.output
    with Catalog.open(os.environ["MTBSYNC_DB"], read_only=True) as catalog:
        run_id = catalog.run_id_for_identity(probe(card["new"]).identity)
        assert run_id is not None
        media = catalog.query(
            "SELECT path, duration_s FROM media_files WHERE run_id = ? AND role = 'video' ORDER BY chapter",
            [run_id],
        )
        assert [Path(p).name for p in media["path"]] == [p.name for p in card["new"]]
        assert catalog.run(run_id)["duration_s"] == pytest.approx(probe(card["new"]).duration, abs=1e-3)
