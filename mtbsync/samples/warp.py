"""Self-warped copies of real clips, with exact truth: a real camera's look, a known time warp.

`warp_video` re-times a clip along a smooth monotone map t_src(t_dst) (varying speed, an optional
freeze that plays the part of a stop, trimmed ends) and writes ``<dst stem>.truth.csv`` beside the
copy. The copy is the "new run", the source the "reference"; `make_markers_for` adds markers, and
`make_warped_pair` does all of it and returns a `SamplePair`.
"""

from __future__ import annotations

import contextlib
import csv
import math
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from mtbsync.errors import ConfigError, MediaError
from mtbsync.io.video import iter_color_frames, packet_times
from mtbsync.io.writer import VideoWriter, exact_fps
from mtbsync.samples.noise import smooth_signal
from mtbsync.samples.synth import (
    SamplePair,
    write_reference_markers_csv,
    write_truth_csv,
    write_truth_markers_csv,
)
from mtbsync.samples.world import PALETTE

_GRID_DT = 0.001


def time_map(
    src_start: float,
    src_end: float,
    *,
    seed: int,
    speed_range: tuple[float, float],
    with_stop: bool,
    stop_s: float,
) -> tuple[np.ndarray, np.ndarray]:
    """A smooth monotone map t_dst -> t_src on a 1 ms grid, from ``src_start`` until ``src_end``.

    The playback speed varies smoothly within ``speed_range`` (log-uniformly); with ``with_stop`` it
    falls to 0 for ``stop_s`` seconds (0.4 s cosine ramps) about 40 % of the way.

    Returns:
        (t_dst grid, t_src at each grid time); t_src is non-decreasing and ends at ``src_end``.
    """
    lo, hi = speed_range
    span = src_end - src_start
    horizon = span / lo + stop_s + 2.0
    t = np.arange(math.ceil(horizon / _GRID_DT) + 2) * _GRID_DT
    mid, half = 0.5 * (math.log(lo) + math.log(hi)), 0.5 * (math.log(hi) - math.log(lo))
    speed = np.exp(mid + half * smooth_signal((seed, 41), t, (3.0, 1.3)))
    if with_stop:
        at = 0.4 * span / math.exp(mid)
        u_down = np.clip((t - at) / 0.4, 0, 1)
        u_up = np.clip((t - at - 0.4 - stop_s) / 0.4, 0, 1)
        speed = speed * (0.5 + 0.5 * np.cos(np.pi * u_down) + 0.5 - 0.5 * np.cos(np.pi * u_up))
    src = np.empty_like(t)
    src[0] = src_start
    np.cumsum(0.5 * (speed[1:] + speed[:-1]) * _GRID_DT, out=src[1:])
    src[1:] += src_start
    end = min(int(np.searchsorted(src, src_end)), t.size - 1)
    src = np.minimum(src[: end + 1], src_end)
    return t[: end + 1], src


