"""End-to-end latency of `mtbsync serve`: a run copied into the library -> ready.

Generates the 14 s sample pair (as tests/conftest.py does), serves an empty library in process, copies the
reference in as GX010001.MP4, adds its markers, then the new run as GX010002.MP4, and reports for each the
seconds from the copy to the run's final state, and the stage seconds recorded in the catalog.

    .venv/bin/python /tmp/notes/serve_bench.py [--workers 1]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import httpx

from mtbsync.markers import read_reference_markers
from mtbsync.samples import make_sample_pair
from mtbsync.service import LibraryService
from mtbsync.store.catalog import MarkerRow

BUSY = {"queued", "ingesting", "aligning"}


def wait_final(url: str, name: str) -> dict:
    while True:
        for run in httpx.get(f"{url}/api/runs").json():
            if run["name"] == name and run["state"] not in BUSY:
                return run
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--settle", type=float, default=0.5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_serve_"))
    pair = make_sample_pair(
        work / "pair",
        duration_s=14.0,
        seed=3,
        ref_size=(480, 270),
        new_size=(400, 224),
        ref_fps=30.0,
        new_fps=25.0,
        start_gate_wait_s=1.0,
    )
    library = work / "library" / "DCIM" / "100GOPRO"
    library.mkdir(parents=True)
    service = LibraryService(
        work / "library",
        db=work / "catalog.duckdb",
        port=0,
        workers=args.workers,
        settle_s=args.settle,
        telemetry_interval_s=0,
    ).start()
    try:
        rows = []
        for name, video in (("GX010001", pair.reference), ("GX010002", pair.new)):
            t0 = time.perf_counter()
            shutil.copy(video, library / f"{name}.MP4")
            run = wait_final(service.url, name)
            seconds = time.perf_counter() - t0
            if name == "GX010001":
                markers = read_reference_markers(pair.reference_markers_csv)
                service.catalog.record_markers(
                    int(run["id"]),
                    [MarkerRow(m.name, m.t_ref, colour=m.colour) for m in markers],
                    source="manual",
                )
            stages = httpx.post(
                f"{service.url}/api/sql",
                json={
                    "sql": (
                        f"SELECT stage, round(sum(seconds), 2) FROM stage_timings WHERE run_id = {run['id']} "
                        "GROUP BY stage ORDER BY min(started_at)"
                    )
                },
            ).json()["rows"]
            rows.append((name, run["state"], seconds, stages))
        for name, state, seconds, stages in rows:
            print(
                f"{name}: {state} {seconds:.2f} s after the copy (settle {args.settle} s); stages: "
                + ", ".join(f"{s} {v}" for s, v in stages)
            )
    finally:
        service.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
