"""Calibrate marker confidence: P(within one frame of the truth), and its reliability table.

    .venv/bin/python benchmarks/calibrate_confidence.py --collect          # dev pairs -> dataset
    .venv/bin/python benchmarks/calibrate_confidence.py --fit              # fit + reliability (dev)
    .venv/bin/python benchmarks/calibrate_confidence.py --split heldout --collect --report   # scored only

Markers every 0.5 s of the reference (inside each warp's covered part, 0.3 s from its ends) are
timed at full frame rate exactly as ``sync --reference-markers`` times markers
(`mtbsync.markers.full_rate.refine_at_reference_times`), through the warp that ``benchmarks/conditions.py``
(generated pairs under changed conditions) or ``benchmarks/accuracy.py`` (the rendered trails and
the real GoPro self-warps) saved for the pair; the truth is the first new-run time at which the
pair's dense truth reaches the marker's reference time. Run those two benchmarks first.

Each marker gives the confidence model's figures (`mtbsync.markers.confidence.marker_features`) and
its error. ``--fit`` fits the logistic regression on the **dev** split only (L2-regularised Newton
steps) and prints the coefficients to put in ``mtbsync/markers/confidence.py``; ``--report`` prints
the reliability table of the coefficients in the package: per confidence bin, the markers, their
mean confidence, the share observed within one frame, and those more than two frames off that would
not be flagged for review (confidence >= 0.6). Held-out pairs are never fitted.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import itertools

import conditions as cond
from _pairs import first_arrival, read_truth_map

from mtbsync.align.warp import load_warp
from mtbsync.config import SyncConfig
from mtbsync.io.video import probe
from mtbsync.markers.confidence import (
    COEFFICIENTS,
    marker_features,
    probability_within_a_frame,
    review_guards,
)
from mtbsync.markers.full_rate import refine_at_reference_times
from mtbsync.timing import StageTimer

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / ".bench" / "calibration"
GRID_S = 0.5
EDGE_S = 0.3
ACCURACY_PAIRS = ("trail", "trail-mount", "gopro-hero7", "gopro-max", "gopro-karma", "sample-s1", "sample-s2")
REVIEW = 0.6


def _pairs(split: str) -> list[tuple[str, Path, Path, Path, Path]]:
    """(name, reference, new, truth.csv, warp.npz) of every pair with a saved warp."""
    found = []
    for spec in cond.matrix(split, None, None):
        if not spec.same_trail:
            continue
        pair_dir, run_dir = cond.CACHE / "pairs" / spec.name, cond.CACHE / "runs" / spec.name
        if (run_dir / "warp.npz").exists() and (pair_dir / "truth.csv").exists():
            found.append(
                (
                    spec.name,
                    pair_dir / "ref.mp4",
                    pair_dir / "new.mp4",
                    pair_dir / "truth.csv",
                    run_dir / "warp.npz",
                )
            )
    if split == "dev":
        for name in ACCURACY_PAIRS:
            manifest = ROOT / ".bench" / "pairs" / name / "pair.json"
            runs = sorted(
                (ROOT / ".bench" / "runs").glob(f"*/{name}/sync/warp.npz"), key=lambda p: p.stat().st_mtime
            )
            if manifest.exists() and runs:
                pair = json.loads(manifest.read_text(encoding="utf-8"))
                if pair.get("truth"):
                    found.append((name, Path(pair["ref"]), Path(pair["new"]), Path(pair["truth"]), runs[-1]))
    return found


def collect(split: str) -> list[dict[str, Any]]:
    """Time the grid markers of every pair and record their figures and errors."""
    rows: list[dict[str, Any]] = []
    for name, ref, new, truth_csv, warp_path in _pairs(split):
        warp = load_warp(warp_path)
        if not warp.ok or warp.meta.get("model") == "gps":
            print(f"{name}: not aligned by vision, skipped", flush=True)
            continue
        truth_new, truth_ref = read_truth_map(truth_csv)
        lo, hi = warp.ref_range
        taus = np.arange(math.ceil((lo + EDGE_S) / GRID_S) * GRID_S, hi - EDGE_S, GRID_S)
        config = SyncConfig()
        refinement = refine_at_reference_times(ref, new, warp, list(taus), config, timer=StageTimer())
        frame = probe(new).frame_duration
        count = 0
        for tau, t_new, timing in zip(taus, refinement.t_new, refinement.timings, strict=True):
            truth = first_arrival(truth_new, truth_ref, float(tau))
            if truth is None or timing is None or not math.isfinite(t_new):
                continue
            speed = float(np.nan_to_num(warp.speed_ratio(t_new)[0], nan=1.0))
            features = marker_features(timing, new_frame_s=frame, speed=speed, learned=refinement.learned)
            rows.append(
                {
                    "pair": name,
                    "tau": float(tau),
                    "error_frames": abs(t_new - truth) / frame,
                    "features": features,
                    "frame_ratio": probe(ref).frame_duration / frame,
                    "guards": review_guards(
                        timing, new_frame_s=frame, ref_frame_s=probe(ref).frame_duration, speed=speed
                    ),
                }
            )
            count += 1
        print(f"{name}: {count} markers ({warp.meta.get('features', 'orb')})", flush=True)
    return rows


def fit(rows: list[dict[str, Any]], l2: float = 1.0) -> dict[str, float]:
    """Logistic regression of 'within one frame' on the figures (Newton steps, L2 on the weights)."""
    names = list(rows[0]["features"])
    x = np.array([[1.0, *[r["features"][n] for n in names]] for r in rows])
    y = np.array([r["error_frames"] <= 1.0 for r in rows], float)
    w = np.zeros(x.shape[1])
    penalty = np.full(x.shape[1], l2)
    penalty[0] = 0.0
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-(x @ w)))
        gradient = x.T @ (p - y) + penalty * w
        hessian = (x * (p * (1 - p))[:, None]).T @ x + np.diag(penalty)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return {
        "intercept": round(float(w[0]), 3),
        **{n: round(float(v), 3) for n, v in zip(names, w[1:], strict=True)},
    }


def report(rows: list[dict[str, Any]], coefficients: dict[str, float], title: str) -> str:
    """The reliability table of ``coefficients`` on ``rows``."""
    conf = np.array([probability_within_a_frame(r["features"], coefficients) for r in rows])
    within = np.array([r["error_frames"] <= 1.0 for r in rows])
    far = np.array([r["error_frames"] > 2.0 for r in rows])
    lines = [
        f"### {title}: {len(rows)} markers from {len({r['pair'] for r in rows})} pairs",
        "",
        "| confidence | markers | mean confidence | observed within 1 frame | > 2 frames off |",
        "|---|---|---|---|---|",
    ]
    edges = [0.0, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 1.0001]
    for a, b in itertools.pairwise(edges):
        sel = (conf >= a) & (conf < b)
        if sel.any():
            lines.append(
                f"| {a:.2f}-{min(b, 1.0):.2f} | {int(sel.sum())} | {conf[sel].mean():.2f} | "
                f"{within[sel].mean():.0%} | {int(far[sel].sum())} |"
            )
    brier = float(np.mean((conf - within) ** 2))
    silent = int((far & (conf >= REVIEW)).sum())
    # The review guards (`review_guards`) send markers to review whatever the model says.
    guarded = np.array([bool(r.get("guards")) for r in rows])
    flagged = (conf < REVIEW) | guarded
    silent_guarded = int((far & ~flagged).sum())
    lines += [
        "",
        f"Brier score {brier:.3f}; within one frame {within.mean():.0%}; flagged for review "
        f"(< {REVIEW}) {(conf < REVIEW).mean():.0%}; more than two frames off and not flagged: "
        f"{silent} of {int(far.sum())}.",
        f"With the review guards (recorded for {'every' if all('guards' in r for r in rows) else 'no'} "
        f"marker): flagged {flagged.mean():.0%}, more than two frames off and not flagged: "
        f"{silent_guarded} of {int(far.sum())}; markers within one frame that were flagged: "
        f"{int((flagged & within).sum())}.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=("dev", "heldout"), default="dev")
    parser.add_argument("--collect", action="store_true", help="time the grid markers (slow)")
    parser.add_argument("--fit", action="store_true", help="fit on the dev split and print coefficients")
    parser.add_argument("--report", action="store_true", help="reliability of the packaged coefficients")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    data_path = OUT / f"{args.split}.json"
    if args.collect:
        rows = collect(args.split)
        data_path.write_text(json.dumps(rows), encoding="utf-8")
    if not data_path.exists():
        raise SystemExit(f"no dataset {data_path}; run with --collect first")
    rows = json.loads(data_path.read_text(encoding="utf-8"))
    if args.fit:
        if args.split != "dev":
            raise SystemExit("fit on the dev split only (held-out pairs are scored, never fitted)")
        fitted = fit(rows)
        print("COEFFICIENTS = " + json.dumps(fitted, indent=4))
        print(report(rows, fitted, "dev, fitted coefficients"))
    if args.report or not args.fit:
        print(report(rows, COEFFICIENTS, f"{args.split}, packaged coefficients"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
