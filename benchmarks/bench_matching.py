"""Throughput of brute-force Hamming 2-NN matching: NumPy oracle, numba CPU kernel, OpenCV, faiss, GPU kernel.

Usage: python benchmarks/bench_matching.py [--repeats N] [--threads N] [--keyframes K] [--descriptors D]
                                           [--window W] [--subset P] [--quick]

Cases: one pair of 500x500 and 800x800 descriptors, then the pipeline's shape: K new x K reference
keyframes of D descriptors each, every new keyframe matched against the reference keyframes within
+-W of its place (default 900 x 900 x 800, +-20: about 36,500 frame pairs, 2.3e10 distances). The
numba and GPU kernels run the whole batch in one call; the slow methods (NumPy, OpenCV, faiss) run a
random subset of P pairs, so their throughput is measured on that subset (the table says how many
pairs each method timed). Throughput is distances/s (query x train descriptors compared) and frame
pairs/s.

Inputs are random 32-byte ORB-like descriptors with a fixed seed; half of each new keyframe's rows
are noisy copies of its reference keyframe's, so there are real matches (brute force does the same
work either way). Every method is checked against the NumPy oracle before it is timed (OpenCV and
faiss break ties their own way: distances only).

GPU: the kernel runs when the ``gpu`` backend builds (CuPy + numba-cuda + a CUDA device); the script
then prints the card's popcount peak, SMs x clock x 32-bit popcounts per clock per SM / 8 popcounts
per distance, and the fraction of it reached at the largest size (target: >= 50%). Without a GPU the
rows say why and no figure is given.
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

from mtbsync.errors import DeviceError
from mtbsync.gpu import backend_name, cpu, hamming_knn2, hamming_knn2_pairs
from mtbsync.gpu.reference import knn2_numpy

try:
    import faiss
except ImportError:  # faiss-cpu is in the `bench` extra only
    faiss = None


@dataclass
class Row:
    case: str
    method: str
    seconds: list[float]
    distances: int  # per timed call
    frame_pairs: int  # per timed call
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.seconds) if self.seconds else float("nan")


def _descriptors(rng: np.random.Generator, n: int, like: np.ndarray | None = None) -> np.ndarray:
    out = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    if like is not None:
        half = n // 2
        noise = np.packbits(rng.random((half, 256)) < 0.1, axis=1)
        out[:half] = like[rng.integers(0, like.shape[0], half)] ^ noise
    return out


def _time(fn: Callable[[], object], repeats: int) -> list[float]:
    fn()  # warm caches (and, for numba and CUDA, make sure nothing is left to compile)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _opencv(matcher: cv2.BFMatcher, query: np.ndarray, train: np.ndarray) -> np.ndarray:
    matches = matcher.knnMatch(query, train, k=2)
    return np.array([[m[0].distance, m[1].distance] for m in matches], np.int32)


class _FaissTrain:
    """One IndexBinaryFlat per train block, built once (as an application would keep them)."""

    def __init__(self, blocks: list[np.ndarray]) -> None:
        self.indexes = []
        for block in blocks:
            index = faiss.IndexBinaryFlat(8 * block.shape[1])
            index.add(block)
            self.indexes.append(index)

    def search(self, query: np.ndarray, block: int) -> np.ndarray:
        distances, _ = self.indexes[block].search(query, 2)
        return distances.astype(np.int32)


def _gpu_available() -> str | None:
    """None when the GPU backend runs here, else why not."""
    try:
        backend_name("gpu")
    except DeviceError as exc:
        return exc.message
    return None


def _check_single(query: np.ndarray, train: np.ndarray, matcher: cv2.BFMatcher, gpu: bool) -> None:
    want = knn2_numpy(query, train)
    for device in ("cpu", "gpu") if gpu else ("cpu",):
        got = hamming_knn2(query, train, device=device)
        for field in ("idx1", "dist1", "idx2", "dist2"):
            assert np.array_equal(getattr(got, field), getattr(want, field)), (device, field)
    ocv = _opencv(matcher, query, train)
    assert np.array_equal(ocv[:, 0], want.dist1) and np.array_equal(ocv[:, 1], want.dist2)
    if faiss is not None:
        fd = _FaissTrain([train]).search(query, 0)
        assert np.array_equal(fd[:, 0], want.dist1) and np.array_equal(fd[:, 1], want.dist2)


def bench_single(
    n: int, repeats: int, matcher: cv2.BFMatcher, rng: np.random.Generator, gpu_why: str | None
) -> list[Row]:
    train = _descriptors(rng, n)
    query = _descriptors(rng, n, train)
    _check_single(query, train, matcher, gpu_why is None)
    case = f"1 pair, {n}x{n}"
    d = n * n
    rows = [
        Row(case, "NumPy oracle", _time(lambda: knn2_numpy(query, train), max(3, repeats // 10)), d, 1),
        Row(
            case,
            "OpenCV BFMatcher knnMatch(k=2)",
            _time(lambda: matcher.knnMatch(query, train, k=2), repeats),
            d,
            1,
        ),
    ]
    if faiss is not None:
        index = _FaissTrain([train])
        rows.append(
            Row(case, "faiss IndexBinaryFlat k=2", _time(lambda: index.search(query, 0), repeats), d, 1)
        )
    rows += [
        Row(
            case,
            "numba CPU kernel, 1 thread",
            _time(lambda: cpu.knn2(query, train, parallel=False), repeats),
            d,
            1,
        ),
        Row(
            case,
            "numba CPU kernel, all threads",
            _time(lambda: cpu.knn2(query, train, parallel=True), repeats),
            d,
            1,
        ),
    ]
    if gpu_why is None:
        rows.append(
            Row(
                case,
                "GPU kernel (incl. transfers)",
                _time(lambda: hamming_knn2(query, train, device="gpu"), repeats),
                d,
                1,
            )
        )
    else:
        rows.append(Row(case, "GPU kernel", [], d, 1, note="skipped: no GPU in this session"))
    return rows


def _window_pairs(n_new: int, n_ref: int, window: int) -> np.ndarray:
    """Each new keyframe against the reference keyframes within +-window of its place."""
    new = np.arange(n_new)
    centre = np.round(new * (n_ref - 1) / max(1, n_new - 1)).astype(np.int64)
    offsets = np.arange(-window, window + 1)
    ref = centre[:, None] + offsets[None, :]
    keep = (ref >= 0) & (ref < n_ref)
    return np.stack([np.broadcast_to(new[:, None], ref.shape)[keep], ref[keep]], axis=1).astype(np.int64)


def bench_batched(
    n_key: int,
    n_desc: int,
    window: int,
    subset: int,
    repeats: int,
    threads: int | None,
    matcher: cv2.BFMatcher,
    rng: np.random.Generator,
    gpu_why: str | None,
    gpu_clock_hz: float | None = None,
) -> tuple[list[Row], float | None]:
    ref_all = _descriptors(rng, n_key * n_desc)
    offsets = np.arange(0, n_key * n_desc + 1, n_desc, dtype=np.int64)
    new_all = np.concatenate(
        [_descriptors(rng, n_desc, ref_all[offsets[k] : offsets[k + 1]]) for k in range(n_key)]
    )
    pairs = _window_pairs(n_key, n_key, window)
    n_pairs = len(pairs)
    d_pair = n_desc * n_desc
    some = pairs[rng.choice(n_pairs, min(subset, n_pairs), replace=False)]
    blocks = [(new_all[offsets[q] : offsets[q + 1]], ref_all[offsets[t] : offsets[t + 1]]) for q, t in some]
    ref_blocks = [ref_all[offsets[k] : offsets[k + 1]] for k in range(n_key)]

    numba_result = hamming_knn2_pairs(
        new_all, offsets, ref_all, offsets, pairs, device="cpu", threads=threads
    )
    index_of = {(int(q), int(t)): p for p, (q, t) in enumerate(pairs)}
    for (q, t), (query, train) in zip(some[:5], blocks[:5], strict=True):
        want, got = knn2_numpy(query, train), numba_result[index_of[(int(q), int(t))]]
        assert np.array_equal(got.idx2, want.idx2) and np.array_equal(got.dist2, want.dist2)
        assert np.array_equal(_opencv(matcher, query, train)[:, 1], want.dist2)

    case = f"{n_key} new x {n_key} ref keyframes x {n_desc}, window +-{window} ({n_pairs:,} pairs)"
    few = max(2, repeats // 10)
    sub = len(some)
    rows = [
        Row(
            case,
            "NumPy oracle, loop",
            _time(lambda: [knn2_numpy(q, t) for q, t in blocks[: max(1, sub // 10)]], 1),
            d_pair * max(1, sub // 10),
            max(1, sub // 10),
        ),
        Row(
            case,
            "OpenCV BFMatcher knnMatch(k=2), loop",
            _time(lambda: [matcher.knnMatch(q, t, k=2) for q, t in blocks], 1),
            d_pair * sub,
            sub,
        ),
    ]
    if faiss is not None:
        index = _FaissTrain(ref_blocks)
        rows.append(
            Row(
                case,
                "faiss IndexBinaryFlat k=2, loop",
                _time(
                    lambda: [index.search(q, int(t)) for (q, _), (_, t) in zip(blocks, some, strict=True)], 1
                ),
                d_pair * sub,
                sub,
            )
        )
    rows.append(
        Row(
            case,
            "numba hamming_knn2_pairs, one call",
            _time(
                lambda: hamming_knn2_pairs(
                    new_all, offsets, ref_all, offsets, pairs, device="cpu", threads=threads
                ),
                few,
            ),
            d_pair * n_pairs,
            n_pairs,
        )
    )
    fraction = None
    if gpu_why is None:
        gpu_result = hamming_knn2_pairs(new_all, offsets, ref_all, offsets, pairs, device="gpu")
        for p in rng.choice(n_pairs, 50, replace=False):
            for field in ("idx1", "dist1", "idx2", "dist2"):
                assert np.array_equal(getattr(gpu_result[p], field), getattr(numba_result[p], field)), field
        row = Row(
            case,
            "GPU kernel, one launch (incl. transfers)",
            _time(lambda: hamming_knn2_pairs(new_all, offsets, ref_all, offsets, pairs, device="gpu"), few),
            d_pair * n_pairs,
            n_pairs,
        )
        rows.append(row)
        kernel_row = _gpu_kernel_only(case, new_all, offsets, ref_all, pairs, few)
        rows.append(kernel_row)
        from mtbsync.gpu.cuda import popcount_peak

        peak = popcount_peak(32, clock_hz=gpu_clock_hz)["peak_distances_per_s"]
        fraction = kernel_row.distances / kernel_row.median / peak
    else:
        rows.append(
            Row(case, "GPU kernel", [], d_pair * n_pairs, n_pairs, note="skipped: no GPU in this session")
        )
    return rows, fraction


def _gpu_kernel_only(
    case: str, query: np.ndarray, offsets: np.ndarray, train: np.ndarray, pairs: np.ndarray, repeats: int
) -> Row:
    """The launch alone, inputs already on the device, output left there: what the popcount peak bounds."""
    from numba import cuda

    from mtbsync.gpu.cuda import CudaMatcher, choose_block

    matcher = CudaMatcher()
    block = choose_block(np.diff(offsets)[pairs[:, 0]])
    tasks, out_offsets = cpu.pair_tasks(offsets, offsets, pairs, block)
    staged = matcher.upload(query, train, tasks, int(out_offsets[-1]))

    def launch() -> None:
        matcher.launch(staged, block=block)
        cuda.synchronize()

    n_pairs = len(pairs)
    d = int(np.diff(offsets)[pairs[:, 0]] @ np.diff(offsets)[pairs[:, 1]])
    return Row(case, f"GPU kernel alone (block {block}, on-device data)", _time(launch, repeats), d, n_pairs)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per single-pair measurement")
    parser.add_argument("--threads", type=int, default=None, help="numba threads for the batched call")
    parser.add_argument("--keyframes", type=int, default=900, help="new and reference keyframes")
    parser.add_argument("--descriptors", type=int, default=800, help="descriptors per keyframe")
    parser.add_argument("--window", type=int, default=20, help="candidate window, +- reference keyframes")
    parser.add_argument("--subset", type=int, default=200, help="pairs the slow methods time")
    parser.add_argument("--quick", action="store_true", help="a small batch (60 keyframes), for a smoke run")
    parser.add_argument(
        "--gpu-clock-mhz",
        type=float,
        default=None,
        help="SM clock for the popcount peak (default: the card's)",
    )
    args = parser.parse_args()
    if args.quick:
        args.keyframes, args.subset, args.repeats = 60, 40, 5

    start = time.perf_counter()
    cpu.warm_up()
    warm = time.perf_counter() - start
    gpu_why = _gpu_available()
    rng = np.random.default_rng(0)
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)

    rows = bench_single(500, args.repeats, matcher, rng, gpu_why)
    rows += bench_single(800, args.repeats, matcher, rng, gpu_why)
    batched, fraction = bench_batched(
        args.keyframes,
        args.descriptors,
        args.window,
        args.subset,
        args.repeats,
        args.threads,
        matcher,
        rng,
        gpu_why,
        args.gpu_clock_mhz * 1e6 if args.gpu_clock_mhz else None,
    )
    rows += batched

    print("| case | method | pairs per call | median ms [best] | Mdistances/s | frame pairs/s | vs OpenCV |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for row in rows:
        if not row.seconds:
            print(f"| {row.case} | {row.method} | - | {row.note} | - | - | - |")
            continue
        ocv = next(r for r in rows if r.case == row.case and r.method.startswith("OpenCV"))
        speed = row.distances / row.median
        ocv_speed = ocv.distances / ocv.median
        print(
            f"| {row.case} | {row.method} | {row.frame_pairs:,} "
            f"| {1e3 * row.median:,.1f} [{1e3 * min(row.seconds):,.1f}] "
            f"| {speed / 1e6:,.0f} | {row.frame_pairs / row.median:,.1f} | {speed / ocv_speed:.2f}x |"
        )
    print()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"- machine: {_cpu_model()}, {os.cpu_count()} logical cores, {platform.platform()}")
    print(f"- load average at the end (1, 5, 15 min): {load}")
    print(
        f"- python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__} "
        f"({numba.threading_layer()} layer, {numba.config.NUMBA_NUM_THREADS} threads, "
        f"compiled for {numba.config.CPU_NAME or llvm.get_host_cpu_name()}), "
        f"OpenCV {cv2.__version__} ({cv2.getNumThreads()} threads)"
        + (
            f", faiss {faiss.__version__} ({faiss.omp_get_max_threads()} threads)"
            if faiss
            else ", faiss not installed"
        )
    )
    print(f"- numba warm-up (compile or load from cache): {warm:.2f} s")
    if gpu_why is not None:
        print(f"- GPU: none here ({gpu_why}); GPU figures left open")
    else:
        from mtbsync.gpu.cuda import device_summary, popcount_peak

        peak = popcount_peak(32, clock_hz=args.gpu_clock_mhz * 1e6 if args.gpu_clock_mhz else None)
        print(
            f"- GPU: {device_summary()}; popcount peak = {peak['sms']} SMs"
            f" x {peak['clock_hz'] / 1e9:.3f} GHz x {peak['popc_per_clock_per_sm']} popc/clock/SM"
            f" / {peak['popc_per_distance']:.0f} popc per distance"
            f" = {peak['peak_distances_per_s'] / 1e9:,.1f} Gdistances/s;"
            f" largest case reached {100 * fraction:.0f}% (target >= 50%)"
        )


if __name__ == "__main__":
    main()
