"""Accuracy under changed conditions: generated pairs whose new run has another camera, light or season.

    .venv/bin/python benchmarks/conditions.py                        # the dev split (default)
    .venv/bin/python benchmarks/conditions.py --conditions same,night --seeds 1
    .venv/bin/python benchmarks/conditions.py --json .bench/conditions/dev.json
    .venv/bin/python benchmarks/conditions.py --list                 # the matrix, nothing run

HELD-OUT RESULTS MUST NOT BE USED FOR TUNING. The ``heldout`` split (seeds 101-105, and the presets
``chest_low_evening_season`` and ``roll_fov_blur``, which exist only here and never in the dev split)
is run once, to check that what was tuned on the dev split carries over; a parameter, gate or
threshold changed after looking at held-out numbers makes them dev numbers. Tune on ``dev`` only.

Every pair is made by `mtbsync.samples.make_sample_pair` with `mtbsync.samples.conditions`
(``make_different_trail_pair`` for the different-trail pairs), cached under
``.bench/conditions/pairs/<pair>/`` (re-rendered only when its parameters change), and run through
the real pipeline (`mtbsync.pipeline.sync` with the reference markers, as ``mtbsync sync
--reference-markers`` does) into ``.bench/conditions/runs/<pair>/``.

Columns (errors of markers in frames of the new video, of the warp in frames of the reference):
    aligned     the warp passed its quality gates (``ok``).
    placed      markers placed / reference markers.
    ≤1 f        markers within one frame of the truth / markers the new run reaches (missed ones
                count as not within).
    p50/p90/max |error| of the placed markers that have truth.
    silent      markers more than 2 frames off (or placed although the run never reaches them)
                that are not flagged ``needs_review``: the count that must be 0.
    warp ≤1 f   new-video frames, inside the covered part and the truth, whose warped reference
                time is within one reference frame of the truth.
    coverage    truth frames (new frames with a counterpart) the warp covers.
    extra s     seconds of the covered part with no counterpart in the reference (wrong coverage).
    verdict     different-trail pairs: ``correct`` when not aligned and no marker placed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mtbsync.align.warp import load_warp
from mtbsync.config import preset as sync_preset
from mtbsync.evaluate import read_truth_markers
from mtbsync.markers import read_reference_markers
from mtbsync.pipeline import sync
from mtbsync.samples import make_different_trail_pair, make_sample_pair, read_truth
from mtbsync.samples.conditions import PRESETS, Conditions, Light, Season
from mtbsync.timing import StageTimer

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".bench" / "conditions"

# -- the split ------------------------------------------------------------------------------------
DEV_SEEDS = (1, 2, 3)
HELDOUT_SEEDS = (101, 102, 103, 104, 105)
DEV_CONDITIONS = (
    "same",
    "chest_mount",
    "low_res",
    "season",
    "blur_noise",
    "roll_fov",
    "night",
    "frame_rate_60",
    "stop_early",
    "stop_late",
)
# Only ever in the held-out split (never tune on them): other numbers, several changes at once.
HELDOUT_ONLY: dict[str, Conditions] = {
    "chest_low_evening_season": Conditions(
        name="chest_low_evening_season",
        camera_height_m=-0.5,
        pitch_deg=-11.0,
        hfov_deg=104.0,
        lens_k1=0.15,
        light=Light(ground=0.8, left_wall=0.7, right_wall=1.15, sky=0.8, canopy=0.85),
        white_balance_rgb=(1.18, 1.0, 0.74),
        exposure=0.7,
        season=Season(foliage_hue_deg=-28.0, saturation=1.2, brightness=0.95, texture_seed=31),
        source_size=(240, 136),
        noise_sigma=4.0,
        stop_s=3.0,
        stop_fraction=0.3,
    ),
    "roll_fov_blur": Conditions(
        name="roll_fov_blur",
        roll_deg=-9.0,
        pitch_deg=4.0,
        hfov_deg=124.0,
        lens_k1=0.18,
        motion_blur=0.45,
        defocus_px=0.6,
        noise_sigma=5.0,
        fps=50.0,
        stop_s=2.5,
        stop_fraction=0.65,
    ),
}
# Different trails: the hard one has the reference's own camera and look (only the place differs).
DEV_DIFFERENT = ("same", "chest_mount")
HELDOUT_DIFFERENT = ("same", "season", "chest_low_evening_season")

# -- pair size: short and modest, so the dev matrix runs in minutes on 2 cores --------------------
PAIR_OPTIONS: dict[str, Any] = {
    "duration_s": 20.0,
    "ref_size": (640, 360),
    "new_size": (480, 270),
    "ref_fps": 30,
    "new_fps": 25,
    "hfov_deg": 118.0,  # GoPro "wide"; chest_mount's 108 is against this
    "n_markers": 8,
}


@dataclass(frozen=True)
class PairSpec:
    """One cell of the matrix."""

    condition: str
    seed: int
    same_trail: bool = True

    @property
    def name(self) -> str:
        """Folder name of the pair."""
        return f"{'' if self.same_trail else 'diff-'}{self.condition}-s{self.seed}"


def conditions_of(name: str) -> Conditions:
    """A dev preset (`mtbsync.samples.conditions.PRESETS`) or a held-out-only one."""
    if name in HELDOUT_ONLY:
        return HELDOUT_ONLY[name]
    if name in PRESETS:
        return PRESETS[name]
    raise SystemExit(f"unknown condition {name!r}; known: {', '.join([*PRESETS, *HELDOUT_ONLY])}")


def matrix(split: str, only: list[str] | None, seeds: list[int] | None) -> list[PairSpec]:
    """The pairs of ``split`` (``dev``, ``heldout``, ``all``), optionally narrowed."""
    parts = []
    if split in ("dev", "all"):
        parts.append((DEV_CONDITIONS, DEV_SEEDS, DEV_DIFFERENT))
    if split in ("heldout", "all"):
        parts.append(((*DEV_CONDITIONS, *HELDOUT_ONLY), HELDOUT_SEEDS, HELDOUT_DIFFERENT))
    specs: list[PairSpec] = []
    for conditions, split_seeds, different in parts:
        use_seeds = [s for s in split_seeds if seeds is None or s in seeds]
        for name in conditions:
            if only is None or name in only:
                specs += [PairSpec(name, s) for s in use_seeds]
        # One different-trail pair per condition, on the split's first seed in use.
        for name in different:
            if (only is None or name in only) and use_seeds:
                specs.append(PairSpec(name, use_seeds[0], same_trail=False))
    return specs


def build(spec: PairSpec) -> Any:
    """Make (or reuse) the pair."""
    maker = make_sample_pair if spec.same_trail else make_different_trail_pair
    return maker(
        CACHE / "pairs" / spec.name,
        seed=spec.seed,
        conditions=conditions_of(spec.condition),
        **PAIR_OPTIONS,
    )


# -- scoring --------------------------------------------------------------------------------------
def _frames(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def score_pair(spec: PairSpec, pair: Any, result: Any) -> dict[str, Any]:
    """Markers and the dense warp of one synced pair against the pair's truth."""
    warp = result.alignment.warp
    frame_new, frame_ref = 1.0 / pair.new_fps, 1.0 / pair.ref_fps
    truth_markers = read_truth_markers(pair.truth_markers_csv)
    markers = result.markers or []
    placed = [m for m in markers if m.placed and m.t_new is not None and math.isfinite(m.t_new)]
    errors = {
        m.name: abs(m.t_new - truth_markers[m.name]) / frame_new for m in placed if m.name in truth_markers
    }
    wrongly = [m.name for m in placed if m.name not in truth_markers]
    silent = [
        m.name
        for m in placed
        if not m.needs_review and (m.name not in truth_markers or errors[m.name] > 2.0 + 1e-9)
    ]
    row: dict[str, Any] = {
        "pair": spec.name,
        "condition": spec.condition,
        "seed": spec.seed,
        "same_trail": spec.same_trail,
        "aligned": bool(warp.ok),
        "reason": warp.reason,
        "markers_total": len(markers),
        "markers_placed": len(placed),
        "markers_with_truth": len(truth_markers),
        "errors_frames": errors,
        "wrongly_placed": wrongly,
        "needs_review": sum(bool(m.needs_review) for m in placed),
        "silent": silent,
        "within_1f": (sum(e <= 1.0 + 1e-9 for e in errors.values()) / len(truth_markers))
        if truth_markers
        else None,
        "median_f": _frames(list(errors.values()), 50),
        "p90_f": _frames(list(errors.values()), 90),
        "max_f": max(errors.values()) if errors else None,
    }
    row.update(_score_warp(pair, result, frame_ref))
    if not spec.same_trail:
        row["verdict"] = "correct" if not warp.ok and not placed else "WRONG"
    return row


