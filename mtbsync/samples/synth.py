"""Sample pairs of trail runs with exact known truth, generated in code.

`make_sample_pair` renders a reference run and a new run of the same procedural trail (see
`world.py`) and writes ``ref.mp4``, ``new.mp4``, ``truth.csv``, ``ref_markers.csv``,
``truth_markers.csv`` and ``sample.json`` into a folder. `make_different_trail_pair` does the same
with the new run on another trail (nothing should align). Either takes ``conditions=`` (see
`conditions.py`): the new run's camera mount, lens, light, season, sensor, frame rate and timing.

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
import math
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import partial
from pathlib import Path

import numpy as np

from mtbsync.errors import ConfigError
from mtbsync.io.files import atomic_write_text
from mtbsync.io.writer import VideoWriter, exact_fps, upscale_i420
from mtbsync.samples.camera import RunCamera
from mtbsync.samples.conditions import Conditions
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
GENERATOR_VERSION = 2  # bump when the rendering changes, so stale samples are not reused (2: centred shutter)
CONDITIONS_VERSION = 1  # bump when rendering under `Conditions` changes (pairs made with them only)
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
    conditions: Conditions | None = None,
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
        motion_blur: Average two renders half a frame apart, centred on the frame time (twice the
            rendering time).
        max_render_width: Wider videos are rendered at this width and scaled up.
        conditions: This camera's lens, light, blur and source size (its mount, photometry and
            timing are the run's already); None: a plain pinhole camera.
        progress: Called with the number of frames written so far.

    Returns:
        ``path``.
    """
    look = None if conditions is None or conditions.is_default else conditions
    render_size = _render_size(size, max_render_width)
    if look is not None and look.source_size is not None:
        render_size = look.source_size  # a low-res camera: rendered small, shown at ``size``
    camera = RunCamera(run, render_size, hfov_deg=hfov_deg, motion_blur=motion_blur, conditions=look)
    with VideoWriter(path, size, run.fps, codec=codec, crf=crf, gop=gop, preset=preset) as writer:
        for k in range(run.n_frames):
            image = camera.frame(k)
            if render_size != size:
                writer.write_i420(upscale_i420(image, size))
            else:
                writer.write(image)
            if progress is not None:
                progress(k + 1)
    return path


def _render_runs(
    jobs: list[tuple[Run, Path, tuple[int, int], dict]],
    progress: Progress | None,
    *,
    parallel: bool,
) -> None:
    """Write every (run, path, size, write_run options) job; in parallel threads if asked (NumPy,
    OpenCV and x264 release the GIL, so two runs keep two cores busy). ``progress`` is always called
    from this thread."""
    total = sum(run.n_frames for run, *_ in jobs)
    if not parallel or len(jobs) < 2:
        offset = 0
        for run, path, size, options in jobs:
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
            for i, (run, path, size, options) in enumerate(jobs)
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
# Planning a pair's runs (also used to replan them from a manifest, e.g. for GPS tracks)
# ---------------------------------------------------------------------------------------------
_DEFAULT_STOP_S = 2.0


def pair_conditions(params: dict) -> Conditions | None:
    """The conditions of a pair's new run from its manifest ``parameters`` (None: none)."""
    data = params.get("conditions")
    return None if data is None else Conditions.from_dict(data)


def new_run_settings(params: dict) -> dict:
    """What the new run is made with once its conditions override the pair's parameters.

    Returns:
        ``fps`` (Fraction), ``size``, ``crf``, ``hfov_deg``, ``start_gate_wait_s``, ``with_stop``,
        ``stop_s``, ``stop_at_s``, ``stop_fraction``.
    """
    look = pair_conditions(params)
    out = {
        "fps": Fraction(params["new_fps"]),
        "size": tuple(params["new_size"]),
        "crf": params["crf"],
        "hfov_deg": params["hfov_deg"],
        "start_gate_wait_s": float(params["start_gate_wait_s"]),
        "with_stop": bool(params["with_stop"]),
        "stop_s": _DEFAULT_STOP_S,
        "stop_at_s": None,
        "stop_fraction": None,
    }
    if look is None:
        return out
    if look.fps is not None:
        out["fps"] = exact_fps(look.fps)
    if look.size is not None:
        out["size"] = tuple(look.size)
    if look.crf is not None:
        out["crf"] = look.crf
    if look.hfov_deg is not None:
        out["hfov_deg"] = look.hfov_deg
    if look.start_wait_s is not None:
        out["start_gate_wait_s"] = float(look.start_wait_s)
    if look.stop_s is not None:
        out["with_stop"] = look.stop_s > 0
        out["stop_s"] = look.stop_s if look.stop_s > 0 else _DEFAULT_STOP_S
    out["stop_at_s"], out["stop_fraction"] = look.stop_at_s, look.stop_fraction
    return out


