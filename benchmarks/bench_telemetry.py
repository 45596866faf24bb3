"""Time GoPro telemetry extraction (`read_gopro_telemetry`): MB/s of file and times realtime.

Usage: python benchmarks/bench_telemetry.py [--repeats N] [--data DIR] [--long-s S]

Reads every sample MP4 in ``../shared/data/gopro`` (the largest is the headline figure), plus one
synthetic long chapter written with `mtbsync.samples.gopro_mp4` (``--long-s`` seconds of 1280x720
video carrying the HERO8 walking track's real payloads, repeated): that one shows that the cost
follows the telemetry, not the file size, because only the MET samples are read (by offset).
Prints a markdown table: file, size, video length, GPS samples, median wall time over the repeats
(best in brackets), MB/s of file and times realtime.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

from mtbsync.ingest.gopro import read_gopro_telemetry
from mtbsync.ingest.gpmf import split_track
from mtbsync.samples.gopro_mp4 import write_gopro_mp4

ROOT = Path(__file__).resolve().parents[1]


def _time(path: Path, repeats: int) -> tuple[list[float], int, float]:
    telemetry = read_gopro_telemetry([path])  # warm the page cache and imports
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        read_gopro_telemetry([path])
        times.append(time.perf_counter() - start)
    gps = telemetry.gps
    duration = float(gps.t[-1]) if gps is not None and len(gps) else 0.0
    return times, len(gps) if gps is not None else 0, duration


def _video_seconds(path: Path) -> float:
    from mtbsync.io.video import probe

    return probe(path).duration


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "gopro")
    parser.add_argument("--long-s", type=float, default=120.0, help="length of the synthetic long chapter")
    args = parser.parse_args()

    files = sorted(args.data.glob("*.mp4"), key=lambda p: p.stat().st_size, reverse=True)
    with tempfile.TemporaryDirectory() as tmp:
        if args.long_s > 0:
            walking = split_track((args.data / "hero8-walking.gpmf").read_bytes())
            n = int(args.long_s)
            payloads = [walking[k % len(walking)] for k in range(n)]
            long_path = write_gopro_mp4(
                Path(tmp) / "GX010001.MP4",
                duration_s=args.long_s,
                size=(1280, 720),
                gpmf_payloads=payloads,
                payload_duration_s=1.0,
            )
            files.append(long_path)
        print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}")
        print()
        print("| file | MB | video s | GPS samples | time ms (best) | MB/s | x realtime |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for path in files:
            times, samples, _ = _time(path, args.repeats)
            size_mb = path.stat().st_size / 1e6
            video_s = _video_seconds(path)
            median = statistics.median(times)
            timing = f"{median * 1000:.1f} ({min(times) * 1000:.1f})"
            rates = f"{size_mb / median:.0f} | {video_s / median:.0f}"
            print(f"| {path.name} | {size_mb:.1f} | {video_s:.1f} | {samples} | {timing} | {rates} |")


if __name__ == "__main__":
    main()