def _score_warp(pair: Any, result: Any, frame_ref: float) -> dict[str, Any]:
    """Sample the saved warp at every new-video frame time and compare it with truth.csv."""
    out: dict[str, Any] = {"warp_within_1f": None, "coverage": None, "extra_s": None, "warp_errors_ref_f": []}
    warp_path = result.files.get("warp")
    if warp_path is None or not Path(warp_path).exists():
        return out
    warp = load_warp(warp_path)
    truth = read_truth(pair.truth_csv)
    frame_times = np.arange(pair.new_frames) / pair.new_fps
    if not warp.ok or warp.is_empty:
        out["coverage"] = 0.0 if truth.shape[0] else None
        return out
    lo, hi = warp.new_range
    covered = frame_times[(frame_times >= lo - 1e-9) & (frame_times <= hi + 1e-9)]
    if truth.shape[0] == 0:
        out["extra_s"] = covered.size / pair.new_fps
        return out
    in_truth = (covered >= truth[0, 0] - 1e-9) & (covered <= truth[-1, 0] + 1e-9)
    t_new = covered[in_truth]
    errors = np.abs(warp.to_ref(t_new) - np.interp(t_new, truth[:, 0], truth[:, 1])) / frame_ref
    out["warp_errors_ref_f"] = errors.tolist()
    out["warp_within_1f"] = float(np.mean(errors <= 1.0 + 1e-9)) if errors.size else None
    out["coverage"] = t_new.size / truth.shape[0]
    out["extra_s"] = int((~in_truth).sum()) / pair.new_fps
    return out


