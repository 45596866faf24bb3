"""Conditions of a sample pair's new run: each changes the frames as intended; the truth stays exact."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest

from mtbsync.errors import ConfigError
from mtbsync.samples import SamplePair, make_sample_pair, read_truth
from mtbsync.samples.camera import RunCamera, barrel_maps
from mtbsync.samples.conditions import PRESETS, Conditions, Light, Season, preset
from mtbsync.samples.gps import sample_pair_tracks
from mtbsync.samples.paint import GROUND_ROWS, RIGHT_ROW0, TEXELS_PER_M, WALL_H
from mtbsync.samples.runs import Photometry, Run, plan_new_run, plan_reference_run, truth_rows
from mtbsync.samples.synth import plan_pair_runs
from mtbsync.samples.world import TrailWorld

SIZE = (160, 96)
CENTRE = (SIZE[0] / 2 - 0.5, SIZE[1] / 2 - 0.5)

# A tiny pair: 3 s at 10 fps, 160x90 (a few hundred milliseconds to render).
TINY: dict[str, Any] = {
    "duration_s": 3.0,
    "seed": 4,
    "ref_size": (160, 90),
    "new_size": (160, 90),
    "ref_fps": 10,
    "new_fps": 10,
    "start_gate_wait_s": 0.5,
    "n_markers": 3,
}


def _decode(path: Path) -> tuple[list[np.ndarray], Fraction]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [f.to_ndarray(format="bgr24") for f in container.decode(stream)], stream.average_rate


def _grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(_grey(a) - _grey(b))))


def _sharpness(image: np.ndarray) -> float:
    """High-frequency energy: the variance of the Laplacian."""
    return float(cv2.Laplacian(_grey(image), cv2.CV_32F).var())


def _check_truth(pair: SamplePair) -> np.ndarray:
    """The truth is monotone, on the new video's frame times, and agrees with the marker truth."""
    truth = read_truth(pair.truth_csv)
    assert truth.shape[0] > 5
    assert np.all(np.diff(truth[:, 0]) > 0) and np.all(np.diff(truth[:, 1]) >= 0)
    assert np.allclose(truth[:, 0] * pair.new_fps, np.round(truth[:, 0] * pair.new_fps), atol=1e-3)
    assert truth[-1, 1] <= pair.ref_duration + 1e-9
    with pair.reference_markers_csv.open() as fh:
        ref_time = {line.split(",")[0]: float(line.split(",")[1]) for line in fh.readlines()[1:]}
    with pair.truth_markers_csv.open() as fh:
        for line in fh.readlines()[1:]:
            name, t_new = line.strip().split(",")
            if truth[0, 0] <= float(t_new) <= truth[-1, 0]:
                t_ref = np.interp(float(t_new), truth[:, 0], truth[:, 1])
                assert abs(t_ref - ref_time[name]) < 1.5 / pair.ref_fps
    return truth


# ---------------------------------------------------------------------------------------------
# The camera, frame by frame (no encoding): a still run, no noise, no exposure drift
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run() -> Run:
    world = TrailWorld(4)
    ref = plan_reference_run(world, duration_s=2.0, fps=Fraction(10), seed=9)
    return replace(ref, photometry=Photometry(gain_bgr=(1.0, 1.0, 1.0), drift=0.0, noise_sigma=0.0))


def _frame(run: Run, hfov_deg: float = 110.0, **conditions: Any) -> np.ndarray:
    look = Conditions(**conditions) if conditions else None
    return RunCamera(run, SIZE, hfov_deg=hfov_deg, conditions=look).frame(10)


@pytest.fixture(scope="module")
def base(run: Run) -> np.ndarray:
    return _frame(run)


def test_pitch_down_moves_the_view_up(run: Run, base: np.ndarray) -> None:
    down = _frame(replace(run, mount=(0.0, math.radians(-9.0), 0.0)))
    (dx, dy), _ = cv2.phaseCorrelate(_grey(base), _grey(down))
    focal = SIZE[0] / 2 / math.tan(math.radians(55.0))
    # The scene (horizon, vanishing point) moves up by about f * tan(9 deg).
    assert abs(dx) < 2.0
    assert dy == pytest.approx(-focal * math.tan(math.radians(9.0)), abs=2.0)


