"""Ingest latency with the watcher running: last byte of a recording written -> its run in the catalog.

Usage: python benchmarks/bench_ingest.py [--trials N] [--settle S ...] [--chapter-s S]

Builds distinct two-chapter GoPro recordings (`mtbsync.samples.card`, real HERO7 GPMF, LRV + THM),
starts `watch_and_ingest` on an empty folder with a real DuckDB catalog, then copies one recording
at a time into it (1 MiB writes, files in name order as ``cp -r`` does) and times from the last byte
written to the moment the catalog reports the run as recorded (the ``on_outcome`` callback, called
after the transaction committed). The latency includes the settle time by design (a file must stay
unchanged that long before it counts as complete); "processing" is the latency minus the settle time
(watch batching, probe, identity, telemetry, one transaction).
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

from mtbsync.library.ingest import RecordingOutcome, watch_and_ingest
from mtbsync.samples.card import build_sd_card
from mtbsync.store.catalog import Catalog

_CHUNK = 1 << 20


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    with src.open("rb") as fin, dst.open("wb") as fout:
        while chunk := fin.read(_CHUNK):
            fout.write(chunk)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(settle_s: float, trials: int, chapter_s: float, work: Path) -> list[float]:
    sources = []
    for k in range(trials):
        layout = build_sd_card(
            work / f"src{settle_s}-{k}",
            seconds_per_chapter=chapter_s,
            old_camera=False,
            gps9=False,
            seed=1000 + k,
        )
        sources.append(layout.recordings["GX010101"])
    watched = work / f"watched{settle_s}"
    watched.mkdir()
    recorded: dict[str, float] = {}
    stop = threading.Event()

    def on_outcome(outcome: RecordingOutcome) -> None:
        if outcome.status == "new":
            recorded[str(outcome.path.parent)] = time.perf_counter()

    latencies = []
    with Catalog.open(work / f"catalog{settle_s}.duckdb") as catalog:
        thread = threading.Thread(
            target=watch_and_ingest,
            args=(watched, catalog, stop),
            kwargs={"on_outcome": on_outcome, "settle_s": settle_s, "poll_s": 0.1},
            daemon=True,
        )
        thread.start()
        time.sleep(0.5)  # the watch is set up
        for k, rec in enumerate(sources):
            folder = watched / f"dump{k}" / "DCIM" / "100GOPRO"
            files = sorted(
                [*rec.videos, *(p for p in rec.proxies if p), *(p for p in rec.thumbnails if p)],
                key=lambda p: p.name,
            )
            for path in files:
                _copy(path, folder / path.name)
            done = time.perf_counter()
            end = done + settle_s + 30
            while str(folder) not in recorded and time.perf_counter() < end:
                time.sleep(0.005)
            if str(folder) not in recorded:
                raise SystemExit(f"trial {k}: not recorded within {settle_s + 30:.0f} s")
            latencies.append(recorded[str(folder)] - done)
        stop.set()
        thread.join(timeout=10)
    shutil.rmtree(watched, ignore_errors=True)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--settle", type=float, nargs="+", default=[2.0, 0.5])
    parser.add_argument("--chapter-s", type=float, default=3.0, help="seconds of video per chapter (320x180)")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}")
    print()
    print("| settle s | trials | latency median s | p90 s | min s | max s | processing median s |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for settle in args.settle:
            lat = run(settle, args.trials, args.chapter_s, Path(tmp))
            med = statistics.median(lat)
            print(
                f"| {settle:.1f} | {len(lat)} | {med:.2f} | {_percentile(lat, 0.9):.2f} | {min(lat):.2f} | "
                f"{max(lat):.2f} | {med - settle:.2f} |"
            )


if __name__ == "__main__":
    main()