def run_pair(spec: PairSpec, config_name: str) -> dict[str, Any]:
    """Build (or reuse) the pair, sync it, score it; a failure is a row too."""
    t0 = time.perf_counter()
    pair = build(spec)
    build_s = time.perf_counter() - t0
    out_dir = CACHE / "runs" / spec.name
    t1 = time.perf_counter()
    try:
        result = sync(
            pair.reference,
            pair.new,
            out_dir,
            sync_preset(config_name),
            markers=read_reference_markers(pair.reference_markers_csv),
            timer=StageTimer(),
        )
    except Exception as exc:  # a crash is a result of the benchmark, not the end of it
        traceback.print_exc()
        return {
            "pair": spec.name,
            "condition": spec.condition,
            "seed": spec.seed,
            "same_trail": spec.same_trail,
            "failed": f"{type(exc).__name__}: {exc}",
            "build_s": build_s,
            "sync_s": time.perf_counter() - t1,
        }
    row = score_pair(spec, pair, result)
    row.update(build_s=build_s, sync_s=time.perf_counter() - t1, new_frames=pair.new_frames)
    return row


# -- report ---------------------------------------------------------------------------------------
def _f(value: float | None, fmt: str = ".2f") -> str:
    return "-" if value is None else format(value, fmt)


HEADER = (
    "| condition | seed | aligned | placed | ≤1 f | p50 f | p90 f | max f | silent | warp ≤1 f "
    "| coverage | extra s | verdict | build s | sync s |"
)


