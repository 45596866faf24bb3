"""Sample pairs of trail runs with exact known truth, generated in code.

`make_sample_pair` renders a reference run and a new run of the same procedural trail (see
`world.py`) and writes ``ref.mp4``, ``new.mp4``, ``truth.csv``, ``ref_markers.csv``,
``truth_markers.csv`` and ``sample.json`` into a folder. `make_different_trail_pair` does the same
with the new run on another trail (nothing should align).

Files:

- ``truth.csv``: ``t_new,t_ref``, one row per new frame whose place the reference video shows.
- ``ref_markers.csv``: ``name,t_ref,colour,comment``: markers where the reference passes landmarks.
- ``truth_markers.csv``: ``name,t_new``: when the new run first reaches each marker's place (exact,
  not rounded to a frame); markers it never reaches have no row.
- ``sample.json``: every parameter, frame counts and durations (``schema_version`` 1).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from mtbsync.errors import ConfigError
from mtbsync.io.files import atomic_write_text
from mtbsync.io.writer import VideoWriter, exact_fps, upscale_i420
from mtbsync.samples.render import TrailRenderer
from mtbsync.samples.runs import (
    Run,
    choose_marker_landmarks,
    first_time_at,
    plan_new_run,
    plan_reference_run,
    truth_rows,
)
from mtbsync.samples.world import TrailWorld

log = logging.getLogger("mtbsync")

SCHEMA_VERSION = 1
GENERATOR_VERSION = 1  # bump when the rendering changes, so stale samples are not reused
# Wider videos are rendered at this width and scaled up: rendering costs per pixel, and the pipeline
# looks at frames of at most ~960 px anyway.
MAX_RENDER_WIDTH = 768

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SamplePair:
    """A generated pair and its truth files.

    Attributes:
        directory: The folder holding everything.
        reference: The reference run's video (``ref.mp4``).
        new: The new run's video (``new.mp4``).
        truth_csv: ``t_new,t_ref`` per new frame with a counterpart (header only if none).
        reference_markers_csv: ``name,t_ref,colour,comment``.
        truth_markers_csv: ``name,t_new`` for the markers the new run reaches.
        ref_fps: Reference frame rate.
        new_fps: New-run frame rate.
        manifest: ``sample.json`` with every parameter.
        ref_frames: Frames in the reference video.
        new_frames: Frames in the new video.
        same_trail: False for a different-trail pair (no truth rows).
    """

    directory: Path
    reference: Path
    new: Path
    truth_csv: Path
    reference_markers_csv: Path
    truth_markers_csv: Path
    ref_fps: float
    new_fps: float
    manifest: Path | None = None
    ref_frames: int = 0
    new_frames: int = 0
    same_trail: bool = True

    @property
    def ref_duration(self) -> float:
        """Time of the reference's last frame (s)."""
        return (self.ref_frames - 1) / self.ref_fps if self.ref_frames else 0.0

    @property
    def new_duration(self) -> float:
        """Time of the new run's last frame (s)."""
        return (self.new_frames - 1) / self.new_fps if self.new_frames else 0.0


# ---------------------------------------------------------------------------------------------
# Rendering a run to a video
# ---------------------------------------------------------------------------------------------
def _render_size(size: tuple[int, int], max_width: int) -> tuple[int, int]:
    width, height = size
    if width <= max_width:
        return size
    return max_width, max(2, round(height * max_width / width / 2) * 2)


