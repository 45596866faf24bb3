"""A file of many reference markers (300,000) through `mtbsync transfer` and `mtbsync sync`.

    .venv/bin/python benchmarks/bench_many_markers.py                    # 300,000 markers
    .venv/bin/python benchmarks/bench_many_markers.py --markers 3000 10000 --no-sync
    MTBSYNC_BENCH_CODE=/tmp/before .venv/bin/python benchmarks/bench_many_markers.py --markers 3000

A small pair is generated once (`mtbsync.samples.make_sample_pair`, 14 s, 480x270 -> 400x224) and
aligned once (`mtbsync sync`, for its warp.npz) under ``.bench/many_markers/``. For each count N a
reference-markers CSV of N markers at random times over the reference (a name, a colour and a comment
each) is written, and each command runs in a fresh subprocess with its own catalog (``MTBSYNC_DB``),
the whole command timed (reading the CSV, full-rate timing, transfer, new_markers.csv, the catalog,
the printed table) and its peak RSS read from ``wait4``:

- ``transfer --no-refine``: through the warp only;
- ``transfer``: with full-rate timing (at most `REFINE_MAX_MARKERS` of them, the rest through the warp);
- ``sync --reference-markers``: the whole alignment plus the transfer (and alignment.png);
- ``sync`` with the pair's own 4 markers, for the alignment's share of that time.

``MTBSYNC_BENCH_CODE`` runs another checkout of mtbsync (e.g. ``git archive HEAD | tar -x -C DIR``
of an earlier commit) for the figures before a change. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".bench" / "many_markers"

# The CLI in a child process, from another checkout when MTBSYNC_BENCH_CODE names one.
_CHILD = r"""
import os, sys
if os.environ.get("MTBSYNC_BENCH_CODE"):
    sys.meta_path = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
    sys.path.insert(0, os.environ["MTBSYNC_BENCH_CODE"])
from mtbsync.cli import main
sys.argv = ["mtbsync", *sys.argv[1:]]
main()
"""


def write_markers(path: Path, n: int, duration_s: float, seed: int = 0) -> Path:
    """A reference-markers CSV of ``n`` markers at random times within ``duration_s``."""
    rng = np.random.default_rng(seed)
    times = np.sort(rng.uniform(0.0, duration_s, n))
    colours = ("red", "#e6194b", "blue", "")
    with path.open("w", encoding="utf-8") as fh:
        fh.write("name,t_ref,colour,comment\n")
        for k, t in enumerate(times):
            fh.write(f"marker {k},{t:.3f},{colours[k % 4]},generated marker {k}\n")
    return path


def run_cli(args: list[str], catalog: Path, timeout_s: float) -> tuple[float, float, int]:
    """Run ``mtbsync ARGS`` in a fresh process; (seconds, peak RSS in MiB, exit code)."""
    env = dict(os.environ, MTBSYNC_DB=str(catalog), COLUMNS="100")
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = t0 + timeout_s
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            return float("inf"), usage.ru_maxrss / 1024, -9
        time.sleep(0.05)
    seconds = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 2):  # 2: not aligned, still a result
        sys.stderr.write(proc.stderr.read().decode(errors="replace")[-2000:] if proc.stderr else "")
    return seconds, usage.ru_maxrss / 1024, code


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--markers", type=int, nargs="+", default=[300_000], help="Marker counts.")
    parser.add_argument("--no-sync", action="store_true", help="Time transfer only.")
    parser.add_argument(
        "--no-refine-only", action="store_true", help="Only `transfer --no-refine` (slow code before)."
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="Seconds per command.")
    parser.add_argument("--work", type=Path, default=WORK)
    args = parser.parse_args()

    from mtbsync.samples import make_sample_pair

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    pair = make_sample_pair(
        work / "pair",
        duration_s=14.0,
        seed=3,
        ref_size=(480, 270),
        new_size=(400, 224),
        start_gate_wait_s=1.0,
    )
    aligned = work / "aligned"
    if not (aligned / "warp.npz").exists():
        run_cli(
            ["sync", "-r", str(pair.reference), "-n", str(pair.new), "-o", str(aligned), "--no-plot"],
            work / "align.duckdb",
            args.timeout,
        )
    code = os.environ.get("MTBSYNC_BENCH_CODE") or "this checkout"
    print(
        f"\nPython {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; code: {code}\n"
    )
    print("| markers | command | s | peak RSS MiB | exit |")
    print("|---:|---|---:|---:|---:|")
    commands: list[tuple[str, list[str]]] = []
    for n in args.markers:
        csv = write_markers(work / f"ref_markers_{n}.csv", n, 14.0)
        out = work / f"out_{n}"
        shutil.rmtree(out, ignore_errors=True)  # fresh outputs: nothing to refuse overwriting
        out.mkdir()
        transfer = ["transfer", "--reference-markers", str(csv), "--warp", str(aligned / "warp.npz")]
        commands = [
            ("transfer --no-refine", [*transfer, "-o", str(out / "new_markers_warp.csv"), "--no-refine"]),
            ("transfer", [*transfer, "-o", str(out / "new_markers.csv")]),
        ][: 1 if args.no_refine_only else 2]
        if not (args.no_sync or args.no_refine_only):
            sync = ["sync", "-r", str(pair.reference), "-n", str(pair.new)]
            commands.append(
                (
                    "sync --reference-markers",
                    [*sync, "-o", str(out / "sync"), "--reference-markers", str(csv)],
                )
            )
        for k, (label, cli_args) in enumerate(commands):
            seconds, rss, exit_code = run_cli(cli_args, out / f"catalog{k}.duckdb", args.timeout)
            print(f"| {n:,} | `{label}` | {seconds:.1f} | {rss:.0f} | {exit_code} |", flush=True)
    if not (args.no_sync or args.no_refine_only):
        out = work / "out_4"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        sync = ["sync", "-r", str(pair.reference), "-n", str(pair.new), "-o", str(out / "sync")]
        seconds, rss, exit_code = run_cli(
            [*sync, "--reference-markers", str(pair.reference_markers_csv)],
            out / "catalog.duckdb",
            args.timeout,
        )
        print(
            f"| 4 | `sync --reference-markers` (the pair's own) | {seconds:.1f} | {rss:.0f} | {exit_code} |"
        )


if __name__ == "__main__":
    main()
