"""GPS-assisted sync end to end on generated pairs: both runs, different trails, no fix, the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mtbsync.cli import EXIT_OK, EXIT_USER_ERROR, app
from mtbsync.config import SyncConfig
from mtbsync.features.keyframes import config_for_index
from mtbsync.ingest.track import FIX_NONE, GpsTrack, make_track
from mtbsync.pipeline import SyncResult, align_indexes, sync
from mtbsync.samples.gps import sample_pair_tracks, write_gpx
from mtbsync.timing import StageTimer


def run_sync(pair, out: Path, **gps) -> SyncResult:
    return sync(pair.reference, pair.new, out, SyncConfig(), timer=StageTimer(), **gps)


def warp_error(result: SyncResult, truth_csv: Path) -> np.ndarray:
    truth = np.loadtxt(truth_csv, delimiter=",", skiprows=1, ndmin=2)
    warp = result.alignment.warp
    inside = (truth[:, 0] >= warp.t_new[0]) & (truth[:, 0] <= warp.t_new[-1])
    return np.abs(warp.to_ref(truth[inside, 0]) - truth[inside, 1])


@pytest.fixture(scope="module")
def vision_only(sample_pair, tmp_path_factory: pytest.TempPathFactory) -> SyncResult:
    return run_sync(sample_pair, tmp_path_factory.mktemp("vision"), use_gps=False)


def test_sample_tracks_follow_the_runs(sample_pair) -> None:
    ref, new = sample_pair_tracks(sample_pair)
    assert ref.has_fix and new.has_fix
    assert ref.t[-1] == pytest.approx(sample_pair.ref_duration, abs=0.11)
    assert new.t[-1] == pytest.approx(sample_pair.new_duration, abs=0.11)
    assert ref.utc[0] != new.utc[0]  # arbitrary, different days


def test_sync_with_gps_on_both_runs(sample_pair, vision_only: SyncResult, tmp_path: Path) -> None:
    ref, new = sample_pair_tracks(sample_pair)
    result = run_sync(sample_pair, tmp_path, reference_gps=ref, new_gps=new)
    gps = result.alignment.warp.metrics["gps"]
    assert result.gps_mode == "both" and gps["mode"] == "both"
    assert gps["map"]["same_trail"] and gps["map"]["near_fraction"] > 0.9
    assert result.alignment.warp.ok, result.alignment.warp.reason
    # The band around the GPS map leaves fewer pairs to examine than vision alone.
    assert gps["candidates"] < vision_only.alignment.warp.metrics["gps"]["candidates"]
    error = warp_error(result, sample_pair.truth_csv)
    assert np.median(error) < 0.1
    assert np.percentile(error, 90) <= max(
        0.2, 1.5 * np.percentile(warp_error(vision_only, sample_pair.truth_csv), 90)
    )
    # The summary says so (written to timewarp.json with the metrics).
    assert '"mode": "both"' in (tmp_path / "timewarp.json").read_text()


def test_a_wrongly_timed_track_is_moved_to_agree_with_vision(
    sample_pair, vision_only: SyncResult, tmp_path: Path
) -> None:
    ref, new = sample_pair_tracks(sample_pair)
    result = run_sync(sample_pair, tmp_path, reference_gps=ref, new_gps=new.shifted(6.0))
    warp = result.alignment.warp
    assert warp.ok, warp.reason
    gps = warp.metrics["gps"]
    if result.gps_mode == "both":
        # Coarse (stands make the map flat): it only has to put the band, +-2 s or more, on the truth.
        assert gps["map_shift_s"] == pytest.approx(-6.0, abs=2.0)
        assert any("moved by" in note for note in gps["notes"])
    else:  # the band missed the true pairs: vision alone, and it says why
        assert "disagreed with vision" in result.gps_mode
    assert np.median(warp_error(result, sample_pair.truth_csv)) < 0.1
    assert warp.metrics["coverage_new"] >= 0.9 * vision_only.alignment.warp.metrics["coverage_new"]


def test_vision_alone_says_so(vision_only: SyncResult) -> None:
    assert vision_only.gps_mode == "none: GPS off (--no-gps); aligned by vision alone"
    assert vision_only.alignment.warp.ok


def test_a_given_similarity_is_reused(vision_only: SyncResult) -> None:
    # The retry without GPS passes the similarity it already has instead of computing it again.
    assert vision_only.reference is not None
    ref, new = vision_only.reference.index, vision_only.new.index
    given = vision_only.alignment.similarity
    config = config_for_index(SyncConfig(), ref)
    again = align_indexes(ref, new, config, timer=StageTimer(), similarity=given)
    assert again.similarity is given
    # The same alignment as computing it afresh (sync's warp is pinned further by the dense pass).
    fresh = align_indexes(ref, new, config, timer=StageTimer())
    assert fresh.similarity is not given
    np.testing.assert_array_equal(again.warp.t_ref, fresh.warp.t_ref)


def test_no_fix_falls_back_to_vision(sample_pair, vision_only: SyncResult, tmp_path: Path) -> None:
    ref, new = sample_pair_tracks(sample_pair)

    def unlocked(track: GpsTrack) -> GpsTrack:
        return make_track(
            track.t, track.lat, track.lon, fix=np.full(len(track), FIX_NONE), source="gpmf:GPS9"
        )

    result = run_sync(sample_pair, tmp_path, reference_gps=unlocked(ref), new_gps=unlocked(new))
    assert result.gps_mode.startswith("none:") and "vision alone" in result.gps_mode
    np.testing.assert_allclose(result.alignment.warp.t_ref, vision_only.alignment.warp.t_ref)


def test_gps_on_the_new_run_only(sample_pair, tmp_path: Path) -> None:
    _, new = sample_pair_tracks(sample_pair)
    result = run_sync(sample_pair, tmp_path, new_gps=new, use_gps=False)
    assert result.gps_mode == "new only"
    assert "new_stops_s" in result.alignment.warp.metrics["gps"]
    assert result.alignment.warp.ok


def test_different_trails_with_gps_are_not_aligned(different_trail_pair, tmp_path: Path) -> None:
    ref, new = sample_pair_tracks(different_trail_pair)
    result = run_sync(different_trail_pair, tmp_path, reference_gps=ref, new_gps=new)
    warp = result.alignment.warp
    assert not warp.ok
    assert "different trails" in warp.reason
    assert warp.metrics["gps"]["map"]["same_trail"] is False


def test_cli_sync_with_track_files(sample_pair, tmp_path: Path) -> None:
    ref, new = sample_pair_tracks(sample_pair)
    ref_gpx = write_gpx(tmp_path / "ref.gpx", ref)
    new_gpx = write_gpx(tmp_path / "new.gpx", new)
    args = ["sync", "-r", str(sample_pair.reference), "-n", str(sample_pair.new), "-o", str(tmp_path / "out")]
    args += [
        "--reference-track",
        str(ref_gpx),
        "--new-track",
        str(new_gpx),
        "--track-offset",
        "0",
        "--no-plot",
    ]
    outcome = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert outcome.exit_code == EXIT_OK, outcome.output
    assert "GPS" in outcome.output and "both" in outcome.output
    assert "offset +0.00 s (given)" in outcome.output


def test_cli_malformed_track_file_is_one_red_line(sample_pair, tmp_path: Path) -> None:
    bad = tmp_path / "broken.gpx"
    bad.write_text("<gpx><trk><trkseg>\n<trkpt lat='1'", encoding="utf-8")
    args = ["sync", "-r", str(sample_pair.reference), "-n", str(sample_pair.new), "-o", str(tmp_path / "out")]
    outcome = CliRunner().invoke(app, [*args, "--new-track", str(bad)])
    assert outcome.exit_code == EXIT_USER_ERROR
    assert "broken.gpx" in outcome.output and "malformed" in outcome.output
    assert "Traceback" not in outcome.output


def test_a_track_file_is_timed_by_the_cameras_gps_clock(tmp_path: Path) -> None:
    from mtbsync.align.gps_tracks import resolve_run_gps
    from mtbsync.features.keyframes import extract_keyframes
    from mtbsync.ingest.gopro import read_gps_from_mp4
    from mtbsync.ingest.gpmf import split_track
    from mtbsync.ingest.gpx import track_from_utc
    from mtbsync.samples.gopro_mp4 import write_gopro_mp4

    raw = Path(__file__).resolve().parent / "data" / "gopro" / "hero11.raw"
    video = write_gopro_mp4(
        tmp_path / "GX010001.MP4", duration_s=3.0, gpmf_payloads=split_track(raw.read_bytes())[:3]
    )
    embedded = read_gps_from_mp4(video)
    assert embedded is not None and embedded.has_fix
    # A watch's track of the same ride, starting 1.5 s into the video: timed from its first point.
    late = embedded.t >= 1.5
    watch = track_from_utc(embedded.utc[late], embedded.lat[late], embedded.lon[late], source="gpx")
    assert watch.t[0] == 0.0
    index = extract_keyframes(video, SyncConfig(), timer=StageTimer()).index
    timed, notes = resolve_run_gps(video, index, watch, use_embedded=True, offset_s=None, label="new")
    assert timed is not None
    assert "from the video's GPS clock" in notes[-1]
    # Within 0.1 s: this synthetic MP4 times its payloads at exactly 1 s while the recorded GPS clock
    # ticks slightly differently, so the camera's own t and UTC disagree by a few hundredths.
    np.testing.assert_allclose(timed.t, embedded.t[late], atol=0.1)
