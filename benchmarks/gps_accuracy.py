"""Accuracy and time of `sync` with and without GPS on a pair with GPX tracks and truth.

Usage (from the repository root)::

    .venv/bin/python benchmarks/gps_accuracy.py                       # /work/shared/data/trail, 3 repeats
    .venv/bin/python benchmarks/gps_accuracy.py --pair DIR --repeats 1
    .venv/bin/python benchmarks/gps_accuracy.py --sample 30           # also a generated 30 s pair (GPS made
                                                                      # by mtbsync.samples.gps)
    .venv/bin/python benchmarks/gps_accuracy.py --repeats 1 --sample 120 --align-repeats 5
                                                                      # and align_indexes alone, timed

A pair folder holds ref.mp4, new.mp4, ref.gpx, new.gpx, truth.csv (t_new,t_ref), ref_markers.csv and
truth_markers.csv (name,t_new). Every mode runs the same in-process `mtbsync.pipeline.sync` (markers
transferred and refined at full frame rate, as `mtbsync sync --reference-markers` does):

    vision          no GPS at all (``use_gps=False``)
    gps-estimated   the GPX files with their time offsets estimated against the videos (the default
                    when no ``--track-offset`` is given; a low-confidence estimate is not applied and the
                    track is taken to start with the video)
    gps-offset0     the GPX files with offset 0: the track's first point is the video's first frame
                    (``--track-offset 0``), which is how the rendered trail's GPX files were written
    gps-wrong10     as gps-offset0 but the new track 10 s off (a wrong ``--track-offset``): the map is
                    moved back onto the look-alike keyframes before its band is used

Figures: marker error in frames of the new video (median / p90 / max over placed markers with truth,
% within one frame, missed, wrongly placed), warp error against truth.csv over the covered part
(median / p90 / max, ms), keyframe pairs examined (candidates), and wall time of the whole sync
and its CPU time and the matching+path stages' time (medians of the repeats; on a shared machine
wall times vary, so compare modes run back to back and prefer the CPU figures). Results go to
stdout as a markdown table and to .bench/gps_accuracy.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mtbsync.config import SyncConfig  # noqa: E402
from mtbsync.ingest.gpx import read_gpx  # noqa: E402
from mtbsync.markers import read_reference_markers  # noqa: E402
from mtbsync.pipeline import sync  # noqa: E402
from mtbsync.timing import StageTimer  # noqa: E402

DEFAULT_PAIR = Path("/work/shared/data/trail")


def read_truth_markers(path: Path) -> dict[str, float]:
    rows = path.read_text(encoding="utf-8").splitlines()[1:]
    return {r.split(",")[0]: float(r.split(",")[1]) for r in rows if r.strip()}


def new_fps(path: Path) -> float:
    from mtbsync.io.video import probe

    return float(probe(path).fps)


def run_mode(pair: dict[str, Any], mode: str, out: Path) -> dict[str, Any]:
    gps: dict[str, Any] = {"use_gps": False}
    if mode != "vision":
        gps = {"reference_gps": pair["ref_track"], "new_gps": pair["new_track"], "use_gps": False}
        if mode == "gps-offset0":
            gps.update(reference_track_offset=0.0, new_track_offset=0.0)
        elif mode == "gps-wrong10":
            gps.update(reference_track_offset=0.0, new_track_offset=10.0)
    timer = StageTimer()
    start, cpu_start = time.perf_counter(), time.process_time()
    result = sync(
        pair["reference"],
        pair["new"],
        out,
        SyncConfig(),
        markers=read_reference_markers(pair["ref_markers"]),
        timer=timer,
        **gps,
    )
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    warp = result.alignment.warp
    stages: dict[str, float] = {}
    for rec in timer.records:
        stages[rec.name] = stages.get(rec.name, 0.0) + rec.seconds
    truth = pair["truth"]
    inside = (truth[:, 0] >= warp.t_new[0]) & (truth[:, 0] <= warp.t_new[-1]) if warp.t_new.size else []
    werr = np.abs(warp.to_ref(truth[inside, 0]) - truth[inside, 1]) if warp.ok else np.zeros(0)
    fps = pair["fps"]
    errs, missed, wrong = [], [], []
    for m in result.markers or []:
        expected = pair["truth_markers"].get(m.name)
        if m.t_new is None:
            if expected is not None:
                missed.append(m.name)
        elif expected is None:
            wrong.append(m.name)
        else:
            errs.append(abs(m.t_new - expected) * fps)
    errs_arr = np.array(errs)
    n_truth = len(pair["truth_markers"])
    gps_metrics = warp.metrics.get("gps", {})
    return {
        "mode": mode,
        "gps_mode": result.gps_mode,
        "ok": warp.ok,
        "reason": warp.reason,
        "wall_s": wall,
        "cpu_s": cpu,
        "matching_path_s": stages.get("matching", 0.0) + stages.get("path", 0.0),
        "stages_s": {k: round(v, 3) for k, v in stages.items()},
        "candidates": gps_metrics.get("candidates"),
        "filled_knots": gps_metrics.get("filled_knots"),
        "gps_notes": gps_metrics.get("notes", []),
        "gps_map": gps_metrics.get("map"),
        "marker_median_f": float(np.median(errs_arr)) if errs else None,
        "marker_p90_f": float(np.percentile(errs_arr, 90)) if errs else None,
        "marker_max_f": float(errs_arr.max()) if errs else None,
        "within_1f": float((errs_arr <= 1.0).sum() / n_truth) if n_truth else None,
        "missed": missed,
        "wrongly_placed": wrong,
        "warp_median_ms": 1000 * float(np.median(werr)) if werr.size else None,
        "warp_p90_ms": 1000 * float(np.percentile(werr, 90)) if werr.size else None,
        "warp_max_ms": 1000 * float(werr.max()) if werr.size else None,
    }


def time_alignment(pair: dict[str, Any], repeats: int) -> dict[str, Any]:
    """Time `align_indexes` alone (keyframes extracted once) with and without GPS, alternating runs.

    The whole sync is dominated by decoding, features and marker refinement, which GPS does not
    touch; this isolates the part it does (matching, path, refine, warp).
    """
    from mtbsync.features.keyframes import config_for_index, extract_keyframes
    from mtbsync.pipeline import align_indexes

    config = SyncConfig()
    ref_index = extract_keyframes(pair["reference"], config, timer=StageTimer()).index
    new_index = extract_keyframes(pair["new"], config_for_index(config, ref_index), timer=StageTimer()).index
    tracks = {"reference_gps": pair["ref_track"].shifted(0.0), "new_gps": pair["new_track"].shifted(0.0)}
    figures: dict[str, Any] = {}
    samples: dict[str, list[tuple[float, float, float, int]]] = {"vision": [], "gps": []}
    for _ in range(max(1, repeats)):
        for mode in samples:
            timer = StageTimer()
            start, cpu_start = time.perf_counter(), time.process_time()
            alignment = align_indexes(
                ref_index, new_index, config, timer=timer, **(tracks if mode == "gps" else {})
            )
            matching = sum(r.seconds for r in timer.records if r.name == "matching")
            samples[mode].append(
                (
                    time.perf_counter() - start,
                    time.process_time() - cpu_start,
                    matching,
                    alignment.warp.metrics["gps"]["candidates"],
                )
            )
    for mode, runs in samples.items():
        figures[mode] = {
            "wall_s": statistics.median(r[0] for r in runs),
            "cpu_s": statistics.median(r[1] for r in runs),
            "matching_s": statistics.median(r[2] for r in runs),
            "candidates": runs[-1][3],
        }
    figures["keyframes"] = [len(ref_index), len(new_index)]
    return figures


def load_pair(folder: Path) -> dict[str, Any]:
    return {
        "name": folder.name,
        "reference": folder / "ref.mp4",
        "new": folder / "new.mp4",
        "ref_track": read_gpx(folder / "ref.gpx"),
        "new_track": read_gpx(folder / "new.gpx"),
        "ref_markers": folder / "ref_markers.csv",
        "truth": np.loadtxt(folder / "truth.csv", delimiter=",", skiprows=1, ndmin=2),
        "truth_markers": read_truth_markers(folder / "truth_markers.csv"),
        "fps": new_fps(folder / "new.mp4"),
    }


def sample_pair(duration: float) -> dict[str, Any]:
    """A generated pair, its GPS written as GPX (so the same file path is measured)."""
    from mtbsync.samples import make_sample_pair
    from mtbsync.samples.gps import sample_pair_tracks, write_gpx

    folder = ROOT / ".bench" / "gps_sample" / f"d{duration:g}"
    pair = make_sample_pair(folder, duration_s=duration, seed=7)
    ref, new = sample_pair_tracks(pair)
    write_gpx(folder / "ref.gpx", ref)
    write_gpx(folder / "new.gpx", new)
    return {
        "name": f"generated-{duration:g}s",
        "reference": pair.reference,
        "new": pair.new,
        "ref_track": read_gpx(folder / "ref.gpx"),
        "new_track": read_gpx(folder / "new.gpx"),
        "ref_markers": pair.reference_markers_csv,
        "truth": np.loadtxt(pair.truth_csv, delimiter=",", skiprows=1, ndmin=2),
        "truth_markers": read_truth_markers(pair.truth_markers_csv),
        "fps": pair.new_fps,
    }


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pair", type=Path, default=DEFAULT_PAIR)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", default="vision,gps-estimated,gps-offset0,gps-wrong10")
    parser.add_argument("--sample", type=float, default=0.0, help="Also a generated pair of this length (s).")
    parser.add_argument(
        "--align-repeats",
        type=int,
        default=0,
        help="Also time align_indexes alone, this many times per mode.",
    )
    args = parser.parse_args(argv)

    pairs = [load_pair(args.pair)]
    if args.sample:
        pairs.append(sample_pair(args.sample))
    rows = []
    for pair in pairs:
        for mode in args.modes.split(","):
            runs = []
            for _ in range(max(1, args.repeats)):
                with tempfile.TemporaryDirectory() as tmp:
                    runs.append(run_mode(pair, mode, Path(tmp)))
            row = dict(runs[-1], pair=pair["name"])
            for key in ("wall_s", "cpu_s", "matching_path_s"):
                row[key] = statistics.median(r[key] for r in runs)
            row["walls_s"] = [round(r["wall_s"], 2) for r in runs]
            rows.append(row)
            print(f"{pair['name']} {mode}: done ({row['walls_s']} s)", file=sys.stderr)

    header = (
        "| pair | mode | GPS | aligned | markers median / p90 / max (frames) | within 1 frame | missed | "
        "warp median / p90 / max (ms) | candidates | matching+path (s) | sync wall / CPU (s) |"
    )
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for r in rows:
        print(
            f"| {r['pair']} | {r['mode']} | {r['gps_mode']} | {r['ok']} | "
            f"{fmt(r['marker_median_f'])} / {fmt(r['marker_p90_f'])} / {fmt(r['marker_max_f'])} | "
            f"{fmt(100 * r['within_1f'] if r['within_1f'] is not None else None, 0)}% | {len(r['missed'])} | "
            f"{fmt(r['warp_median_ms'], 0)} / {fmt(r['warp_p90_ms'], 0)} / {fmt(r['warp_max_ms'], 0)} | "
            f"{fmt(r['candidates'])} | {r['matching_path_s']:.2f} | {r['wall_s']:.2f} / {r['cpu_s']:.2f} |"
        )
    for r in rows:
        for note in r["gps_notes"]:
            print(f"- {r['pair']} {r['mode']}: {note}")
    aligned = {}
    if args.align_repeats:
        print(
            "\n| pair | keyframes ref / new | mode | candidates | matching (s) "
            "| align_indexes wall / CPU (s) |"
        )
        print("|---|---|---|---|---|---|")
        for pair in pairs:
            figures = aligned[pair["name"]] = time_alignment(pair, args.align_repeats)
            for mode in ("vision", "gps"):
                f = figures[mode]
                print(
                    f"| {pair['name']} | {figures['keyframes'][0]} / {figures['keyframes'][1]} | {mode} | "
                    f"{f['candidates']} | {f['matching_s']:.2f} | {f['wall_s']:.2f} / {f['cpu_s']:.2f} |"
                )
    out = ROOT / ".bench" / "gps_accuracy.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"sync": rows, "align_only": aligned}
    out.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
