"""Score the saved runs of `conditions.py` again without syncing (e.g. after a run stopped early).

    .venv/bin/python benchmarks/conditions_rescore.py --split heldout --seeds 101,102

Reads each pair's ``.bench/conditions/runs/<pair>/`` (new_markers.csv, warp.npz) and prints the
same table as `conditions.py`; pairs without a saved run are left out.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))

import conditions as cond

from mtbsync.align.warp import load_warp
from mtbsync.markers.io import read_new_markers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=("dev", "heldout", "all"), default="dev")
    parser.add_argument("--seeds", help="comma-separated seeds")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else None
    rows = []
    for spec in cond.matrix(args.split, None, seeds):
        run_dir = cond.CACHE / "runs" / spec.name
        if not (run_dir / "warp.npz").exists() or not (run_dir / "new_markers.csv").exists():
            continue
        pair = cond.build(spec)  # cached: nothing is rendered again
        warp = load_warp(run_dir / "warp.npz")
        result = SimpleNamespace(
            alignment=SimpleNamespace(warp=warp),
            markers=read_new_markers(run_dir / "new_markers.csv"),
            files={"warp": run_dir / "warp.npz"},
        )
        row = cond.score_pair(spec, pair, result)
        row.update(build_s=0.0, sync_s=0.0, new_frames=pair.new_frames)
        rows.append(row)
    print(cond.table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