def table(rows: list[dict[str, Any]]) -> str:
    """One row per pair, then one summary row per condition (and per kind of pair)."""
    rule = "|" + "---|" * (HEADER.count("|") - 1)
    lines = [HEADER, rule]
    for r in rows:
        label = r["condition"] if r["same_trail"] else f"diff: {r['condition']}"
        if "failed" in r:
            lines.append(f"| {label} | {r['seed']} | FAILED: {r['failed'][:80]} |" + " |" * 12)
            continue
        lines.append(
            f"| {label} | {r['seed']} | {'yes' if r['aligned'] else 'no'} "
            f"| {r['markers_placed']}/{r['markers_total']} | {_f(r['within_1f'], '.0%')} "
            f"| {_f(r['median_f'])} | {_f(r['p90_f'])} | {_f(r['max_f'])} | {len(r['silent'])} "
            f"| {_f(r['warp_within_1f'], '.1%')} | {_f(r['coverage'], '.0%')} | {_f(r['extra_s'], '.1f')} "
            f"| {r.get('verdict', '')} | {r['build_s']:.1f} | {r['sync_s']:.1f} |"
        )
    lines += ["", "Per condition (pooled over seeds):", "", HEADER.replace("| seed ", "| pairs "), rule]
    groups: dict[tuple[bool, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["same_trail"], r["condition"]), []).append(r)
    for (same_trail, condition), group in groups.items():
        ok = [r for r in group if "failed" not in r]
        errors = [e for r in ok for e in r["errors_frames"].values()]
        warp_errors = np.array([e for r in ok for e in r["warp_errors_ref_f"]])
        n_truth = sum(r["markers_with_truth"] for r in ok)
        within = sum(e <= 1.0 + 1e-9 for e in errors) / n_truth if n_truth else None
        coverage = [r["coverage"] for r in ok if r["coverage"] is not None]
        extra = [r["extra_s"] for r in ok if r["extra_s"] is not None]
        verdicts = [r["verdict"] for r in ok if "verdict" in r]
        verdict = f"{verdicts.count('correct')}/{len(verdicts)} correct" if verdicts else ""
        label = condition if same_trail else f"diff: {condition}"
        failed = len(group) - len(ok)
        lines.append(
            f"| {label} | {len(group)}{f' ({failed} failed)' if failed else ''} "
            f"| {sum(r['aligned'] for r in ok)}/{len(ok)} "
            f"| {sum(r['markers_placed'] for r in ok)}/{sum(r['markers_total'] for r in ok)} "
            f"| {_f(within, '.0%')} | {_f(_frames(errors, 50))} | {_f(_frames(errors, 90))} "
            f"| {_f(max(errors) if errors else None)} | {sum(len(r['silent']) for r in ok)} "
            f"| {_f(float(np.mean(warp_errors <= 1.0 + 1e-9)) if warp_errors.size else None, '.1%')} "
            f"| {_f(float(np.mean(coverage)) if coverage else None, '.0%')} "
            f"| {_f(float(np.sum(extra)) if extra else None, '.1f')} "
            f"| {verdict} "
            f"| {sum(r['build_s'] for r in group):.1f} | {sum(r['sync_s'] for r in group):.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse options, build the matrix, run each pair, print the table (and write JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=("dev", "heldout", "all"), default="dev")
    parser.add_argument("--conditions", help="comma-separated condition names (default: the split's)")
    parser.add_argument("--seeds", help="comma-separated seeds (default: the split's)")
    parser.add_argument("--no-different", action="store_true", help="leave out the different-trail pairs")
    parser.add_argument("--preset", default="default", help="sync preset: default, fast, accurate")
    parser.add_argument("--json", type=Path, help="write every row (with all errors) here")
    parser.add_argument("--list", action="store_true", help="print the matrix and stop")
    args = parser.parse_args(argv)
    only = [c.strip() for c in args.conditions.split(",") if c.strip()] if args.conditions else None
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()] if args.seeds else None
    for name in only or []:
        conditions_of(name)  # unknown names stop here
    if args.split == "dev":
        leaked = sorted({*(only or [])} & set(HELDOUT_ONLY)) + [s for s in seeds or [] if s in HELDOUT_SEEDS]
        if leaked:
            parser.error(f"{leaked} belong to the held-out split (--split heldout); never tune on them")
    specs = matrix(args.split, only, seeds)
    if args.no_different:
        specs = [s for s in specs if s.same_trail]
    if args.list or not specs:
        for s in specs:
            print(s.name)
        return 0 if specs else 1
    if args.split != "dev":
        print("NOTE: held-out pairs: report these numbers, do not tune on them.", file=sys.stderr)
    rows = []
    started = time.perf_counter()
    for k, spec in enumerate(specs, 1):
        print(f"[{k}/{len(specs)}] {spec.name} ...", file=sys.stderr, flush=True)
        row = run_pair(spec, args.preset)
        rows.append(row)
        status = row.get("failed") or ("aligned" if row["aligned"] else "not aligned")
        print(
            f"[{k}/{len(specs)}] {spec.name}: {status} "
            f"(build {row['build_s']:.1f} s, sync {row['sync_s']:.1f} s)",
            file=sys.stderr,
            flush=True,
        )
        if args.json:
            _write_json(args.json, args, rows)
    print(f"### conditions: split {args.split}, preset {args.preset}, {len(rows)} pairs\n")
    print(table(rows))
    print(f"\nTotal {time.perf_counter() - started:.0f} s.")
    return 0


def _write_json(path: Path, args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "split": args.split,
        "preset": args.preset,
        "pair_options": {k: list(v) if isinstance(v, tuple) else v for k, v in PAIR_OPTIONS.items()},
        "conditions": {
            name: conditions_of(name).to_dict() for name in dict.fromkeys(r["condition"] for r in rows)
        },
        "rows": rows,
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)


if __name__ == "__main__":
    raise SystemExit(main())