def plan_pair_runs(params: dict, world: TrailWorld, new_world: TrailWorld) -> tuple[Run, Run]:
    """The reference run and the new run a pair's manifest ``parameters`` describe (no rendering).

    Args:
        params: ``sample.json``'s ``parameters``.
        world: The reference's trail.
        new_world: The new run's trail (the same world, another look of it, or another trail).

    Returns:
        ``(reference, new)``; the new run carries its conditions' mount and photometry.
    """
    settings = new_run_settings(params)
    ref = plan_reference_run(
        world, duration_s=params["duration_s"], fps=Fraction(params["ref_fps"]), seed=params["seed"] * 2 + 1
    )
    new = plan_new_run(
        new_world,
        ref,
        fps=settings["fps"],
        seed=params["seed"] * 2 + 2,
        with_stop=settings["with_stop"],
        late_start=bool(params["late_start"]),
        early_end=bool(params["early_end"]),
        start_gate_wait_s=settings["start_gate_wait_s"],
        stop_s=settings["stop_s"],
        stop_at_s=settings["stop_at_s"],
        stop_fraction=settings["stop_fraction"],
    )
    look = pair_conditions(params)
    if look is None:
        return ref, new
    photometry = new.photometry
    gain_bgr = photometry.gain_bgr
    if look.white_balance_rgb is not None:
        r, g, b = look.white_balance_rgb
        gain_bgr = (b, g, r)
    if look.exposure != 1.0:
        gain_bgr = tuple(v * look.exposure for v in gain_bgr)
    photometry = replace(
        photometry,
        gain_bgr=gain_bgr,
        drift=photometry.drift if look.exposure_drift is None else look.exposure_drift,
        noise_sigma=photometry.noise_sigma if look.noise_sigma is None else look.noise_sigma,
    )
    mount = (look.camera_height_m, math.radians(look.pitch_deg), math.radians(look.roll_deg))
    return ref, replace(new, photometry=photometry, mount=mount)


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
    conditions: Conditions | None,
) -> SamplePair:
    if conditions is not None and not isinstance(conditions, Conditions):
        raise ConfigError(f"conditions must be a Conditions, got {type(conditions).__name__}")
    look = None if conditions is None or conditions.is_default else conditions
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
    if look is not None:  # (absent otherwise: pairs made before conditions existed stay valid)
        params["conditions"] = look.to_dict()
        params["conditions_version"] = CONDITIONS_VERSION
    if max_render_width < 64:
        raise ConfigError(f"max_render_width {max_render_width} is too small (at least 64)")
    if parallel is None:
        parallel = (os.cpu_count() or 1) >= 2
    if reuse and (existing := _reuse(out_dir, params)) is not None:
        return existing
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = _pair_paths(out_dir)

    world = TrailWorld(world_seed)
    if look is not None and look.season is not None:
        new_world = TrailWorld(new_world_seed, season=look.season)  # the same places, another look
    else:
        new_world = world if same_trail else TrailWorld(new_world_seed)
    ref, new = plan_pair_runs(params, world, new_world)
    settings = new_run_settings(params)
    common = {
        "hfov_deg": hfov_deg,
        "codec": codec,
        "crf": crf,
        "gop": gop,
        "preset": preset,
        "motion_blur": motion_blur,
        "max_render_width": max_render_width,
    }
    new_options = dict(common)
    if look is not None:
        new_options.update(hfov_deg=settings["hfov_deg"], crf=settings["crf"], conditions=look)
    jobs = [
        (ref, paths["reference"], ref_size, common),
        (new, paths["new"], settings["size"], new_options),
    ]
    _render_runs(jobs, progress, parallel=parallel)

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
            "fps": str(new.fps),
            "frames": new.n_frames,
            "duration_s": new.duration,
            "size": list(settings["size"]),
            **new.description,
            **({"conditions": look.name, "hfov_deg": settings["hfov_deg"]} if look is not None else {}),
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
    conditions: Conditions | None = None,
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
        conditions: How the new run's camera, light, season and timing differ from the
            reference's (see `mtbsync.samples.conditions`; its fields that are set override
            ``new_size``, ``new_fps``, ``crf``, ``hfov_deg``, ``start_gate_wait_s`` and
            ``with_stop`` for the new run). None or ``Conditions()``: exactly as without.

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
        conditions=conditions,
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
    conditions: Conditions | None = None,
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
        conditions: As in `make_sample_pair` (the new run's camera, light, season, timing).

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
        conditions=conditions,
    )