def warp_video(
    src: str | Path,
    dst: str | Path,
    *,
    seed: int = 0,
    speed_range: tuple[float, float] = (0.6, 1.6),
    with_stop: bool = True,
    stop_s: float = 1.0,
    trim_start_s: float = 1.0,
    trim_end_s: float = 1.0,
    out_fps: float | Fraction | None = None,
    out_size: tuple[int, int] | None = None,
    blend: bool = True,
    codec: str = "libx264",
    crf: int = 18,
    gop: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write a time-warped copy of a real clip and its truth (``<dst stem>.truth.csv``).

    Frame k of ``dst`` (time k / out_fps) shows the source at t_src(k / out_fps): the two source
    frames around that time blended linearly (``blend``), or the nearest one. The truth's ``t_ref``
    is the source time the frame actually shows: t_src when blending, the nearest frame's time
    otherwise. Source times are measured from the stream's start, as `mtbsync.io.video` does.

    Args:
        src: The real clip (the "reference").
        dst: The copy to write (``.mp4``; the "new run").
        seed: Seed of the speed profile.
        speed_range: Slowest and fastest playback speed (source seconds per copy second).
        with_stop: Freeze the picture for ``stop_s`` seconds (a stop) about 40 % of the way.
        stop_s: Length of the freeze (s).
        trim_start_s: Source seconds left out at the start (the copy starts later on the trail).
        trim_end_s: Source seconds left out at the end.
        out_fps: Frame rate of the copy (None: the source's).
        out_size: (width, height) of the copy (None: the source's).
        blend: Blend the two neighbouring source frames (True) or take the nearest (False).
        codec: Encoder.
        crf: Encoder quality.
        gop: Keyframe interval in frames (None: half a second).
        progress: Called as ``progress(done_frames, total_frames)``.

    Returns:
        ``dst``.

    Raises:
        MediaError: The source cannot be read.
        ConfigError: Parameters out of range, or trims that leave less than a second.
    """
    src, dst = Path(src), Path(dst)
    lo, hi = speed_range
    if not 0 < lo <= hi <= 16:
        raise ConfigError(f"speed_range {speed_range} must satisfy 0 < slowest <= fastest <= 16")
    if trim_start_s < 0 or trim_end_s < 0 or stop_s < 0:
        raise ConfigError("trims and stop length must not be negative")
    times, src_fps, src_size = packet_times(src)
    fps = exact_fps(out_fps) if out_fps is not None else exact_fps(src_fps)
    size = tuple(out_size) if out_size is not None else src_size
    size = (size[0] // 2 * 2, size[1] // 2 * 2)
    start, end = times[0] + trim_start_s, times[-1] - trim_end_s
    if end - start < 1.0:
        raise ConfigError(
            f"trimming {trim_start_s} s and {trim_end_s} s leaves {max(0.0, end - start):.2f} s of "
            f"{src.name} ({times[-1] - times[0]:.2f} s long); at least 1 s is needed"
        )
    grid_t, grid_src = time_map(
        start, end, seed=seed, speed_range=speed_range, with_stop=with_stop, stop_s=stop_s
    )
    n_frames = math.floor(grid_t[-1] * fps + 1e-9) + 1
    t_dst = np.arange(n_frames) * (fps.denominator / fps.numerator)
    t_src = np.interp(t_dst, grid_t, grid_src)
    shown = np.empty(n_frames)
    dst.parent.mkdir(parents=True, exist_ok=True)

    frames = iter_color_frames(src)
    prev: tuple[float, np.ndarray] | None = None
    cur = next(frames, None)
    if cur is None:
        raise MediaError("no decodable video frames", path=src)
    with contextlib.closing(frames), VideoWriter(dst, size, fps, codec=codec, crf=crf, gop=gop) as writer:
        for k, target in enumerate(t_src):
            # Advance until prev.t <= target <= cur.t (t_src never decreases: one decoding pass).
            while cur[0] < target:
                nxt = next(frames, None)
                if nxt is None:
                    break
                prev, cur = cur, nxt
            if prev is None or cur[0] <= target or cur[0] == prev[0]:
                t_shown, image = cur
            elif blend:
                a = (target - prev[0]) / (cur[0] - prev[0])
                image = cv2.addWeighted(prev[1], 1.0 - a, cur[1], a, 0.0)
                t_shown = target
            else:
                t_shown, image = prev if target - prev[0] <= cur[0] - target else cur
            shown[k] = t_shown
            if image.shape[1::-1] != size:
                image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            writer.write(image)
            if progress is not None:
                progress(k + 1, n_frames)
    write_truth_csv(truth_path_for(dst), np.column_stack([t_dst, shown]))
    return dst


def truth_path_for(dst: str | Path) -> Path:
    """``clip.mp4`` -> ``clip.truth.csv`` (where `warp_video` writes the truth)."""
    dst = Path(dst)
    return dst.with_name(dst.stem + ".truth.csv")


def _marker_paths(truth_csv: Path) -> tuple[Path, Path]:
    name = truth_csv.name
    prefix = name[: -len("truth.csv")] if name.endswith("truth.csv") else truth_csv.stem + "."
    return truth_csv.with_name(prefix + "ref_markers.csv"), truth_csv.with_name(prefix + "truth_markers.csv")


def read_truth(truth_csv: str | Path) -> np.ndarray:
    """A ``t_new,t_ref`` CSV as an (n, 2) array (n may be 0).

    Raises:
        MediaError: The file is missing or not a ``t_new,t_ref`` CSV.
    """
    path = Path(truth_csv)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = [(float(r["t_new"]), float(r["t_ref"])) for r in csv.DictReader(fh)]
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise MediaError(f"not a readable t_new,t_ref truth CSV ({exc})", path=path) from None
    return np.array(rows, dtype=np.float64).reshape(-1, 2)


def first_crossing(truth: np.ndarray, t_ref: float, tolerance: float = 1e-6) -> float | None:
    """First t_new at which a monotone truth path reaches ``t_ref`` (linear between rows), or None."""
    if truth.shape[0] == 0 or t_ref > truth[-1, 1] + tolerance or t_ref < truth[0, 1] - tolerance:
        return None
    idx = int(np.searchsorted(truth[:, 1], t_ref - tolerance, side="left"))
    if idx == 0:
        return float(truth[0, 0])
    (n0, r0), (n1, r1) = truth[idx - 1], truth[idx]
    if r1 <= r0:
        return float(n1)
    return float(n0 + (n1 - n0) * min(1.0, max(0.0, (t_ref - r0) / (r1 - r0))))


def make_markers_for(
    truth_csv: str | Path, ref_duration: float, n: int = 8, seed: int = 0
) -> tuple[Path, Path]:
    """Place ``n`` reference markers and write where the truth puts them in the new video.

    Markers are spread over the reference (away from its first and last 0.3 s, with some jitter).
    The files go beside ``truth_csv``: ``X.truth.csv`` gets ``X.ref_markers.csv`` and
    ``X.truth_markers.csv`` (``truth.csv`` gets ``ref_markers.csv`` and ``truth_markers.csv``).
    A marker's truth is the first new-video time at which the truth path reaches it; markers
    outside the truth's ``t_ref`` range get no truth row.

    Args:
        truth_csv: ``t_new,t_ref`` CSV (monotone).
        ref_duration: Duration of the reference video (s).
        n: Number of markers.
        seed: Seed of the jitter and colours.

    Returns:
        (reference markers CSV, truth markers CSV).

    Raises:
        MediaError: The truth CSV is unreadable.
        ConfigError: ``n`` < 1 or a reference shorter than 1 s.
    """
    truth_csv = Path(truth_csv)
    if n < 1 or ref_duration < 1.0:
        raise ConfigError(f"need n >= 1 markers and a reference of at least 1 s (got {n}, {ref_duration} s)")
    truth = read_truth(truth_csv)
    rng = np.random.default_rng([seed & 0xFFFFFFFF, 5])
    margin = 0.3
    slots = np.linspace(margin, ref_duration - margin, n + 1)
    times = slots[:-1] + (slots[1:] - slots[:-1]) * rng.uniform(0.2, 0.8, n)
    ref_rows, truth_rows = [], []
    for i, t_ref in enumerate(times):
        name = f"M{i + 1:02d}"
        colour = PALETTE[i % len(PALETTE)]
        ref_rows.append((name, float(t_ref), colour, "synthetic marker"))
        t_new = first_crossing(truth, float(t_ref))
        if t_new is not None:
            truth_rows.append((name, t_new))
    ref_path, truth_path = _marker_paths(truth_csv)
    write_reference_markers_csv(ref_path, ref_rows)
    write_truth_markers_csv(truth_path, truth_rows)
    return ref_path, truth_path


def make_warped_pair(
    src: str | Path,
    out_dir: str | Path,
    *,
    seed: int = 0,
    n_markers: int = 8,
    **warp_options: object,
) -> SamplePair:
    """A pair from one real clip: the clip is the reference, a warped copy (``new.mp4``) the new run.

    Writes ``new.mp4``, ``truth.csv``, ``ref_markers.csv`` and ``truth_markers.csv`` into
    ``out_dir``; the reference is ``src`` itself (not copied).

    Args:
        src: The real clip.
        out_dir: Folder for the copy and the CSVs.
        seed: Seed of the warp and the markers.
        n_markers: Reference markers to place.
        **warp_options: Passed to `warp_video` (speed_range, with_stop, trims, out_fps, out_size ...).

    Returns:
        The pair.

    Raises:
        MediaError: The clip cannot be read.
        ConfigError: Parameters out of range.
    """
    src, out_dir = Path(src), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    new = warp_video(src, out_dir / "new.mp4", seed=seed, **warp_options)  # type: ignore[arg-type]
    truth = out_dir / "truth.csv"
    truth_path_for(new).replace(truth)
    times, src_fps, _ = packet_times(src)
    ref_markers, truth_markers = make_markers_for(truth, float(times[-1]), n=n_markers, seed=seed)
    _, new_fps, _ = packet_times(new)
    n_new = read_truth(truth).shape[0]
    return SamplePair(
        directory=out_dir,
        reference=src,
        new=new,
        truth_csv=truth,
        reference_markers_csv=ref_markers,
        truth_markers_csv=truth_markers,
        ref_fps=float(exact_fps(src_fps)),
        new_fps=float(exact_fps(new_fps)),
        ref_frames=int(times.size),
        new_frames=n_new,
    )
