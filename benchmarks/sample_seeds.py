"""Marker accuracy over generated pairs with varied seeds, sizes, frame rates and options.

    .venv/bin/python benchmarks/sample_seeds.py          # pairs cached under .bench/seeds/

Each configuration renders a 24 s pair (reference + time-warped new run with known truth), runs
`pipeline.sync` with the reference markers, and scores the transferred markers against truth.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mtbsync.config import SyncConfig
from mtbsync.evaluate import read_truth_markers, score_markers
from mtbsync.markers import read_reference_markers
from mtbsync.pipeline import sync
from mtbsync.samples import make_sample_pair
from mtbsync.timing import StageTimer

ROOT = Path(__file__).resolve().parents[1]

CONFIGURATIONS = [
    {"seed": 1},
    {"seed": 2, "new_fps": 30000 / 1001, "new_size": (640, 360)},
    {"seed": 3, "ref_fps": 25.0, "new_fps": 30.0},
    {"seed": 4, "late_start": False},
    {"seed": 5, "with_stop": False, "new_size": (320, 180)},
    {"seed": 6, "ref_size": (960, 540)},
]


def main() -> None:
    pooled = []
    print("| configuration | aligned | placed | within 1 f | max f | wrongly placed | missed |")
    print("|---|---|---|---|---|---|---|")
    for options in CONFIGURATIONS:
        folder = ROOT / ".bench" / "seeds" / f"s{options['seed']}"
        pair = make_sample_pair(folder, duration_s=24.0, **options)
        result = sync(
            pair.reference,
            pair.new,
            folder / "out",
            SyncConfig(),
            markers=read_reference_markers(pair.reference_markers_csv),
            timer=StageTimer(),
        )
        score = score_markers(
            result.markers or [], read_truth_markers(pair.truth_markers_csv), 1 / pair.new_fps
        )
        summary = score.summary()
        pooled.extend(score.abs_frames)
        label = ", ".join(f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}" for k, v in options.items())
        print(
            f"| {label} | {result.alignment.warp.ok} | {summary['markers']} | "
            f"{summary.get('within_one_frame', 0):.0%} | {summary.get('max_frames', float('nan')):.2f} | "
            f"{summary['wrongly_placed']} | {summary['missed']} |"
        )
    errors = np.array(pooled)
    within = np.mean(errors <= 1)
    print(f"\nPooled: {errors.size} markers, {within:.0%} within one frame, max {errors.max():.2f} f")


if __name__ == "__main__":
    main()
