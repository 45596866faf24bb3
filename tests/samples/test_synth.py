"""Sample pairs generated in code: files, exact timestamps, truth, markers, texture, warped copies."""

from __future__ import annotations

import csv
import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest

from mtbsync.errors import ConfigError
from mtbsync.io.writer import VideoWriter, exact_fps
from mtbsync.samples import (
    SamplePair,
    make_different_trail_pair,
    make_markers_for,
    make_sample_pair,
    read_truth,
    warp_video,
)
from mtbsync.samples.paint import CHUNK_PX
from mtbsync.samples.world import TrailWorld

GATE_S = 1.5


def _decode(path: Path) -> tuple[list[float], list[np.ndarray], av.video.stream.VideoStream]:
    """Every frame's time (pts * time_base) and BGR image."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times, images = [], []
        for frame in container.decode(stream):
            times.append(float(frame.pts * stream.time_base))
            images.append(frame.to_ndarray(format="bgr24"))
        return times, images, stream


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# The module's pair; test_reuse_skips_rendering asks again with exactly these.
PAIR_PARAMS: dict[str, Any] = {
    "duration_s": 6.0,
    "seed": 3,
    "ref_size": (320, 180),
    "new_size": (256, 144),
    "ref_fps": 30,
    "new_fps": 25,
    "start_gate_wait_s": GATE_S,
}


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> SamplePair:
    """6 s reference at 320x180 / 30 fps; new run at 256x144 / 25 fps with stop, late start, gate wait."""
    return make_sample_pair(tmp_path_factory.mktemp("pair"), **PAIR_PARAMS)


@pytest.fixture(scope="module")
def decoded(pair: SamplePair) -> dict[str, tuple[list[float], list[np.ndarray]]]:
    ref_t, ref_i, _ = _decode(pair.reference)
    new_t, new_i, _ = _decode(pair.new)
    return {"ref": (ref_t, ref_i), "new": (new_t, new_i)}


def test_files_and_manifest(pair: SamplePair) -> None:
    for path in (
        pair.reference,
        pair.new,
        pair.truth_csv,
        pair.reference_markers_csv,
        pair.truth_markers_csv,
    ):
        assert path.is_file() and path.parent == pair.directory
    assert not list(pair.directory.glob(".*.part")), "temporary files left behind"
    manifest = json.loads(pair.manifest.read_text())
    assert manifest["schema_version"] == 1
    assert manifest["reference"]["frames"] == pair.ref_frames == 181
    assert manifest["new"]["start_gate"] == "off trail (cut)"


@pytest.mark.parametrize(("which", "size", "fps"), [("ref", (320, 180), 30), ("new", (256, 144), 25)])
def test_frames_sizes_rates_and_exact_times(
    pair: SamplePair, which: str, size: tuple[int, int], fps: int
) -> None:
    path = pair.reference if which == "ref" else pair.new
    expected = pair.ref_frames if which == "ref" else pair.new_frames
    times, images, stream = _decode(path)
    assert len(times) == expected
    assert images[0].shape == (size[1], size[0], 3)
    assert stream.average_rate == fps
    assert stream.codec_context.name == "h264"
    # Frame k shows k / fps, to well within a millisecond.
    assert np.max(np.abs(np.array(times) - np.arange(expected) / fps)) < 1e-3


def test_truth_is_monotone_with_a_stop_and_a_late_start(pair: SamplePair) -> None:
    truth = read_truth(pair.truth_csv)
    t_new, t_ref = truth[:, 0], truth[:, 1]
    assert truth.shape[0] > 50
    assert np.all(np.diff(t_new) > 0) and np.all(np.diff(t_ref) >= 0)
    # Every t_new is a frame time of the new video.
    assert np.allclose(t_new * pair.new_fps, np.round(t_new * pair.new_fps), atol=1e-3)
    # The gate wait is off the trail: no truth before it. The ride starts after the reference's start.
    assert t_new[0] >= GATE_S - 1e-9
    assert t_ref[0] > 0.3
    assert t_ref[-1] <= pair.ref_duration + 1e-9
    # The stop: t_ref stays flat for well over a second of new frames.
    flat = np.diff(t_ref) < 1e-6
    longest, run = 0, 0
    for is_flat in flat:
        run = run + 1 if is_flat else 0
        longest = max(longest, run)
    assert longest / pair.new_fps > 1.5


def test_markers_are_consistent_with_the_truth(pair: SamplePair) -> None:
    ref_rows = _read_csv(pair.reference_markers_csv)
    truth_rows = _read_csv(pair.truth_markers_csv)
    assert ref_rows and list(ref_rows[0]) == ["name", "t_ref", "colour", "comment"]
    names = [r["name"] for r in ref_rows]
    assert len(set(names)) == len(names)
    assert all(r["colour"].startswith("#") and len(r["colour"]) == 7 for r in ref_rows)
    assert all(0 < float(r["t_ref"]) < pair.ref_duration for r in ref_rows)
    assert truth_rows, "the new run should reach at least one marker"
    ref_time = {r["name"]: float(r["t_ref"]) for r in ref_rows}
    truth = read_truth(pair.truth_csv)
    for row in truth_rows:
        t_new = float(row["t_new"])
        assert 0 <= t_new <= pair.new_duration
        # Where the new run reaches the marker, the truth points at the marker's reference time.
        if truth[0, 0] <= t_new <= truth[-1, 0]:
            assert (
                abs(np.interp(t_new, truth[:, 0], truth[:, 1]) - ref_time[row["name"]]) < 1.5 / pair.ref_fps
            )


def test_texture_is_trackable_and_places_are_distinct(decoded: dict) -> None:
    _, images = decoded["ref"]
    grey = [cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) for img in images]
    orb = cv2.ORB_create(800)
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)
    features = {k: orb.detectAndCompute(grey[k], None)[1] for k in (10, 11, 60, 61, 20, 120)}

    def close_matches(i: int, j: int) -> int:
        return sum(m.distance <= 40 for m in matcher.match(features[i], features[j]))

    assert close_matches(10, 11) > 100
    assert close_matches(60, 61) > 100
    # About 20 m apart (3.3 s at about 6 m/s): different places.
    assert close_matches(20, 120) < 30


def test_new_frames_show_the_reference_place(pair: SamplePair, decoded: dict) -> None:
    """A new frame looks more like its truth reference frame than like frames 1 s away."""
    truth = read_truth(pair.truth_csv)
    _, ref_images = decoded["ref"]
    _, new_images = decoded["new"]
    size = (ref_images[0].shape[1], ref_images[0].shape[0])
    checked = 0
    for t_new, t_ref in truth[:: max(1, len(truth) // 6)]:
        k_new = round(t_new * pair.new_fps)
        k_ref = round(t_ref * pair.ref_fps)
        if not 30 <= k_ref < len(ref_images) - 30:
            continue
        img = cv2.GaussianBlur(cv2.resize(new_images[k_new], size), (5, 5), 0).astype(np.float32)

        def diff(k: int, img: np.ndarray = img) -> float:
            return float(np.mean(np.abs(cv2.GaussianBlur(ref_images[k], (5, 5), 0) - img)))

        assert diff(k_ref) < min(diff(k_ref - 30), diff(k_ref + 30))
        checked += 1
    assert checked >= 2


def test_reuse_skips_rendering(pair: SamplePair) -> None:
    before = pair.reference.stat().st_mtime_ns
    again = make_sample_pair(pair.directory, **PAIR_PARAMS)
    assert again == pair
    assert pair.reference.stat().st_mtime_ns == before


def test_different_trail_pair_has_no_truth(tmp_path: Path) -> None:
    pair = make_different_trail_pair(tmp_path, duration_s=3.0, ref_size=(160, 90), new_size=(160, 90))
    assert not pair.same_trail
    assert read_truth(pair.truth_csv).shape == (0, 2)
    assert _read_csv(pair.truth_markers_csv) == []
    assert pair.truth_markers_csv.read_text().startswith("name,t_new")
    assert pair.new.stat().st_size > 0


def test_world_is_deterministic_seamless_and_seed_dependent() -> None:
    a, b, other = TrailWorld(5), TrailWorld(5), TrailWorld(6)
    assert np.array_equal(a.chunk_levels(3)[0], b.chunk_levels(3)[0])
    assert not np.array_equal(a.chunk_levels(3)[0], other.chunk_levels(3)[0])
    # Adjacent chunks join smoothly: the step across the border is like the steps inside a chunk.
    left, right = a.chunk_levels(3)[0].astype(np.float32), a.chunk_levels(4)[0].astype(np.float32)
    border = np.mean(np.abs(right[:, 0] - left[:, CHUNK_PX - 1]))
    inside = np.mean(np.abs(np.diff(left, axis=1)))
    assert border < 2 * inside
    assert [lm.z for lm in a.landmarks(0, 200)] == [lm.z for lm in b.landmarks(0, 200)]


def test_exact_ntsc_timestamps(tmp_path: Path) -> None:
    fps = exact_fps(29.97)
    assert fps == Fraction(30000, 1001)
    frame = np.zeros((64, 96, 3), np.uint8)
    with VideoWriter(tmp_path / "ntsc.mp4", (96, 64), fps) as writer:
        for k in range(12):
            frame[:] = 10 * k
            writer.write(frame)
    times, _, stream = _decode(tmp_path / "ntsc.mp4")
    assert stream.average_rate == fps
    assert np.max(np.abs(np.array(times) - np.arange(12) * 1001 / 30000)) < 1e-6


def test_bad_parameters_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        make_sample_pair(tmp_path, duration_s=2.0, ref_size=(321, 180))
    with pytest.raises(ConfigError):
        make_sample_pair(tmp_path, duration_s=0.1)
    with pytest.raises(ConfigError):
        exact_fps(-5)


@pytest.mark.parametrize("blend", [False, True])
def test_warp_video_round_trip(pair: SamplePair, decoded: dict, tmp_path: Path, blend: bool) -> None:
    dst = warp_video(
        pair.reference,
        tmp_path / "warped.mp4",
        seed=1,
        trim_start_s=0.5,
        trim_end_s=0.5,
        out_fps=25,
        blend=blend,
        crf=12,
    )
    truth = read_truth(tmp_path / "warped.truth.csv")
    times, images, stream = _decode(dst)
    assert stream.average_rate == 25 and len(images) == truth.shape[0]
    assert np.allclose(truth[:, 0], times, atol=1e-3)
    assert np.all(np.diff(truth[:, 1]) >= 0)
    assert abs(truth[0, 1] - 0.5) < 1.5 / 30 and truth[-1, 1] <= pair.ref_duration - 0.5 + 1e-6
    assert np.any(np.diff(truth[:, 1]) == 0), "the stop freezes the picture"
    ref_t, ref_images = decoded["ref"]
    ref_t_arr = np.array(ref_t)
    for k in range(0, len(images), 7):
        t_src = truth[k, 1]
        i = int(np.searchsorted(ref_t_arr, t_src - 1e-6))
        if blend and ref_t_arr[i] > t_src:
            a = (t_src - ref_t_arr[i - 1]) / (ref_t_arr[i] - ref_t_arr[i - 1])
            expected = cv2.addWeighted(ref_images[i - 1], 1 - a, ref_images[i], a, 0)
        else:
            assert abs(ref_t_arr[i] - t_src) < 1e-6  # nearest mode shows a real frame
            expected = ref_images[i]
        assert np.mean(np.abs(expected.astype(np.float32) - images[k])) < 4.0

    ref_markers, truth_markers = make_markers_for(
        tmp_path / "warped.truth.csv", pair.ref_duration, n=8, seed=2
    )
    assert ref_markers.name == "warped.ref_markers.csv" and truth_markers.name == "warped.truth_markers.csv"
    placed = {r["name"]: float(r["t_ref"]) for r in _read_csv(ref_markers)}
    reached = {r["name"]: float(r["t_new"]) for r in _read_csv(truth_markers)}
    assert len(placed) == 8 and 0 < len(reached) < 8  # the trimmed ends are never reached
    for name, t_new in reached.items():
        assert abs(np.interp(t_new, truth[:, 0], truth[:, 1]) - placed[name]) < 1e-3
