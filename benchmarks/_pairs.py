"""Benchmark pairs for `accuracy.py`: what they are, how they are built, and their truth.

A *pair* is a reference run and a new run, plus the reference run's markers and, for runs of the same
trail, where each marker truly appears in the new run. Pairs are built once into
``.bench/pairs/<name>/`` (a ``pair.json`` manifest beside whatever had to be generated) and reused on
every later run; shared input videos are referenced in place, never copied.

Kinds:
    ``same``       the new run is the same trail: markers are scored against truth.
    ``different``  the new run is another trail: the right answer is "not aligned", no marker placed.

The generated pairs need ``mtbsync.samples`` (``warp_video``, ``make_markers_for``, ``make_sample_pair``,
``make_different_trail_pair``); until it imports, those pairs are reported as unavailable.

This module is the harness's own: it does not import the package under test except for the sample
generators above, so the same truth scores both our tool and the published anchor.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

SHARED = Path(os.environ.get("MTBSYNC_SHARED", "/work/shared")) / "data"
TRAIL = SHARED / "trail"
TRAIL_MOUNT = SHARED / "trail_mount"
GOPRO = SHARED / "gopro"
GOPRO_CLIPS = {"hero7": "hero7.mp4", "max": "max-heromode.mp4", "karma": "karma.mp4"}

MANIFEST_VERSION = 1
GRID_STEP_S = 0.5  # spacing, in reference seconds, of the dense "grid" markers
GRID_EDGE_S = 0.25  # grid markers keep this far from either end of the truth's reference range


class PairUnavailable(Exception):
    """The pair cannot be built here (a generator is missing); the harness reports and skips it."""


@dataclass(frozen=True)
class Pair:
    """One benchmark pair, as written to ``pair.json``.

    Attributes:
        name: Short unique name (``trail``, ``gopro-hero7``, ``diff-hero7-karma``, ...).
        kind: ``same`` (score markers against truth) or ``different`` (expect "not aligned").
        ref: Reference run video.
        new: New run video.
        ref_markers: ``name,t_ref[,colour][,comment]`` markers of the reference run.
        truth_markers: ``name,t_new`` truth; a reference marker without a row must not be placed.
        truth: Dense ``t_new,t_ref`` truth, when known.
        grid_markers: Dense markers every ``GRID_STEP_S`` of the reference (only with ``truth``).
        grid_truth: Their ``name,t_new`` truth.
        ref_gpx: Reference GPX, when the pair has one.
        new_gpx: New GPX, when the pair has one.
        description: One line on how the pair was made.
    """

    name: str
    kind: str
    ref: str
    new: str
    ref_markers: str
    truth_markers: str | None = None
    truth: str | None = None
    grid_markers: str | None = None
    grid_truth: str | None = None
    ref_gpx: str | None = None
    new_gpx: str | None = None
    description: str = ""


# --------------------------------------------------------------------------------------------------
# Truth helpers


def read_truth_map(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a ``t_new,t_ref`` truth CSV (header names matched, any column order).

    Returns:
        ``(t_new, t_ref)`` sorted by ``t_new``.
    """
    with Path(path).open(newline="", encoding="utf-8-sig") as fh:
        rows = [(float(r["t_new"]), float(r["t_ref"])) for r in csv.DictReader(fh) if r.get("t_ref")]
    arr = np.array(sorted(rows), dtype=np.float64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


def first_arrival(t_new: np.ndarray, t_ref: np.ndarray, target: float) -> float | None:
    """When the new run first reaches reference time ``target`` (linear between truth rows).

    The truth is monotone non-decreasing in ``t_ref``; a target outside its range is never reached
    (``None``), which is how a marker before the new run's start or after its end gets no truth row.
    """
    if t_new.size == 0 or target < t_ref[0] or target > t_ref[-1]:
        return None
    i = int(np.searchsorted(t_ref, target, side="left"))
    if i == 0:
        return float(t_new[0])
    r0, r1 = t_ref[i - 1], t_ref[i]
    if r1 <= r0:
        return float(t_new[i])
    return float(t_new[i - 1] + (target - r0) / (r1 - r0) * (t_new[i] - t_new[i - 1]))


def read_markers(path: str | Path) -> list[dict[str, str]]:
    """Read a marker CSV as a list of row dicts (BOM tolerated)."""
    with Path(path).open(newline="", encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


def read_truth_markers(path: str | Path | None) -> dict[str, float]:
    """``name,t_new`` truth CSV -> ``{name: t_new}`` (an empty dict for ``None``)."""
    if path is None:
        return {}
    return {r["name"]: float(r["t_new"]) for r in read_markers(path) if r.get("t_new", "").strip()}


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    tmp.replace(path)


def write_truth_markers(ref_markers: Path, truth: Path, out: Path) -> Path:
    """Derive ``name,t_new`` truth for ``ref_markers`` from a dense truth map (unreached -> no row)."""
    t_new, t_ref = read_truth_map(truth)
    rows = []
    for m in read_markers(ref_markers):
        t = first_arrival(t_new, t_ref, float(m["t_ref"]))
        if t is not None:
            rows.append([m["name"], f"{t:.4f}"])
    _write_csv(out, ["name", "t_new"], rows)
    return out


def write_grid(truth: Path, out_dir: Path) -> tuple[Path, Path]:
    """Dense markers every ``GRID_STEP_S`` of the reference inside the truth's range, and their truth."""
    t_new, t_ref = read_truth_map(truth)
    lo, hi = float(t_ref[0]) + GRID_EDGE_S, float(t_ref[-1]) - GRID_EDGE_S
    start = np.ceil(lo / GRID_STEP_S) * GRID_STEP_S
    grid = np.arange(start, hi + 1e-9, GRID_STEP_S)
    markers, truth_rows = [], []
    for k, r in enumerate(grid):
        name = f"g{k:04d}"
        markers.append([name, f"{r:.4f}", "", ""])
        t = first_arrival(t_new, t_ref, float(r))
        if t is not None:
            truth_rows.append([name, f"{t:.4f}"])
    grid_markers, grid_truth = out_dir / "grid_markers.csv", out_dir / "grid_truth.csv"
    _write_csv(grid_markers, ["name", "t_ref", "colour", "comment"], markers)
    _write_csv(grid_truth, ["name", "t_new"], truth_rows)
    return grid_markers, grid_truth


def video_info(path: str | Path) -> dict[str, float]:
    """Frame rate, duration and frame count of a video's first video stream (PyAV)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.base_rate or stream.guessed_rate
        fps = float(rate) if rate else 30.0
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1e6
        else:
            duration = float("nan")
        frames = int(stream.frames) if stream.frames else round(duration * fps)
    return {"fps": fps, "duration": duration, "frames": frames}


def even_markers(video: str | Path, out: Path, n: int = 6, prefix: str = "m") -> Path:
    """``n`` markers spread evenly over 10-90 % of a video (for clips that come without markers)."""
    duration = video_info(video)["duration"]
    rows = [
        [f"{prefix}{k + 1}", f"{duration * (0.1 + 0.8 * k / max(n - 1, 1)):.4f}", "", "evenly spaced"]
        for k in range(n)
    ]
    _write_csv(out, ["name", "t_ref", "colour", "comment"], rows)
    return out


# --------------------------------------------------------------------------------------------------
# Builders: each takes the pair's scratch folder (moved into the cache once built) and returns the Pair.


def _samples() -> Any:
    """``mtbsync.samples``, or PairUnavailable while it does not import (it is being written)."""
    try:
        import mtbsync.samples as samples
    except Exception as exc:  # any import failure means "not ready"
        raise PairUnavailable(f"mtbsync.samples does not import ({exc.__class__.__name__}: {exc})") from exc
    return samples


def _rendered_builder(name: str, folder: Path, description: str) -> Callable[[Path], Pair]:
    """A rendered pair from ``../shared/data`` (dense truth, GPX, reference markers)."""

    def build(out_dir: Path) -> Pair:
        grid_markers, grid_truth = write_grid(folder / "truth.csv", out_dir)
        return Pair(
            name=name,
            kind="same",
            ref=str(folder / "ref.mp4"),
            new=str(folder / "new.mp4"),
            ref_markers=str(folder / "ref_markers.csv"),
            truth_markers=str(folder / "truth_markers.csv"),
            truth=str(folder / "truth.csv"),
            grid_markers=str(grid_markers),
            grid_truth=str(grid_truth),
            ref_gpx=str(folder / "ref.gpx"),
            new_gpx=str(folder / "new.gpx"),
            description=description,
        )

    return build


_build_trail = _rendered_builder(
    "trail", TRAIL, "rendered trail ridden twice (0.7-1.4x, 2 s stop, starts later; start_gate unreached)"
)
_build_trail_mount = _rendered_builder(
    "trail-mount",
    TRAIL_MOUNT,
    "the trail from a chest mount, 108 deg barrel lens, evening light (dead_tree unreached)",
)


def _gopro_builder(key: str, seed: int) -> Callable[[Path], Pair]:
    def build(out_dir: Path) -> Pair:
        samples = _samples()
        src = GOPRO / GOPRO_CLIPS[key]
        new = samples.warp_video(src, out_dir / "new.mp4", seed=seed, speed_range=(0.6, 1.6), with_stop=True)
        truth = samples.warp.truth_path_for(new)
        ref_markers, _ = samples.make_markers_for(truth, video_info(src)["duration"], n=8, seed=seed)
        # Truth markers derived here from the dense truth, as for every pair (make_markers_for agrees).
        truth_markers = write_truth_markers(ref_markers, truth, out_dir / "bench_truth.csv")
        grid_markers, grid_truth = write_grid(truth, out_dir)
        return Pair(
            name=f"gopro-{key}",
            kind="same",
            ref=str(src),
            new=str(new),
            ref_markers=str(ref_markers),
            truth_markers=str(truth_markers),
            truth=str(truth),
            grid_markers=str(grid_markers),
            grid_truth=str(grid_truth),
            description=f"real clip {src.name} vs its self-warped copy (0.6-1.6x, a stop, trimmed ends)",
        )

    return build


def _sample_builder(seed: int) -> Callable[[Path], Pair]:
    def build(out_dir: Path) -> Pair:
        sp = _samples().make_sample_pair(out_dir, seed=seed)
        # The generator's truth_markers.csv is authoritative; cross-check it against the dense truth.
        derived = write_truth_markers(sp.reference_markers_csv, sp.truth_csv, out_dir / "bench_truth.csv")
        _cross_check(read_truth_markers(sp.truth_markers_csv), read_truth_markers(derived), out_dir)
        grid_markers, grid_truth = write_grid(sp.truth_csv, out_dir)
        return Pair(
            name=f"sample-s{seed}",
            kind="same",
            ref=str(sp.reference),
            new=str(sp.new),
            ref_markers=str(sp.reference_markers_csv),
            truth_markers=str(sp.truth_markers_csv),
            truth=str(sp.truth_csv),
            grid_markers=str(grid_markers),
            grid_truth=str(grid_truth),
            description=f"generated trail pair (make_sample_pair, seed {seed})",
        )

    return build


def _cross_check(given: dict[str, float], derived: dict[str, float], out_dir: Path) -> None:
    """Warn (on stderr, in the pair folder) when a generator's marker truth and the dense truth disagree."""
    problems = [
        f"{name}: given {given.get(name)} derived {derived.get(name)}"
        for name in sorted(set(given) | set(derived))
        if name not in given or name not in derived or abs(given[name] - derived[name]) > 0.01
    ]
    if problems:
        text = "truth_markers.csv disagrees with truth.csv (over 10 ms):\n" + "\n".join(problems) + "\n"
        (out_dir / "TRUTH_WARNING.txt").write_text(text, encoding="utf-8")
        print(f"[pair] warning: {text}", file=sys.stderr)


def _different_trail_sample(out_dir: Path) -> Pair:
    sp = _samples().make_different_trail_pair(out_dir, seed=0)
    return Pair(
        name="diff-sample",
        kind="different",
        ref=str(sp.reference),
        new=str(sp.new),
        ref_markers=str(sp.reference_markers_csv),
        truth_markers=str(sp.truth_markers_csv),
        description="generated pair of two different trails (make_different_trail_pair, seed 0)",
    )


def _diff_trail_vs_gopro(out_dir: Path) -> Pair:
    del out_dir  # nothing to generate
    return Pair(
        name="diff-trail-hero7",
        kind="different",
        ref=str(TRAIL / "ref.mp4"),
        new=str(GOPRO / GOPRO_CLIPS["hero7"]),
        ref_markers=str(TRAIL / "ref_markers.csv"),
        description="rendered trail reference vs an unrelated real GoPro clip (hero7)",
    )


def _diff_mount_vs_hero7(out_dir: Path) -> Pair:
    return Pair(
        name="diff-hero7-mount",
        kind="different",
        ref=str(GOPRO / GOPRO_CLIPS["hero7"]),
        new=str(TRAIL_MOUNT / "new.mp4"),
        ref_markers=str(even_markers(GOPRO / GOPRO_CLIPS["hero7"], out_dir / "ref_markers.csv")),
        description="a real GoPro clip (hero7) as reference, the chest-mount trail run as new",
    )


def _diff_gopro_vs_gopro(out_dir: Path) -> Pair:
    ref = GOPRO / GOPRO_CLIPS["hero7"]
    return Pair(
        name="diff-hero7-karma",
        kind="different",
        ref=str(ref),
        new=str(GOPRO / GOPRO_CLIPS["karma"]),
        ref_markers=str(even_markers(ref, out_dir / "ref_markers.csv")),
        description="two unrelated real GoPro clips (hero7 reference, karma new)",
    )


BUILDERS: dict[str, Callable[[Path], Pair]] = {
    "trail": _build_trail,
    "trail-mount": _build_trail_mount,
    "gopro-hero7": _gopro_builder("hero7", seed=1),
    "gopro-max": _gopro_builder("max", seed=2),
    "gopro-karma": _gopro_builder("karma", seed=3),
    "sample-s1": _sample_builder(1),
    "sample-s2": _sample_builder(2),
    "diff-trail-hero7": _diff_trail_vs_gopro,
    "diff-hero7-karma": _diff_gopro_vs_gopro,
    "diff-sample": _different_trail_sample,
    "diff-hero7-mount": _diff_mount_vs_hero7,
}
PAIR_NAMES = list(BUILDERS)


def get_pair(name: str, cache: Path, rebuild: bool = False) -> Pair:
    """Return pair ``name``, building it into ``cache/<name>/`` unless a valid manifest is there.

    Raises:
        KeyError: Unknown pair name.
        PairUnavailable: A generator it needs is missing; nothing is left in the cache.
    """
    builder = BUILDERS[name]
    out_dir = cache / name
    manifest = out_dir / "pair.json"
    if manifest.exists() and not rebuild:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        if data.pop("manifest_version", None) == MANIFEST_VERSION:
            pair = Pair(**data)
            if all(Path(p).exists() for p in (pair.ref, pair.new, pair.ref_markers)):
                return pair
    # Build in a scratch folder, then move into place, so a crash never leaves a half-built pair cached.
    scratch = cache / f".{name}.building"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        pair = builder(scratch)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    shutil.rmtree(out_dir, ignore_errors=True)
    scratch.rename(out_dir)
    pair = _relocate(pair, scratch, out_dir)
    payload = {"manifest_version": MANIFEST_VERSION, **asdict(pair)}
    tmp = manifest.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    tmp.replace(manifest)
    return pair


def _relocate(pair: Pair, old: Path, new: Path) -> Pair:
    """Rewrite paths inside the scratch folder to the final cache folder."""
    prefix = str(old)
    moved = {
        k: (str(new) + v[len(prefix) :] if isinstance(v, str) and v.startswith(prefix) else v)
        for k, v in asdict(pair).items()
    }
    return Pair(**moved)
