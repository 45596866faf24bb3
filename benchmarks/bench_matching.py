"""Time brute-force Hamming 2-NN matching: NumPy oracle vs numba kernel vs OpenCV's BFMatcher.

Usage: python benchmarks/bench_matching.py [--repeats N] [--threads N] [--pairs P]

Prints a markdown table (median wall time per call over the repeats, best time in brackets) and the
machine it ran on. Inputs are random 32-byte ORB-like descriptors with a fixed seed; half of each query
block is a noisy copy of train rows, so there are real matches as well as clutter (brute force does the
same work either way). Every method is checked to give the same distances before it is timed.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numba
import numpy as np
from llvmlite import binding as llvm

from mtbsync.gpu import backend_name, cpu, hamming_knn2, hamming_knn2_pairs
from mtbsync.gpu.reference import knn2_numpy


@dataclass
class Row:
    case: str
    method: str
    seconds: list[float]
    distances: int
    frame_pairs: int

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def _descriptors(rng: np.random.Generator, n: int, train: np.ndarray | None = None) -> np.ndarray:
    if train is None:
        return rng.integers(0, 256, (n, 32), dtype=np.uint8)
    out = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    half = n // 2
    noise = np.packbits(rng.random((half, 256)) < 0.1, axis=1)
    out[:half] = train[rng.integers(0, train.shape[0], half)] ^ noise
    return out


def _time(fn: Callable[[], object], repeats: int) -> list[float]:
    fn()  # warm caches (and, for numba, make sure nothing is left to compile)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _opencv_knn(matcher: cv2.BFMatcher, query: np.ndarray, train: np.ndarray) -> np.ndarray:
    matches = matcher.knnMatch(query, train, k=2)
    return np.array([[m[0].distance, m[1].distance] for m in matches], np.int32)


def _check(query: np.ndarray, train: np.ndarray, matcher: cv2.BFMatcher) -> None:
    want = knn2_numpy(query, train)
    got = hamming_knn2(query, train, device="cpu")
    for field in ("idx1", "dist1", "idx2", "dist2"):
        assert np.array_equal(getattr(got, field), getattr(want, field)), field
    ocv = _opencv_knn(matcher, query, train)  # OpenCV breaks ties its own way: compare distances only
    assert np.array_equal(ocv[:, 0], want.dist1) and np.array_equal(ocv[:, 1], want.dist2)


def bench_single(n: int, repeats: int, matcher: cv2.BFMatcher, rng: np.random.Generator) -> list[Row]:
    train = _descriptors(rng, n)
    query = _descriptors(rng, n, train)
    _check(query, train, matcher)
    case = f"1 pair, {n}x{n}"
    d = n * n
    return [
        Row(case, "numpy oracle", _time(lambda: knn2_numpy(query, train), max(3, repeats // 10)), d, 1),
        Row(
            case,
            "OpenCV BFMatcher knnMatch(k=2)",
            _time(lambda: matcher.knnMatch(query, train, k=2), repeats),
            d,
            1,
        ),
        Row(
            case,
            "numba, 1 thread (default here)",
            _time(lambda: cpu.knn2(query, train, parallel=False), repeats),
            d,
            1,
        ),
        Row(case, "numba, all threads", _time(lambda: cpu.knn2(query, train, parallel=True), repeats), d, 1),
    ]


def bench_batched(
    n_pairs: int, n: int, repeats: int, threads: int | None, matcher: cv2.BFMatcher, rng: np.random.Generator
) -> list[Row]:
    # n_pairs distinct query frames against n_pairs train frames, as the pipeline's verification does.
    train_all = _descriptors(rng, n_pairs * n)
    query_all = _descriptors(rng, n_pairs * n, train_all)
    offsets = np.arange(0, n_pairs * n + 1, n, dtype=np.int64)
    pairs = np.stack([np.arange(n_pairs), rng.permutation(n_pairs)], axis=1)
    blocks = [
        (query_all[offsets[q] : offsets[q + 1]], train_all[offsets[t] : offsets[t + 1]]) for q, t in pairs
    ]

    results = hamming_knn2_pairs(query_all, offsets, train_all, offsets, pairs, device="cpu", threads=threads)
    for (query, train), got in zip(blocks[:5], results[:5], strict=True):
        assert np.array_equal(got.dist2, knn2_numpy(query, train).dist2)

    case = f"{n_pairs} pairs x {n}x{n}"
    d = n_pairs * n * n
    few = max(2, repeats // 10)
    return [
        Row(case, "numpy oracle, loop", _time(lambda: [knn2_numpy(q, t) for q, t in blocks], 1), d, n_pairs),
        Row(
            case,
            "OpenCV BFMatcher knnMatch(k=2), loop",
            _time(lambda: [matcher.knnMatch(q, t, k=2) for q, t in blocks], few),
            d,
            n_pairs,
        ),
        Row(
            case,
            "numba hamming_knn2, loop (1 thread)",
            _time(lambda: [cpu.knn2(q, t, parallel=False) for q, t in blocks], few),
            d,
            n_pairs,
        ),
        Row(
            case,
            "numba hamming_knn2_pairs, one call",
            _time(
                lambda: hamming_knn2_pairs(
                    query_all, offsets, train_all, offsets, pairs, device="cpu", threads=threads
                ),
                few,
            ),
            d,
            n_pairs,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50, help="timed calls per single-pair measurement")
    parser.add_argument("--threads", type=int, default=None, help="numba threads for the batched call")
    parser.add_argument("--pairs", type=int, default=200, help="frame pairs in the batched case")
    args = parser.parse_args()

    start = time.perf_counter()
    cpu.warm_up()
    warm = time.perf_counter() - start
    rng = np.random.default_rng(0)
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)

    rows = bench_single(500, args.repeats, matcher, rng)
    rows += bench_single(800, args.repeats, matcher, rng)
    rows += bench_batched(args.pairs, 800, args.repeats, args.threads, matcher, rng)

    print("| case | method | median ms [best] | Mdistances/s | frame pairs/s | vs OpenCV |")
    print("|---|---|---:|---:|---:|---:|")
    for row in rows:
        ocv = next(r for r in rows if r.case == row.case and r.method.startswith("OpenCV"))
        print(
            f"| {row.case} | {row.method} | {1e3 * row.median:.3f} [{1e3 * min(row.seconds):.3f}] "
            f"| {row.distances / row.median / 1e6:,.0f} | {row.frame_pairs / row.median:,.1f} "
            f"| {ocv.median / row.median:.2f}x |"
        )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print()
    cpu_model = platform.processor() or platform.machine()
    print(f"- machine: {platform.platform()}, {cpu_model}, os.cpu_count() = {os.cpu_count()}")
    print(f"- load average during the run (1, 5, 15 min): {load}")
    print(
        f"- python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__} "
        f"({numba.threading_layer()} layer, {numba.config.NUMBA_NUM_THREADS} threads, "
        f"compiled for {numba.config.CPU_NAME or llvm.get_host_cpu_name()}), "
        f"OpenCV {cv2.__version__} ({cv2.getNumThreads()} threads)"
    )
    print(f"- backend: {backend_name()}; numba warm-up (compile or load from cache): {warm:.2f} s")


if __name__ == "__main__":
    main()