def test_lower_camera_changes_the_near_ground_more_than_the_distance(run: Run, base: np.ndarray) -> None:
    low = _frame(replace(run, mount=(-0.4, 0.0, 0.0)))
    diff = np.abs(_grey(base) - _grey(low))
    centre = diff[40:56, 70:90].mean()  # around the vanishing point: far away, barely moves
    bottom = diff[-16:].mean()  # the ground just ahead: 0.4 m nearer
    assert bottom > 1.4 * centre


def test_roll_turns_the_picture(run: Run, base: np.ndarray) -> None:
    rolled = _frame(replace(run, mount=(0.0, 0.0, math.radians(10.0))))

    def turned(angle: float) -> float:
        m = cv2.getRotationMatrix2D(CENTRE, angle, 1.0)
        return float(np.abs(_grey(cv2.warpAffine(base, m, SIZE)) - _grey(rolled))[20:-20, 30:-30].mean())

    # +10 degrees of roll: the picture turns 10 degrees counter-clockwise (OpenCV's positive angle).
    assert turned(10.0) < 0.4 * min(turned(0.0), turned(-10.0))


def test_narrower_field_of_view_zooms_in(run: Run, base: np.ndarray) -> None:
    narrow = _frame(run, hfov_deg=90.0)
    zoom = math.tan(math.radians(55.0)) / math.tan(math.radians(45.0))
    zoomed = cv2.warpAffine(base, cv2.getRotationMatrix2D(CENTRE, 0.0, zoom), SIZE)
    inner = (slice(10, -10), slice(10, -10))
    assert (
        np.abs(_grey(zoomed) - _grey(narrow))[inner].mean()
        < 0.4 * np.abs(_grey(base) - _grey(narrow))[inner].mean()
    )


