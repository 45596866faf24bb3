"""Time per stage and peak memory of index + sync + transfer on a generated long 1080p pair.

    .venv/bin/python benchmarks/bench_pipeline.py                 # 5-minute 1920x1080 30 fps pair
    .venv/bin/python benchmarks/bench_pipeline.py --minutes 1      # quicker

The pair is generated once and cached under .bench/pipeline/. Each run happens in a fresh subprocess so
peak RSS is that of the pipeline alone. Prints a markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import json, os, resource, sys, time
from pathlib import Path
if os.environ.get("MTBSYNC_BENCH_CODE"):
    # Another checkout of mtbsync (e.g. a git worktree of an earlier commit) instead of the install.
    sys.meta_path = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
    sys.path.insert(0, os.environ["MTBSYNC_BENCH_CODE"])
from mtbsync.config import preset
from mtbsync.markers import read_reference_markers
from mtbsync.pipeline import build_index, sync
from mtbsync.timing import StageTimer
from mtbsync.evaluate import read_truth_markers, score_markers

pair_dir, out_dir, preset_name, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
config = preset(preset_name).with_overrides(decode={"mode": mode})
timer = StageTimer()
t0 = time.perf_counter()
build_index(pair_dir / "ref.mp4", out_dir / "ref_index.npz", config, timer=timer)
t_index = time.perf_counter() - t0
result = sync(pair_dir / "ref.mp4", pair_dir / "new.mp4", out_dir / "sync", config,
              index_path=out_dir / "ref_index.npz",
              markers=read_reference_markers(pair_dir / "ref_markers.csv"), timer=timer)
total = time.perf_counter() - t0
truth = read_truth_markers(pair_dir / "truth_markers.csv")
fps = result.new.info.fps
score = score_markers(result.markers or [], truth, float(1 / fps)).summary()
stages = {}
for r in timer.records:
    stages[r.name] = stages.get(r.name, 0.0) + r.seconds
print(json.dumps({
    "index_s": t_index, "total_s": total, "stages": stages, "ok": result.alignment.warp.ok,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "decode_modes": [result.new.report.mode],
    "markers": score,
}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--decode-mode", default="auto", choices=["auto", "full", "keyframes"])
    parser.add_argument(
        "--code",
        type=Path,
        help="time another checkout of mtbsync (e.g. `git worktree add /tmp/base COMMIT`) on the same pair",
    )
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    pair_dir = ROOT / ".bench" / "pipeline" / f"pair_{args.minutes:g}min_{args.size}_{args.fps:g}"
    if not (pair_dir / "truth_markers.csv").exists():
        from mtbsync.samples import make_sample_pair

        t0 = time.perf_counter()
        make_sample_pair(
            pair_dir,
            duration_s=args.minutes * 60,
            seed=11,
            ref_size=(width, height),
            new_size=(width, height),
            ref_fps=args.fps,
            new_fps=args.fps,
        )
        print(f"generated the pair in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    out_dir = pair_dir / f"run_{args.preset}_{args.decode_mode}{'_' + args.code.name if args.code else ''}"
    out_dir.mkdir(exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(pair_dir), str(out_dir), args.preset, args.decode_mode],
        capture_output=True,
        text=True,
        check=False,
        env={
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            **({"MTBSYNC_BENCH_CODE": str(args.code.resolve())} if args.code else {}),
        },
    )
    if proc.returncode != 0:
        print(proc.stderr, file=sys.stderr)
        raise SystemExit(proc.returncode)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.system()}"
    )
    print(
        f"Pair: {args.minutes:g} min, {args.size} @ {args.fps:g} fps, "
        f"preset {args.preset}, decode {args.decode_mode}"
    )
    print("(decode and features overlap in time: their rows are busy times; the wall total is what counts)\n")
    print("| stage | seconds |\n|---|---:|")
    for name, seconds in result["stages"].items():
        print(f"| {name} | {seconds:.1f} |")
    print(f"| **index + sync + transfer (wall)** | **{result['total_s']:.1f}** |")
    print(
        f"| of which index / sync + transfer | {result['index_s']:.1f} / "
        f"{result['total_s'] - result['index_s']:.1f} |"
    )
    print(
        f"\npeak RSS {result['peak_rss_mb']:.0f} MiB; aligned: {result['ok']}; markers: {result['markers']}"
    )


if __name__ == "__main__":
    main()
