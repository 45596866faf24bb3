"""Accuracy benchmark: run a sync tool on every benchmark pair and score its markers against truth.

Usage (from the repository root)::

    .venv/bin/python benchmarks/accuracy.py --tool ours
    .venv/bin/python benchmarks/accuracy.py --tool anchor               # mtbsync==0.10.16 as published
    .venv/bin/python benchmarks/accuracy.py --tool anchor --anchor-shim # its index dtype bug worked around
    .venv/bin/python benchmarks/accuracy.py --tool anchor --anchor-shim --label anchor-shim-relaxed \\
        --extra-sync-args="--warp-max-ppm 1000000 --warp-min-inlier-frac 0"   # its warp gates opened
    .venv/bin/python benchmarks/accuracy.py --tool ours --pairs trail,gopro-hero7
    .venv/bin/python benchmarks/accuracy.py --tool anchor --report      # reprint the saved table

The anchor lives in its own venv (the names clash; never install it into .venv)::

    python3 -m venv .bench/anchor-venv && .bench/anchor-venv/bin/pip install mtbsync==0.10.16
    # and ffmpeg + ffprobe on PATH (it shells out to them): apt-get install ffmpeg

Each tool runs as a subprocess CLI, one step at a time (index, sync, transfer), in a fresh folder
``.bench/runs/<label>/<pair>/``. Pairs are built once and cached in ``.bench/pairs/`` (see ``_pairs.py``).
Results go to stdout as a markdown table and to ``.bench/accuracy-<label>.json`` (merged by pair, so a
``--pairs`` subset updates only those rows; ``--fresh`` starts the file over).

Definitions (the same for every tool):
    error          placed t_new minus truth t_new, seconds; in frames = error * fps of the new video.
    within 1 frame |error| <= 1 / fps (one frame duration), counted over the markers that have truth;
                   a missed marker is not within. "same frame" is the stricter |error| < 0.5 / fps.
    median/p90/max of |error| over the markers placed that have truth.
    wrongly placed placed although the truth has no row for it (the new run never reaches it).
    missed         not placed although the truth has a row.
    placed         the output row has a finite t_new (ours: ``t_new``; anchor: ``t_new_est``), wherever
                   it lands; ``outside`` counts the placed times outside [0, duration of the new video].
    grid           the same, for dense markers every 0.5 s of the reference (pairs with dense truth).
    not aligned    ours: sync exits 3, timewarp.json has ok=false and no marker is placed.
                   anchor: sync exits 0 without writing timewarp.json (it writes one only when its
                   affine fit passes its gates), so nothing can be placed. The anchor has no other way
                   to say so; a sync that exits 1 is a failure, not a verdict.
    transfer       run whenever the warp file exists after sync, whatever sync's exit code, because a
                   user would: the anchor can exit 1 after writing timewarp.json.
    wall / RSS     per step, from ``os.wait4`` on the subprocess: wall clock, user+sys CPU, and peak
                   resident set size (the largest of the process and the children it waited for).
                   ``total`` = index + sync + transfer of the named markers (grid transfer excluded).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _pairs import (  # the helper module beside this script
    PAIR_NAMES,
    Pair,
    PairUnavailable,
    get_pair,
    read_markers,
    read_truth_markers,
    video_info,
)

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / ".bench"
OURS_BIN = ROOT / ".venv" / "bin" / "mtbsync"
ANCHOR_BIN = BENCH / "anchor-venv" / "bin" / "mtbsync"
ANCHOR_VERSION = "0.10.16"
NOT_ALIGNED_RC = 3  # our CLI's exit code for "ran, but the runs are not aligned"


@dataclass
class StepResult:
    """One subprocess step of a tool run."""

    step: str
    cmd: list[str]
    rc: int | None
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    timed_out: bool = False
    skipped: str | None = None
    log: str = ""
    tail: str = ""


@dataclass
class Score:
    """Markers of one output CSV scored against truth (see the module docstring for definitions)."""

    n_ref: int = 0
    n_truth: int = 0
    placed: int = 0
    outside: int = 0
    wrongly_placed: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    errors_s: dict[str, float] = field(default_factory=dict)
    median_s: float | None = None
    p90_s: float | None = None
    max_s: float | None = None
    median_frames: float | None = None
    p90_frames: float | None = None
    max_frames: float | None = None
    within_1f: float | None = None
    same_frame: float | None = None


# --------------------------------------------------------------------------------------------------
# Running a subprocess with wall time, CPU time and peak RSS


def run_step(step: str, cmd: list[str], cwd: Path, log: Path, timeout_s: float) -> StepResult:
    """Run ``cmd`` in ``cwd``, output to ``log``; measure it with ``os.wait4`` (rusage of that child)."""
    env = dict(os.environ, COLUMNS="120", MTBSYNC_DEBUG="1", MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
    env.pop("VIRTUAL_ENV", None)
    start = time.perf_counter()
    timed_out = False
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, env=env)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - start > timeout_s:
                timed_out = True
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
    wall = time.perf_counter() - start
    rc = os.waitstatus_to_exitcode(status)
    proc.returncode = rc  # already reaped by wait4: keep Popen from waiting again
    text = log.read_text(encoding="utf-8", errors="replace")
    return StepResult(
        step=step,
        cmd=cmd,
        rc=rc,
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=usage.ru_maxrss / 1024.0,  # Linux reports KiB
        timed_out=timed_out,
        log=str(log),
        tail="\n".join(text.strip().splitlines()[-8:]),
    )


def skipped_step(step: str, reason: str) -> StepResult:
    """A step not run (e.g. transfer without a warp file)."""
    return StepResult(step=step, cmd=[], rc=None, wall_s=0.0, cpu_s=0.0, peak_rss_mb=0.0, skipped=reason)


# --------------------------------------------------------------------------------------------------
# Tools: how to call each CLI, where it leaves its warp, how it says "not aligned"


class Tool:
    """A sync tool driven through its CLI."""

    name = ""
    version_args: tuple[str, ...] = ("--version",)

    def __init__(self, command: list[str], fps: float, extra_index: list[str], extra_sync: list[str]) -> None:
        self.command = command  # the executable, or an interpreter plus a script
        self.fps = fps
        self.extra_index = extra_index
        self.extra_sync = extra_sync

    def version(self) -> str:
        """The tool's version line, or ``unknown``."""
        try:
            done = subprocess.run(
                [*self.command, *self.version_args], capture_output=True, text=True, timeout=120, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return "unknown"
        return (done.stdout.strip().splitlines() or ["unknown"])[-1]

    def index_cmd(self, pair: Pair, run: Path) -> list[str]:
        """Build the reference index."""
        return [*self.command, "index", "--reference", pair.ref, "--fps", f"{self.fps:g}",
                "--out", str(run / "ref_index.npz"), *self.extra_index]  # fmt: skip

    def sync_cmd(self, pair: Pair, run: Path, gps: bool) -> list[str]:
        """Align the new run to the reference."""
        raise NotImplementedError

    def warp_file(self, run: Path) -> Path:
        """The file ``transfer`` reads; missing after sync means nothing can be placed."""
        raise NotImplementedError

    def transfer_cmd(self, markers: str, run: Path, out: Path) -> list[str]:
        """Carry ``markers`` onto the new run."""
        raise NotImplementedError

    def timewarp_ok(self, run: Path) -> bool | None:
        """The ``ok`` flag of the tool's timewarp.json, ``None`` when there is none."""
        path = self.warp_file(run).parent / "timewarp.json"
        if not path.exists():
            return None
        try:
            return bool(json.loads(path.read_text(encoding="utf-8")).get("ok"))
        except (ValueError, OSError):
            return None

    def reported_not_aligned(self, sync: StepResult, run: Path, placed: int) -> bool:
        """Whether the tool told the user the runs are not aligned."""
        raise NotImplementedError

    @staticmethod
    def _gps_args(pair: Pair, gps: bool) -> list[str]:
        if gps and pair.ref_gpx and pair.new_gpx:
            return ["--reference-track", pair.ref_gpx, "--new-track", pair.new_gpx]
        return []


class Ours(Tool):
    """This repository's ``mtbsync`` (``.venv/bin/mtbsync``)."""

    name = "ours"

    def sync_cmd(self, pair: Pair, run: Path, gps: bool) -> list[str]:
        """``sync --out DIR`` writes DIR/pairs.csv, DIR/warp.npz and DIR/timewarp.json."""
        return [*self.command, "sync", "--reference", pair.ref, "--new", pair.new,
                "--index", str(run / "ref_index.npz"), "--out", str(run / "sync"), "--no-plot",
                *self._gps_args(pair, gps), *self.extra_sync]  # fmt: skip

    def warp_file(self, run: Path) -> Path:
        """``DIR/warp.npz``."""
        return run / "sync" / "warp.npz"

    def transfer_cmd(self, markers: str, run: Path, out: Path) -> list[str]:
        """``transfer`` writes name,t_ref,t_new,confidence,needs_review,colour,comment."""
        return [*self.command, "transfer", "--reference-markers", markers,
                "--warp", str(self.warp_file(run)), "--out", str(out)]  # fmt: skip

    def reported_not_aligned(self, sync: StepResult, run: Path, placed: int) -> bool:
        """Exit code 3 and timewarp.json ok=false and no marker placed."""
        return sync.rc == NOT_ALIGNED_RC and self.timewarp_ok(run) is False and placed == 0


class Anchor(Tool):
    """The published ``mtbsync==0.10.16`` in its own venv (``.bench/anchor-venv``).

    Its ``sync --out`` names the pairs CSV; it writes ``timewarp.json`` (affine ``t_ref = a*t_new + b``)
    into the *current directory*, and only when its fit passes its gates. Its ``transfer`` command is a
    stub; ``transfer-markers`` applies the affine warp to every marker.
    """

    name = "anchor"
    version_args = ("version",)

    def sync_cmd(self, pair: Pair, run: Path, gps: bool) -> list[str]:
        """``sync --out run/pairs.csv`` run with ``cwd=run`` so that timewarp.json lands there."""
        return [*self.command, "sync", "--reference", pair.ref, "--new", pair.new,
                "--index", str(run / "ref_index.npz"), "--out", str(run / "pairs.csv"),
                "--fps", f"{self.fps:g}", *self._gps_args(pair, gps), *self.extra_sync]  # fmt: skip

    def warp_file(self, run: Path) -> Path:
        """``run/timewarp.json`` (written to the working directory)."""
        return run / "timewarp.json"

    def transfer_cmd(self, markers: str, run: Path, out: Path) -> list[str]:
        """``transfer-markers`` writes marker_id,t_ref,t_new_est plus the input's other columns."""
        return [*self.command, "transfer-markers", "--ref-markers", markers,
                "--timewarp-json", str(self.warp_file(run)), "--out", str(out)]  # fmt: skip

    def reported_not_aligned(self, sync: StepResult, run: Path, placed: int) -> bool:
        """Sync finished (exit 0) but rejected its warp, so it wrote no timewarp.json."""
        return sync.rc == 0 and not self.warp_file(run).exists() and placed == 0


# --------------------------------------------------------------------------------------------------
# Scoring


def read_placed(path: Path) -> dict[str, float | None]:
    """Output markers CSV -> {name: t_new or None}; understands ours and the anchor's columns."""
    placed: dict[str, float | None] = {}
    for k, row in enumerate(read_markers(path)):
        name = row.get("name") or row.get("marker_id") or row.get("id") or str(k)
        raw = row.get("t_new")
        if raw is None:
            raw = row.get("t_new_est")
        value: float | None = None
        with contextlib.suppress(TypeError, ValueError):
            value = float(raw) if raw is not None and raw.strip() else None
        placed[name] = value if value is not None and math.isfinite(value) else None
    return placed


def score(
    ref_markers: str, truth_path: str | None, out_csv: Path | None, fps: float, duration: float
) -> Score:
    """Score one output CSV (``None``: the tool wrote none, so nothing was placed)."""
    names = [m["name"] for m in read_markers(ref_markers)]
    truth = read_truth_markers(truth_path)
    placed = read_placed(out_csv) if out_csv is not None and out_csv.exists() else {}
    s = Score(n_ref=len(names), n_truth=sum(n in truth for n in names))
    frame = 1.0 / fps
    for name in names:
        t = placed.get(name)
        if t is not None:
            s.placed += 1
            if t < 0 or t > duration:
                s.outside += 1
        if name not in truth:
            if t is not None:
                s.wrongly_placed.append(name)
        elif t is None:
            s.missed.append(name)
        else:
            s.errors_s[name] = t - truth[name]
    if s.errors_s:
        a = np.abs(np.array(list(s.errors_s.values())))
        s.median_s, s.p90_s, s.max_s = float(np.median(a)), float(np.percentile(a, 90)), float(a.max())
        s.median_frames, s.p90_frames, s.max_frames = s.median_s / frame, s.p90_s / frame, s.max_s / frame
    if s.n_truth:
        a = np.abs(np.array(list(s.errors_s.values()) or [np.inf]))
        s.within_1f = float(np.sum(a <= frame + 1e-6)) / s.n_truth
        s.same_frame = float(np.sum(a < 0.5 * frame)) / s.n_truth
    return s


# --------------------------------------------------------------------------------------------------
# One pair


def run_pair(tool: Tool, pair: Pair, runs: Path, timeout_s: float, gps: bool) -> dict[str, Any]:
    """Run ``tool`` on ``pair`` in a fresh folder and score it."""
    run = runs / pair.name
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    info = video_info(pair.new)
    load_before = os.getloadavg()[0]
    steps = [run_step("index", tool.index_cmd(pair, run), run, run / "index.log", timeout_s)]
    steps.append(run_step("sync", tool.sync_cmd(pair, run, gps), run, run / "sync.log", timeout_s))
    sync = steps[-1]
    warp = tool.warp_file(run)
    outputs: dict[str, Path | None] = {"markers": None, "grid": None}
    for kind, markers in (("markers", pair.ref_markers), ("grid", pair.grid_markers)):
        if markers is None:
            continue
        step = f"transfer-{kind}"
        if not warp.exists():
            steps.append(skipped_step(step, f"no {warp.name} after sync"))
            continue
        out = run / f"new_{kind}.csv"
        steps.append(
            run_step(step, tool.transfer_cmd(markers, run, out), run, run / f"{step}.log", timeout_s)
        )
        outputs[kind] = out if out.exists() else None
    marker_score = score(
        pair.ref_markers, pair.truth_markers, outputs["markers"], info["fps"], info["duration"]
    )
    grid_score = (
        score(pair.grid_markers, pair.grid_truth, outputs["grid"], info["fps"], info["duration"])
        if pair.grid_markers
        else None
    )
    crashed = [
        s.step for s in steps if s.skipped is None and (s.timed_out or s.rc not in (0, NOT_ALIGNED_RC))
    ]
    not_aligned = tool.reported_not_aligned(sync, run, marker_score.placed)
    if crashed:
        status = "failed: " + ", ".join(f"{s.step} rc={s.rc}" for s in steps if s.step in crashed)
    elif not_aligned:
        status = "not aligned"
    elif marker_score.placed == 0:
        status = "nothing placed"
    else:
        status = "aligned"
    if pair.kind == "different":
        correct = not_aligned or (marker_score.placed == 0 and not crashed)
    else:
        correct = not crashed and not not_aligned and marker_score.placed > 0
    counted = [s for s in steps if s.step in ("index", "sync", "transfer-markers") and s.skipped is None]
    return {
        "pair": pair.name,
        "kind": pair.kind,
        "description": pair.description,
        "tool": tool.name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "new_fps": info["fps"],
        "new_duration_s": info["duration"],
        "status": status,
        "reported_not_aligned": not_aligned,
        "timewarp_ok": tool.timewarp_ok(run),
        "correct": correct,
        "markers": asdict(marker_score),
        "grid": asdict(grid_score) if grid_score else None,
        # Timings are only as clean as the machine: the 1-minute load average before and after.
        "host": {"cpus": os.cpu_count(), "load_before": load_before, "load_after": os.getloadavg()[0]},
        "wall_s": sum(s.wall_s for s in counted),
        "cpu_s": sum(s.cpu_s for s in counted),
        "peak_rss_mb": max((s.peak_rss_mb for s in counted), default=0.0),
        "steps": [asdict(s) for s in steps],
    }


# --------------------------------------------------------------------------------------------------
# Report


def _f(value: float | None, fmt: str = ".2f") -> str:
    return "-" if value is None else format(value, fmt)


def _verdict(r: dict[str, Any]) -> str:
    """A different-trail pair's verdict in words."""
    placed = r["markers"]["placed"]
    if r["reported_not_aligned"]:
        return "correct: said not aligned"
    if placed:
        return f"WRONG: placed {placed} markers"
    if r["status"].startswith("failed"):
        return "failed, nothing placed"
    return "nothing placed, no verdict"


def pooled(results: list[dict[str, Any]]) -> dict[str, Any]:
    """All same-trail marker errors pooled, and the different-trail tally."""
    same = [r for r in results if r["kind"] == "same"]
    diff = [r for r in results if r["kind"] == "different"]
    frames = [
        abs(e) * r["new_fps"] for r in same for e in r["markers"]["errors_s"].values()
    ]  # |error| in frames of each pair's own new video
    n_truth = sum(r["markers"]["n_truth"] for r in same)
    a = np.array(frames)
    return {
        "same_pairs": len(same),
        "markers_with_truth": n_truth,
        "placed_with_truth": len(frames),
        "median_frames": float(np.median(a)) if a.size else None,
        "p90_frames": float(np.percentile(a, 90)) if a.size else None,
        "max_frames": float(a.max()) if a.size else None,
        "within_1f": float(np.sum(a <= 1.0 + 1e-6)) / n_truth if n_truth else None,
        "wrongly_placed": sum(len(r["markers"]["wrongly_placed"]) for r in same),
        "missed": sum(len(r["markers"]["missed"]) for r in same),
        "failed_pairs": sum(r["status"].startswith("failed") for r in results),
        "different_pairs": len(diff),
        "different_said_not_aligned": sum(bool(r["reported_not_aligned"]) for r in diff),
        "different_placed_markers": sum(r["markers"]["placed"] for r in diff),
        "wall_s": sum(r["wall_s"] for r in results),
        "peak_rss_mb": max((r["peak_rss_mb"] for r in results), default=0.0),
    }


def markdown(results: list[dict[str, Any]], label: str) -> str:
    """The results as markdown: same-trail accuracy, different-trail verdicts, pooled summary."""
    versions = sorted({r.get("version") or "?" for r in results})
    lines = [f"### accuracy: {label} ({', '.join(versions)})", ""]
    same = [r for r in results if r["kind"] == "same"]
    diff = [r for r in results if r["kind"] == "different"]
    if same:
        lines += [
            "| pair | status | placed/truth | median f | p90 f | max f | ≤1 f | same f | wrong | missed "
            "| outside | grid p50 f | grid p90 f | grid ≤1 f | wall s | CPU s | peak RSS MB |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in same:
            m, g = r["markers"], r["grid"] or {}
            lines.append(
                f"| {r['pair']} | {r['status']} | {len(m['errors_s'])}/{m['n_truth']} "
                f"| {_f(m['median_frames'])} | {_f(m['p90_frames'])} | {_f(m['max_frames'])} "
                f"| {_f(m['within_1f'], '.0%')} | {_f(m['same_frame'], '.0%')} "
                f"| {len(m['wrongly_placed'])} | {len(m['missed'])} | {m['outside']} "
                f"| {_f(g.get('median_frames'))} | {_f(g.get('p90_frames'))} "
                f"| {_f(g.get('within_1f'), '.0%')} "
                f"| {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['peak_rss_mb']:.0f} |"
            )
        lines.append("")
    if diff:
        lines += [
            "| different-trail pair | status | said not aligned | markers placed | verdict | wall s "
            "| CPU s | peak RSS MB |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in diff:
            m = r["markers"]
            lines.append(
                f"| {r['pair']} | {r['status']} | {'yes' if r['reported_not_aligned'] else 'no'} "
                f"| {m['placed']}/{m['n_ref']} | {_verdict(r)} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} "
                f"| {r['peak_rss_mb']:.0f} |"
            )
        lines.append("")
    p = pooled(results)
    lines.append(
        f"Pooled over {p['same_pairs']} same-trail pairs: {p['placed_with_truth']}/{p['markers_with_truth']} "
        f"markers placed, |error| median {_f(p['median_frames'])} / p90 {_f(p['p90_frames'])} / max "
        f"{_f(p['max_frames'])} frames, {_f(p['within_1f'], '.0%')} within one frame, "
        f"{p['wrongly_placed']} wrongly placed, {p['missed']} missed. Different trails: "
        f"{p['different_said_not_aligned']}/{p['different_pairs']} said not aligned, "
        f"{p['different_placed_markers']} markers placed. Failed pairs: {p['failed_pairs']}."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse options, build/reuse pairs, run the tool on each, print and save the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tool", choices=("ours", "anchor"), default="ours")
    parser.add_argument(
        "--pairs", default=",".join(PAIR_NAMES), help="comma-separated subset of: %(default)s"
    )
    parser.add_argument("--label", help="name of the results (default: tool, anchor-shim with --anchor-shim)")
    parser.add_argument("--bin", type=Path, help="the tool's mtbsync executable (default: per tool)")
    parser.add_argument(
        "--anchor-shim", action="store_true", help="run the anchor through _anchor_shim.py (index dtype fix)"
    )
    parser.add_argument("--fps", type=float, default=3.0, help="keyframes per second for index/sync")
    parser.add_argument(
        "--gps", action="store_true", help="pass --reference-track/--new-track where a pair has GPX"
    )
    parser.add_argument("--extra-index-args", default="", help="appended to the index command")
    parser.add_argument("--extra-sync-args", default="", help="appended to the sync command")
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds per step")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached pairs")
    parser.add_argument("--fresh", action="store_true", help="discard earlier results in the JSON")
    parser.add_argument("--build-only", action="store_true", help="build/reuse the pairs and stop")
    parser.add_argument("--report", action="store_true", help="print the saved results and stop")
    args = parser.parse_args(argv)

    if args.anchor_shim and args.tool != "anchor":
        parser.error("--anchor-shim goes with --tool anchor")
    label = args.label or ("anchor-shim" if args.anchor_shim else args.tool)
    out_json = BENCH / f"accuracy-{label}.json"
    previous: dict[str, Any] = {}
    if out_json.exists() and not args.fresh:
        previous = {r["pair"]: r for r in json.loads(out_json.read_text(encoding="utf-8"))["results"]}
    if args.report:
        print(markdown([previous[n] for n in PAIR_NAMES if n in previous], label))
        return 0
    names = [n.strip() for n in args.pairs.split(",") if n.strip()]
    unknown = [n for n in names if n not in PAIR_NAMES]
    if unknown:
        parser.error(f"unknown pair(s) {unknown}; known: {PAIR_NAMES}")
    binary = args.bin or (OURS_BIN if args.tool == "ours" else ANCHOR_BIN)
    if not args.build_only and not binary.exists():
        hint = (
            f"python3 -m venv {BENCH / 'anchor-venv'} && {BENCH / 'anchor-venv/bin/pip'} install "
            f"mtbsync=={ANCHOR_VERSION}   (it also needs ffmpeg and ffprobe on PATH)"
            if args.tool == "anchor"
            else "make setup"
        )
        parser.error(f"{binary} not found; {hint}")
    command = [str(binary)]
    if args.anchor_shim:  # the venv's interpreter sits beside its mtbsync script
        command = [str(binary.parent / "python"), str(Path(__file__).resolve().parent / "_anchor_shim.py")]
    tool_cls = Ours if args.tool == "ours" else Anchor
    tool = tool_cls(command, args.fps, shlex.split(args.extra_index_args), shlex.split(args.extra_sync_args))

    version = "" if args.build_only else tool.version()
    cache, runs = BENCH / "pairs", BENCH / "runs" / label
    cache.mkdir(parents=True, exist_ok=True)
    unavailable: dict[str, str] = {}
    for name in names:
        try:
            t0 = time.perf_counter()
            pair = get_pair(name, cache, rebuild=args.rebuild)
            print(f"[pair] {name}: ready ({time.perf_counter() - t0:.1f}s)", file=sys.stderr)
        except PairUnavailable as exc:
            unavailable[name] = str(exc)
            print(f"[pair] {name}: unavailable: {exc}", file=sys.stderr)
            continue
        if args.build_only:
            continue
        print(f"[run] {label} on {name} ...", file=sys.stderr, flush=True)
        result = run_pair(tool, pair, runs, args.timeout, args.gps)
        result["command"] = command
        result["version"] = version
        result["extra_args"] = {"index": tool.extra_index, "sync": tool.extra_sync, "gps": args.gps}
        print(f"[run] {name}: {result['status']} in {result['wall_s']:.1f}s", file=sys.stderr, flush=True)
        previous[name] = result
        results = [previous[n] for n in PAIR_NAMES if n in previous]
        payload = {
            "label": label,
            "tool": args.tool,
            "version": version,
            "results": results,
            "pooled": pooled(results),
        }
        tmp = out_json.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        tmp.replace(out_json)
    if args.build_only:
        return 0
    print(markdown([previous[n] for n in PAIR_NAMES if n in previous], label))
    for name, why in unavailable.items():
        print(f"- {name}: not run ({why})")
    print(f"\nJSON: {out_json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