def test_barrel_distortion_bends_straight_lines() -> None:
    size, k1 = (160, 96), 0.15
    aspect = size[1] / size[0]
    grow = 1 + k1 * (1 + aspect * aspect)
    pinhole = (round(size[0] * grow / 2) * 2, round(size[1] * grow / 2) * 2)
    map_x, map_y = barrel_maps(size, k1, pinhole)
    # The corner pixels show the pinhole image's corner pixels; the centre is the centre.
    assert -0.5 <= map_x[0, 0] < 1.5 and pinhole[0] - 2.5 < map_x[-1, -1] <= pinhole[0] - 0.5
    assert -0.5 <= map_y[0, 0] < 1.5 and pinhole[1] - 2.5 < map_y[-1, -1] <= pinhole[1] - 0.5
    assert map_x[48, 80] == pytest.approx(pinhole[0] / 2, abs=1.0)
    assert map_y[48, 80] == pytest.approx(pinhole[1] / 2, abs=1.0)
    # A straight vertical line near the right edge of the pinhole image: in the output it bows
    # outwards (further right in the middle row than at the top and bottom).
    column = pinhole[0] * 0.85
    where = [int(np.argmin(np.abs(map_x[row] - column))) for row in (0, size[1] // 2, size[1] - 1)]
    assert where[1] > where[0] + 2 and where[1] > where[2] + 2


def test_barrel_distortion_keeps_the_centre_and_moves_the_corners(run: Run, base: np.ndarray) -> None:
    k1 = 0.15
    distorted = _frame(run, lens_k1=k1)
    # Same field of view across the width, compressed at the edges: the centre is magnified 1 + k1.
    zoomed = _grey(cv2.warpAffine(base, cv2.getRotationMatrix2D(CENTRE, 0.0, 1 + k1), SIZE))
    diff = np.abs(zoomed - _grey(distorted))
    centre = diff[36:60, 60:100].mean()
    corners = np.mean(
        [diff[:16, :24].mean(), diff[:16, -24:].mean(), diff[-16:, :24].mean(), diff[-16:, -24:].mean()]
    )
    assert centre < 0.7 * corners
    assert centre < 0.6 * np.abs(_grey(base) - _grey(distorted))[36:60, 60:100].mean()


def test_light_shades_the_ground_not_the_sky(run: Run, base: np.ndarray) -> None:
    lit = _frame(run, light=Light(ground=0.5))
    assert _grey(lit)[-10:].mean() / _grey(base)[-10:].mean() == pytest.approx(0.5, abs=0.08)
    assert _grey(lit)[:10, 70:90].mean() / _grey(base)[:10, 70:90].mean() == pytest.approx(1.0, abs=0.02)


def test_motion_blur_defocus_and_noise(run: Run, base: np.ndarray) -> None:
    assert _sharpness(_frame(run, motion_blur=1.0)) < 0.7 * _sharpness(base)
    assert _sharpness(_frame(run, defocus_px=1.5)) < 0.1 * _sharpness(base)
    noisy = RunCamera(replace(run, photometry=replace(run.photometry, noise_sigma=6.0)), SIZE).frame(10)
    assert float(np.std(noisy.astype(np.float32) - base)) == pytest.approx(6.0, rel=0.1)


def test_motion_blur_is_centred_on_the_frame_time(run: Run) -> None:
    """A blurred frame shows where the camera was at its timestamp: it looks as much like the sharp
    view a shutter earlier as the one a shutter later (a shutter that closed at the timestamp would
    show the camera half a shutter early, against the truth)."""
    camera = RunCamera(run, SIZE, conditions=Conditions(motion_blur=1.0))
    blurred = camera.frame(10)
    t, shutter = float(camera.times[10]), 1.0 / float(run.fps)

    def sharp(at: float) -> np.ndarray:
        return camera.renderer.render(run.poses(np.array([at]))[0])

    earlier, later = _mad(blurred, sharp(t - shutter)), _mad(blurred, sharp(t + shutter))
    assert earlier > 0.5 and later > 0.5  # the camera moves over a shutter time
    assert 0.75 < earlier / later < 1.33
    assert _mad(blurred, sharp(t)) < min(earlier, later)


def test_season_recolours_nature_and_reseeds_the_fine_ground_texture() -> None:
    season = Season(foliage_hue_deg=-40.0, saturation=0.75, leaf_colours="summer", texture_seed=7)
    plain, autumn = TrailWorld(4), TrailWorld(4, season=season)
    chunk = 12  # holds a sign (world seed 4)
    landmark = plain.landmark_of_chunk(chunk)
    assert landmark is not None and landmark.kind == "sign"
    assert autumn.landmark_of_chunk(chunk) == landmark  # the places stay
    a, b = plain.chunk_levels(chunk)[0], autumn.chunk_levels(chunk)[0]
    hsv_a, hsv_b = cv2.cvtColor(a, cv2.COLOR_BGR2HSV), cv2.cvtColor(b, cv2.COLOR_BGR2HSV)
    green = (hsv_a[..., 0] > 35) & (hsv_a[..., 0] < 80) & (hsv_a[..., 1] > 60)
    assert green.mean() > 0.1
    assert hsv_a[..., 0][green].mean() - hsv_b[..., 0][green].mean() > 12  # towards yellow (OpenCV hue)
    assert hsv_b[..., 1].mean() < 0.9 * hsv_a[..., 1].mean()

    def corr(x: np.ndarray, y: np.ndarray) -> float:
        x, y = x - x.mean(), y - y.mean()
        return float((x * y).sum() / np.sqrt((x * x).sum() * (y * y).sum()))

    ground_a, ground_b = _grey(a[:GROUND_ROWS]), _grey(b[:GROUND_ROWS])
    low_a, low_b = cv2.GaussianBlur(ground_a, (0, 0), 6), cv2.GaussianBlur(ground_b, (0, 0), 6)
    assert corr(low_a, low_b) > 0.9  # the same floor, track and rocks
    assert corr(ground_a - low_a, ground_b - low_b) < 0.7  # other fine texture and leaves
    # The sign keeps its paint (drawn after the season's recolouring).
    row0 = (RIGHT_ROW0 if landmark.side == "right" else GROUND_ROWS) + round((WALL_H - 1.55) * TEXELS_PER_M)
    col0 = round((landmark.z - 0.45 - chunk * 10.0) * TEXELS_PER_M)
    rows, cols = slice(row0, row0 + 16), slice(col0, col0 + round(0.9 * TEXELS_PER_M))
    sign_a, sign_b = a[rows, cols].astype(np.float32), b[rows, cols].astype(np.float32)
    assert np.abs(sign_a.mean((0, 1)) - sign_b.mean((0, 1))).max() < 4.0


# ---------------------------------------------------------------------------------------------
# Pairs: default byte for byte; the conditions reach the new video; the truth stays exact
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def plain_pair(tmp_path_factory: pytest.TempPathFactory) -> SamplePair:
    return make_sample_pair(tmp_path_factory.mktemp("plain"), **TINY)


def test_default_conditions_reproduce_the_pair_byte_for_byte(plain_pair: SamplePair, tmp_path: Path) -> None:
    again = make_sample_pair(tmp_path, conditions=Conditions(), **TINY)
    for name in ("truth.csv", "truth_markers.csv", "ref_markers.csv", "sample.json", "ref.mp4", "new.mp4"):
        assert (tmp_path / name).read_bytes() == (plain_pair.directory / name).read_bytes(), name
    for video in ("ref.mp4", "new.mp4"):
        frames_a, _ = _decode(plain_pair.directory / video)
        frames_b, _ = _decode(tmp_path / video)
        assert len(frames_a) == len(frames_b) and all(
            np.array_equal(x, y) for x, y in zip(frames_a, frames_b, strict=True)
        )
    assert again.new_frames == plain_pair.new_frames
    # A named "same" is the default too, and its pair is the cached one.
    assert Conditions(name="anything").is_default and PRESETS["same"].is_default
    before = plain_pair.new.stat().st_mtime_ns
    make_sample_pair(plain_pair.directory, conditions=preset("same"), **TINY)
    assert plain_pair.new.stat().st_mtime_ns == before


def test_low_res_source_frame_rate_and_size(plain_pair: SamplePair, tmp_path: Path) -> None:
    sharp = make_sample_pair(tmp_path / "sharp", conditions=Conditions(size=(256, 192)), **TINY)
    low = make_sample_pair(
        tmp_path / "low", conditions=Conditions(source_size=(96, 72), size=(256, 192), fps=20), **TINY
    )
    frames_sharp, rate_sharp = _decode(sharp.new)
    frames_low, rate_low = _decode(low.new)
    assert frames_low[0].shape == (192, 256, 3) and rate_low == 20 and rate_sharp == 10
    assert low.new_fps == 20 and low.new_frames > 1.8 * plain_pair.new_frames
    assert frames_sharp[0].shape == (192, 256, 3)
    # A small source shown larger has far less fine detail than a source of the video's size.
    assert np.median([_sharpness(f) for f in frames_low]) < 0.35 * np.median(
        [_sharpness(f) for f in frames_sharp]
    )
    truth_low, truth_plain = _check_truth(low), _check_truth(plain_pair)
    # The place is the place whatever the camera: the same ride, sampled at 20 instead of 10 fps.
    assert np.allclose(
        np.interp(truth_plain[:, 0], truth_low[:, 0], truth_low[:, 1]), truth_plain[:, 1], atol=2e-3
    )
    manifest = json.loads(low.manifest.read_text())
    assert manifest["parameters"]["conditions"]["source_size"] == [96, 72]
    assert manifest["new"]["size"] == [256, 192] and manifest["new"]["fps"] == "20"
    # The GPS of a conditions pair follows its new run (replanned with the conditions).
    _, new_track = sample_pair_tracks(low, dropouts=0)
    assert new_track.t[-1] == pytest.approx(low.new_duration, abs=0.11)


def test_exposure_white_balance_and_mount_reach_the_new_run(plain_pair: SamplePair, tmp_path: Path) -> None:
    look = Conditions(
        name="dim_warm",
        exposure=0.5,
        white_balance_rgb=(1.2, 1.0, 0.8),
        camera_height_m=-0.3,
        pitch_deg=-6.0,
        hfov_deg=100.0,
        lens_k1=0.1,
    )
    pair = make_sample_pair(tmp_path, conditions=look, **TINY)
    frames_plain, _ = _decode(plain_pair.new)
    frames_dim, _ = _decode(pair.new)
    assert len(frames_dim) == len(frames_plain)
    # The reference is untouched.
    assert (tmp_path / "ref.mp4").read_bytes() == (plain_pair.directory / "ref.mp4").read_bytes()
    ratio = np.mean([f.mean() for f in frames_dim]) / np.mean([f.mean() for f in frames_plain])
    assert 0.4 < ratio < 0.62
    red_blue = [f[..., 2].mean() / f[..., 0].mean() for f in frames_dim]
    red_blue_plain = [f[..., 2].mean() / f[..., 0].mean() for f in frames_plain]
    assert np.mean(red_blue) > 1.3 * np.mean(red_blue_plain)  # warmer
    params = json.loads(pair.manifest.read_text())["parameters"]
    world = TrailWorld(params["world_seed"])
    _, new = plan_pair_runs(params, world, world)
    assert new.mount == pytest.approx((-0.3, math.radians(-6.0), 0.0))
    assert new.photometry.gain_bgr == pytest.approx((0.4, 0.5, 0.6))
    truth = _check_truth(pair)
    assert np.array_equal(truth, read_truth(plain_pair.truth_csv))  # the same ride, the same truth


# ---------------------------------------------------------------------------------------------
# Timing: a stop anywhere, a wait before the start
# ---------------------------------------------------------------------------------------------
def test_a_stop_at_a_chosen_time_holds_the_reference_time() -> None:
    world = TrailWorld(4)
    ref = plan_reference_run(world, duration_s=10.0, fps=Fraction(30), seed=9)
    new = plan_new_run(
        world, ref, fps=Fraction(25), seed=10, with_stop=True, late_start=False, early_end=False,
        start_gate_wait_s=0.0, stop_s=1.5, stop_at_s=4.0,
    )  # fmt: skip
    truth = truth_rows(ref, new)
    t_new, t_ref = truth[:, 0], truth[:, 1]
    resting = (t_new >= 4.0) & (t_new <= 5.5)
    assert resting.sum() == 38  # every frame from 4.0 to 5.5 s
    assert np.ptp(t_ref[resting]) < 1e-4
    before, after = t_ref[t_new <= 3.0][-1], t_ref[t_new >= 6.5][0]
    assert before < t_ref[resting][0] - 0.05 and after > t_ref[resting][-1] + 0.05
    assert new.description["stop_at_s"] == pytest.approx(4.0)


def test_a_stop_placed_by_distance_and_a_wait_through_conditions(tmp_path: Path) -> None:
    look = Conditions(name="wait_and_stop", start_wait_s=1.5, stop_s=1.0, stop_fraction=0.5)
    pair = make_sample_pair(tmp_path, conditions=look, **{**TINY, "duration_s": 4.0, "new_fps": 20})
    truth = _check_truth(pair)
    manifest = json.loads(pair.manifest.read_text())["new"]
    assert manifest["start_gate_wait_s"] == 1.5 and manifest["stop_s"] == 1.0
    assert truth[0, 0] >= 1.5  # waiting off the trail: no counterpart
    rest = manifest["stop_at_s"]
    resting = (truth[:, 0] >= rest) & (truth[:, 0] <= rest + 1.0)
    assert resting.sum() >= 20 and np.ptp(truth[resting, 1]) < 1e-4
    # Half way along the ride (the ramp down adds a few metres).
    params = json.loads(pair.manifest.read_text())["parameters"]
    world = TrailWorld(params["world_seed"])
    _, new = plan_pair_runs(params, world, world)
    start, end = manifest["on_trail_start_m"], manifest["end_m"]
    assert 0.5 <= (float(new.arc_length(rest)) - start) / (end - start) < 0.5 + 6.0 / (end - start)


# ---------------------------------------------------------------------------------------------
# The dataclass
# ---------------------------------------------------------------------------------------------
def test_presets_round_trip_through_json() -> None:
    for name, look in PRESETS.items():
        assert look.name == name
        data = json.loads(json.dumps(look.to_dict()))
        assert Conditions.from_dict(data) == look
        assert look.is_default == (name == "same")
    chest = preset("chest_mount")
    assert chest.camera_height_m == -0.4 and chest.pitch_deg == -9.0 and chest.hfov_deg == 108.0
    assert chest.lens_k1 == 0.12 and chest.white_balance_rgb == (1.14, 0.98, 0.78) and chest.exposure < 1
    assert preset("low_res").source_size == (160, 120) and preset("low_res").size == (640, 480)


@pytest.mark.parametrize(
    "bad",
    [
        {"lens_k1": -0.1},
        {"hfov_deg": 200.0},
        {"exposure": 0.0},
        {"source_size": (95, 64)},
        {"stop_at_s": 3.0},  # no length
        {"stop_s": 1.0, "stop_at_s": 3.0, "stop_fraction": 0.5},
        {"season": Season(leaf_colours="purple")},
        {"light": Light(ground=0.0)},
    ],
)
def test_bad_conditions_are_config_errors(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        Conditions(**bad)


def test_unknown_preset_and_wrong_type_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        preset("snow")
    with pytest.raises(ConfigError):
        make_sample_pair(tmp_path, conditions={"exposure": 0.5}, **TINY)  # type: ignore[arg-type]