def write_run(
    run: Run,
    path: Path,
    size: tuple[int, int],
    *,
    hfov_deg: float = 110.0,
    codec: str = "libx264",
    crf: int = 23,
    gop: int | None = None,
    preset: str | None = None,
    motion_blur: bool = False,
    max_render_width: int = MAX_RENDER_WIDTH,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Render every frame of ``run`` and encode it to ``path`` (atomically).

    Args:
        run: The run (poses, frame rate, photometry).
        path: Output ``.mp4``.
        size: Output (width, height).
        hfov_deg: Horizontal field of view.
        codec: Encoder.
        crf: Quality.
        gop: Keyframe interval (frames; None: half a second).
        preset: Encoder preset (None: by size).
        motion_blur: Average two renders half a frame apart (twice the rendering time).
        max_render_width: Wider videos are rendered at this width and scaled up.
        progress: Called with the number of frames written so far.

    Returns:
        ``path``.
    """
    render_size = _render_size(size, max_render_width)
    renderer = TrailRenderer(run.world, render_size, hfov_deg=hfov_deg)
    rng = np.random.default_rng([run.seed & 0xFFFFFFFF, 77])
    w, h = render_size
    pad = 32
    # A bank of Gaussian noise, cropped at a random offset per frame: per-frame Gaussian draws
    # would cost more than the rendering.
    bank = np.round(rng.normal(0.0, run.photometry.noise_sigma, (h + pad, w + pad, 3))).astype(np.int16)
    times = run.frame_times
    poses = run.poses(times)
    blur_poses = run.poses(np.maximum(times - 0.5 / float(run.fps), 0.0)) if motion_blur else None
    gain = np.array(run.photometry.gain_bgr)
    with VideoWriter(path, size, run.fps, codec=codec, crf=crf, gop=gop, preset=preset) as writer:
        for k, t in enumerate(times):
            image = renderer.render(poses[k])
            if blur_poses is not None:
                image = cv2.addWeighted(image, 0.5, renderer.render(blur_poses[k]), 0.5, 0.0)
            g = gain * run.exposure(float(t))
            image = cv2.multiply(image, (float(g[0]), float(g[1]), float(g[2]), 0.0))
            oy, ox = (int(v) for v in rng.integers(0, pad, 2))
            image = cv2.add(image, bank[oy : oy + h, ox : ox + w], dtype=cv2.CV_8U)
            if render_size != size:
                writer.write_i420(upscale_i420(image, size))
            else:
                writer.write(image)
            if progress is not None:
                progress(k + 1)
    return path


def _render_runs(
    jobs: list[tuple[Run, Path, tuple[int, int]]],
    options: dict,
    progress: Progress | None,
    *,
    parallel: bool,
) -> None:
    """Write every (run, path, size) job; in parallel threads if asked (NumPy, OpenCV and x264 release
    the GIL, so two runs keep two cores busy). ``progress`` is always called from this thread."""
    total = sum(run.n_frames for run, _, _ in jobs)
    if not parallel or len(jobs) < 2:
        offset = 0
        for run, path, size in jobs:
            report = None if progress is None else (lambda done, base=offset: progress(base + done, total))
            write_run(run, path, size, progress=report, **options)
            offset += run.n_frames
        return
    events: queue.Queue[tuple[int, int]] = queue.Queue()
    stop = threading.Event()
    done = [0] * len(jobs)

    def report(index: int, count: int) -> None:
        if stop.is_set():
            raise _Cancelled  # the other run failed, or the caller was interrupted
        events.put((index, count))

    with ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="mtbsync-sample") as pool:
        futures = [
            pool.submit(write_run, run, path, size, progress=partial(report, i), **options)
            for i, (run, path, size) in enumerate(jobs)
        ]
        try:
            while not all(f.done() for f in futures) or not events.empty():
                if any(f.done() and f.exception() is not None for f in futures):
                    break
                try:
                    index, count = events.get(timeout=0.1)
                except queue.Empty:
                    continue
                done[index] = count
                if progress is not None:
                    progress(sum(done), total)
        finally:
            stop.set()  # lets the other worker give up at its next frame if we leave early
        errors = [f.exception() for f in futures if not isinstance(f.exception(), _Cancelled)]
        for error in errors:
            if error is not None:
                raise error


class _Cancelled(Exception):
    """Raised inside a rendering thread to stop it early."""


# ---------------------------------------------------------------------------------------------
# CSV files
# ---------------------------------------------------------------------------------------------
def _csv_text(header: list[str], rows: list[list[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def write_truth_csv(path: Path, rows: np.ndarray) -> Path:
    """``t_new,t_ref`` with microsecond precision."""
    return atomic_write_text(path, _csv_text(["t_new", "t_ref"], [[f"{a:.6f}", f"{b:.6f}"] for a, b in rows]))


def write_reference_markers_csv(path: Path, markers: list[tuple[str, float, str, str]]) -> Path:
    """``name,t_ref,colour,comment``."""
    rows = [[name, f"{t:.6f}", colour, comment] for name, t, colour, comment in markers]
    return atomic_write_text(path, _csv_text(["name", "t_ref", "colour", "comment"], rows))


def write_truth_markers_csv(path: Path, markers: list[tuple[str, float]]) -> Path:
    """``name,t_new``."""
    return atomic_write_text(path, _csv_text(["name", "t_new"], [[n, f"{t:.6f}"] for n, t in markers]))


# ---------------------------------------------------------------------------------------------
# Public makers
# ---------------------------------------------------------------------------------------------
def _check_size(name: str, size: tuple[int, int]) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be (width, height), got {size!r}") from None
    if width % 2 or height % 2 or width < 64 or height < 36:
        raise ConfigError(f"{name} {width}x{height} must be even and at least 64x36")
    return width, height


def _pair_paths(out_dir: Path) -> dict[str, Path]:
    return {
        "reference": out_dir / "ref.mp4",
        "new": out_dir / "new.mp4",
        "truth_csv": out_dir / "truth.csv",
        "reference_markers_csv": out_dir / "ref_markers.csv",
        "truth_markers_csv": out_dir / "truth_markers.csv",
        "manifest": out_dir / "sample.json",
    }


def _reuse(out_dir: Path, params: dict) -> SamplePair | None:
    """The pair already in ``out_dir`` if it was made with exactly ``params`` and is complete."""
    paths = _pair_paths(out_dir)
    if not all(p.exists() for p in paths.values()):
        return None
    try:
        manifest = json.loads(paths["manifest"].read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if manifest.get("schema_version") != SCHEMA_VERSION or manifest.get("parameters") != params:
        return None
    log.info("sample pair in %s is up to date; reusing it", out_dir)
    return _pair_from_manifest(out_dir, manifest)


def _pair_from_manifest(out_dir: Path, manifest: dict) -> SamplePair:
    paths = _pair_paths(out_dir)
    return SamplePair(
        directory=out_dir,
        reference=paths["reference"],
        new=paths["new"],
        truth_csv=paths["truth_csv"],
        reference_markers_csv=paths["reference_markers_csv"],
        truth_markers_csv=paths["truth_markers_csv"],
        ref_fps=float(Fraction(manifest["reference"]["fps"])),
        new_fps=float(Fraction(manifest["new"]["fps"])),
        manifest=paths["manifest"],
        ref_frames=int(manifest["reference"]["frames"]),
        new_frames=int(manifest["new"]["frames"]),
        same_trail=bool(manifest["same_trail"]),
    )


def _make_pair(
    out_dir: str | Path,
    *,
    same_trail: bool,
    duration_s: float,
    seed: int,
    ref_size: tuple[int, int],
    new_size: tuple[int, int],
    ref_fps: float | Fraction,
    new_fps: float | Fraction,
    with_stop: bool,
    late_start: bool,
    early_end: bool,
    start_gate_wait_s: float,
    world_seed: int | None,
    codec: str,
    crf: int,
    gop: int | None,
    preset: str | None,
    hfov_deg: float,
    n_markers: int,
    motion_blur: bool,
    max_render_width: int,
    parallel: bool | None,
    reuse: bool,
    progress: Progress | None,
) -> SamplePair:
    if not 1.0 <= duration_s <= 7200:
        raise ConfigError(f"duration {duration_s} s is out of range [1, 7200]")
    if not 60.0 <= hfov_deg <= 150.0:
        raise ConfigError(f"field of view {hfov_deg} degrees is out of range [60, 150]")
    if start_gate_wait_s < 0:
        raise ConfigError("start_gate_wait_s must not be negative")
    ref_size, new_size = _check_size("ref_size", ref_size), _check_size("new_size", new_size)
    ref_rate, new_rate = exact_fps(ref_fps), exact_fps(new_fps)
    world_seed = int(seed if world_seed is None else world_seed)
    # Another trail entirely: a world seed far from any the user is likely to pick.
    new_world_seed = world_seed if same_trail else world_seed + 1_000_003
    out_dir = Path(out_dir)
    params = {
        "generator_version": GENERATOR_VERSION,
        "same_trail": same_trail,
        "duration_s": duration_s,
        "seed": seed,
        "world_seed": world_seed,
        "new_world_seed": new_world_seed,
        "ref_size": list(ref_size),
        "new_size": list(new_size),
        "ref_fps": str(ref_rate),
        "new_fps": str(new_rate),
        "with_stop": with_stop,
        "late_start": late_start,
        "early_end": early_end,
        "start_gate_wait_s": start_gate_wait_s,
        "codec": codec,
        "crf": crf,
        "gop": gop,
        "preset": preset,
        "hfov_deg": hfov_deg,
        "n_markers": n_markers,
        "motion_blur": motion_blur,
        "max_render_width": max_render_width,
    }
    if max_render_width < 64:
        raise ConfigError(f"max_render_width {max_render_width} is too small (at least 64)")
    if parallel is None:
        parallel = (os.cpu_count() or 1) >= 2
    if reuse and (existing := _reuse(out_dir, params)) is not None:
        return existing
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = _pair_paths(out_dir)

    world = TrailWorld(world_seed)
    new_world = world if same_trail else TrailWorld(new_world_seed)
    ref = plan_reference_run(world, duration_s=duration_s, fps=ref_rate, seed=seed * 2 + 1)
    new = plan_new_run(
        new_world,
        ref,
        fps=new_rate,
        seed=seed * 2 + 2,
        with_stop=with_stop,
        late_start=late_start,
        early_end=early_end,
        start_gate_wait_s=start_gate_wait_s,
    )
    common = {
        "hfov_deg": hfov_deg,
        "codec": codec,
        "crf": crf,
        "gop": gop,
        "preset": preset,
        "motion_blur": motion_blur,
        "max_render_width": max_render_width,
    }
    jobs = [(ref, paths["reference"], ref_size), (new, paths["new"], new_size)]
    _render_runs(jobs, common, progress, parallel=parallel)

    landmarks = choose_marker_landmarks(world, ref, n_markers)
    ref_markers = []
    truth_markers = []
    for lm in landmarks:
        t_ref = float(np.interp(lm.z, ref.s, ref.t))
        ref_markers.append((lm.name, t_ref, lm.colour, lm.description))
        if same_trail and (t_new := first_time_at(new, lm.z)) is not None:
            truth_markers.append((lm.name, t_new))
    rows = truth_rows(ref, new) if same_trail else np.empty((0, 2))
    write_truth_csv(paths["truth_csv"], rows)
    write_reference_markers_csv(paths["reference_markers_csv"], ref_markers)
    write_truth_markers_csv(paths["truth_markers_csv"], truth_markers)
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "parameters": params,
        "same_trail": same_trail,
        "reference": {
            "file": paths["reference"].name,
            "fps": str(ref_rate),
            "frames": ref.n_frames,
            "duration_s": ref.duration,
            "size": list(ref_size),
            "start_m": float(ref.s[0]),
            "end_m": float(ref.arc_length(ref.duration)),
        },
        "new": {
            "file": paths["new"].name,
            "fps": str(new_rate),
            "frames": new.n_frames,
            "duration_s": new.duration,
            "size": list(new_size),
            **new.description,
        },
        "truth_rows": int(rows.shape[0]),
        "markers": len(ref_markers),
        "markers_reached": len(truth_markers),
    }
    atomic_write_text(paths["manifest"], json.dumps(manifest, indent=2) + "\n")
    return _pair_from_manifest(out_dir, manifest)


def make_sample_pair(
    out_dir: str | Path,
    *,
    duration_s: float = 30.0,
    seed: int = 0,
    ref_size: tuple[int, int] = (640, 360),
    new_size: tuple[int, int] = (480, 270),
    ref_fps: float | Fraction = 30.0,
    new_fps: float | Fraction = 25.0,
    with_stop: bool = True,
    late_start: bool = True,
    early_end: bool = True,
    start_gate_wait_s: float = 2.0,
    world_seed: int | None = None,
    codec: str = "libx264",
    crf: int = 23,
    gop: int | None = None,
    preset: str | None = None,
    hfov_deg: float = 110.0,
    n_markers: int = 10,
    motion_blur: bool = False,
    max_render_width: int = MAX_RENDER_WIDTH,
    parallel: bool | None = None,
    reuse: bool = True,
    progress: Progress | None = None,
) -> SamplePair:
    """Render a reference run and a time-warped new run of one trail, with exact truth.

    The reference rides ``duration_s`` seconds at a steady pace (about 6 m/s, +-15 %). The new run
    rides the same trail at 0.5x-2x that pace, optionally stopping for 2 s, starting further down
    the trail, ending earlier and opening with a wait at the start gate (see
    `runs.plan_new_run`); its duration follows from that.

    Args:
        out_dir: Folder for the files (created; files already there with other names are kept).
        duration_s: Reference video duration (s).
        seed: Seed of the runs' randomness (speed profiles, head motion, noise).
        ref_size: Reference video (width, height), even.
        new_size: New video (width, height), even.
        ref_fps: Reference frame rate (29.97 means 30000/1001).
        new_fps: New-run frame rate.
        with_stop: The new run stops for 2 s on the way.
        late_start: The new run's ride starts 12 % of the distance after the reference's start.
        early_end: The new run ends 10 % of the distance before the reference's end.
        start_gate_wait_s: Seconds of standing still at the start of the new video (0: none).
        world_seed: The trail (None: ``seed``); another seed is another trail.
        codec: Encoder (``libx264``).
        crf: Encoder quality (lower is better, bigger).
        gop: Keyframe interval in frames (None: half a second, as GoPro cameras do).
        preset: x264 preset (None: ``superfast``, ``ultrafast`` above 1280x720).
        hfov_deg: Horizontal field of view of the camera (degrees).
        n_markers: Markers to place (at most; one per landmark, about one landmark per 15 m).
        motion_blur: Blur frames along the motion (doubles the rendering time).
        max_render_width: Videos wider than this are rendered at this width and scaled up (the
            pipeline looks at frames of at most ~960 px; rendering is the costly part).
        parallel: Render the two runs in two threads (None: when there are at least 2 CPUs).
        reuse: If ``out_dir`` already holds a complete pair made with the same parameters (and this
            generator version), return it without rendering.
        progress: Called as ``progress(done_frames, total_frames)`` while rendering.

    Returns:
        The pair's paths and rates.

    Raises:
        ConfigError: A parameter is out of range or the encoder is missing.
    """
    return _make_pair(
        out_dir,
        same_trail=True,
        duration_s=duration_s,
        seed=seed,
        ref_size=ref_size,
        new_size=new_size,
        ref_fps=ref_fps,
        new_fps=new_fps,
        with_stop=with_stop,
        late_start=late_start,
        early_end=early_end,
        start_gate_wait_s=start_gate_wait_s,
        world_seed=world_seed,
        codec=codec,
        crf=crf,
        gop=gop,
        preset=preset,
        hfov_deg=hfov_deg,
        n_markers=n_markers,
        motion_blur=motion_blur,
        max_render_width=max_render_width,
        parallel=parallel,
        reuse=reuse,
        progress=progress,
    )


def make_different_trail_pair(
    out_dir: str | Path,
    *,
    duration_s: float = 30.0,
    seed: int = 0,
    ref_size: tuple[int, int] = (640, 360),
    new_size: tuple[int, int] = (480, 270),
    ref_fps: float | Fraction = 30.0,
    new_fps: float | Fraction = 25.0,
    with_stop: bool = True,
    late_start: bool = True,
    early_end: bool = True,
    start_gate_wait_s: float = 2.0,
    world_seed: int | None = None,
    codec: str = "libx264",
    crf: int = 23,
    gop: int | None = None,
    preset: str | None = None,
    hfov_deg: float = 110.0,
    n_markers: int = 10,
    motion_blur: bool = False,
    max_render_width: int = MAX_RENDER_WIDTH,
    parallel: bool | None = None,
    reuse: bool = True,
    progress: Progress | None = None,
) -> SamplePair:
    """Like `make_sample_pair`, but the new run rides another trail (another world seed).

    Same camera, rig, speed profile and look, so only the place differs: a correct aligner reports
    "not aligned". ``truth.csv`` and ``truth_markers.csv`` hold only their header lines (no new
    frame has a counterpart, no marker is reached); ``ref_markers.csv`` is as usual.

    Args:
        out_dir: Folder for the files.
        duration_s: Reference video duration (s).
        seed: Seed of the runs' randomness.
        ref_size: Reference video (width, height).
        new_size: New video (width, height).
        ref_fps: Reference frame rate.
        new_fps: New-run frame rate.
        with_stop: The new run stops for 2 s on the way.
        late_start: As in `make_sample_pair` (distances are taken on the other trail).
        early_end: As in `make_sample_pair`.
        start_gate_wait_s: Seconds of standing still at the start of the new video.
        world_seed: The reference's trail (None: ``seed``); the new run's is ``world_seed + 1000003``.
        codec: Encoder.
        crf: Encoder quality.
        gop: Keyframe interval in frames.
        preset: x264 preset.
        hfov_deg: Horizontal field of view (degrees).
        n_markers: Reference markers to place.
        motion_blur: Blur frames along the motion.
        max_render_width: Videos wider than this are rendered at this width and scaled up.
        parallel: Render the two runs in two threads (None: when there are at least 2 CPUs).
        reuse: Return a complete pair already in ``out_dir`` made with the same parameters.
        progress: Called as ``progress(done_frames, total_frames)``.

    Returns:
        The pair (``same_trail`` is False).

    Raises:
        ConfigError: A parameter is out of range or the encoder is missing.
    """
    return _make_pair(
        out_dir,
        same_trail=False,
        duration_s=duration_s,
        seed=seed,
        ref_size=ref_size,
        new_size=new_size,
        ref_fps=ref_fps,
        new_fps=new_fps,
        with_stop=with_stop,
        late_start=late_start,
        early_end=early_end,
        start_gate_wait_s=start_gate_wait_s,
        world_seed=world_seed,
        codec=codec,
        crf=crf,
        gop=gop,
        preset=preset,
        hfov_deg=hfov_deg,
        n_markers=n_markers,
        motion_blur=motion_blur,
        max_render_width=max_render_width,
        parallel=parallel,
        reuse=reuse,
        progress=progress,
    )
