"""Brute-force Hamming 2-nearest-neighbour search on an NVIDIA GPU, in numba-cuda, with the ratio test fused.

One launch serves a whole batch: the same ``(query_lo, query_hi, train_lo, train_hi, out_lo)`` tasks as
the CPU kernel (:func:`mtbsync.gpu.cpu.pair_tasks`), cut to one thread block's worth of queries, so all
new keyframes are matched against their candidate reference keyframes in one grid.

Kernel layout
-------------
* One CUDA block per task, one thread per query. The thread holds its query's words in registers (a
  local array the compiler keeps in registers for ORB's four ``uint64`` words).
* The task's train rows go through shared memory a tile at a time, loaded by the whole block with
  coalesced reads. Every thread then reads the same tile row at once: a shared-memory broadcast, no
  bank conflicts.
* Distances are ``popc(q ^ t)`` over ``uint64`` views of the descriptors (width is a multiple of 8
  bytes, checked by the caller), so no padding is needed.
* Each thread scans its train rows in increasing order and keeps the best two with strict ``<``:
  on equal distances the earlier (lower) row stays ahead, which is exactly the CPU kernel's
  (distance, row) order. Results are therefore bit-identical to :mod:`mtbsync.gpu.cpu`.
* With ``ratio > 0`` the thread also writes Lowe's ratio test and the distance cap
  (``idx1 >= 0 and dist1 <= max_distance and (idx2 < 0 or dist1 < ratio * dist2)``, float64 as on the
  host), so :func:`mtbsync.gpu.match_descriptors` needs no second pass over the results.

Memory
------
On a real GPU the arrays are CuPy arrays from CuPy's memory pool. Inputs and outputs live in grow-only
buffers reused across calls; each call makes three uploads (queries, train rows, tasks) and one
download (the result rows stacked in one int32 array). Under numba's CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1``, used by the tests on machines without a GPU) the same code runs on NumPy
arrays.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import cuda, float64, int32, uint64

from mtbsync.gpu.backend import Knn2
from mtbsync.gpu.cpu import pair_tasks

BLOCK = 128  # threads (= queries) per block when the caller gives none and the sizes do not suggest better
_BLOCK_CHOICES = (256, 224, 192, 160, 128, 96, 64)  # whole warps; largest first wins ties
_TILE_BYTES = 8192  # shared memory per block for train rows: 256 ORB descriptors
_MAX_TILE = 256

_kernels: dict[tuple[int, int, int], Callable[..., Any]] = {}
_kernels_lock = threading.Lock()


def simulator_enabled() -> bool:
    """Whether numba runs CUDA kernels in its Python simulator (``NUMBA_ENABLE_CUDASIM=1``)."""
    from numba import config

    return bool(getattr(config, "ENABLE_CUDASIM", False))


def tile_rows(words: int) -> int:
    """Train rows staged in shared memory per tile for descriptors of ``words`` uint64 words."""
    return max(1, min(_MAX_TILE, _TILE_BYTES // (8 * words)))


def choose_block(query_sizes: np.ndarray) -> int:
    """Threads per block that waste the fewest idle threads on these query block sizes.

    A task covers at most one block's worth of queries of one pair, so a pair of 800 queries in blocks
    of 128 leaves 96 of the 7th block's threads idle (11%); blocks of 160 fit it exactly.

    Args:
        query_sizes: Queries per pair.

    Returns:
        A multiple of 32 from 64 to 256.
    """
    sizes = np.asarray(query_sizes, np.int64)
    sizes = sizes[sizes > 0]
    if sizes.size == 0:
        return BLOCK
    costs = [int((-(-sizes // b) * b).sum()) for b in _BLOCK_CHOICES]
    return _BLOCK_CHOICES[int(np.argmin(costs))]


def _make_kernel(words: int, block: int, tile: int) -> Callable[..., Any]:
    """Compile-time specialisation: ``words``, ``block`` and ``tile`` are constants inside the kernel."""

    @cuda.jit
    def knn2_tasks(query, train, tasks, none_dist, ratio, max_distance, out):  # pragma: no cover - device
        tile_rows_sh = cuda.shared.array((tile, words), dtype=uint64)
        q = cuda.local.array(words, dtype=uint64)
        task = cuda.blockIdx.x
        q_lo = tasks[task, 0]
        q_hi = tasks[task, 1]
        t_lo = tasks[task, 2]
        t_hi = tasks[task, 3]
        tx = cuda.threadIdx.x
        i = q_lo + tx
        active = i < q_hi
        if active:
            for w in range(words):
                q[w] = query[i, w]
        best_d = int32(none_dist)
        best_i = int32(-1)
        next_d = int32(none_dist)
        next_i = int32(-1)
        for base in range(t_lo, t_hi, tile):
            n = min(tile, t_hi - base)
            # The whole block stages the tile: consecutive threads read consecutive words (coalesced).
            for k in range(tx, n * words, block):
                r = k // words
                tile_rows_sh[r, k - r * words] = train[base + r, k - r * words]
            cuda.syncthreads()
            if active:
                for r in range(n):
                    d = int32(0)
                    for w in range(words):
                        d += int32(cuda.popc(q[w] ^ tile_rows_sh[r, w]))
                    # Rows arrive in increasing order and comparisons are strict: ties keep the lower row.
                    if d < best_d:
                        next_d = best_d
                        next_i = best_i
                        best_d = d
                        best_i = int32(base + r - t_lo)
                    elif d < next_d:
                        next_d = d
                        next_i = int32(base + r - t_lo)
            cuda.syncthreads()  # the tile is overwritten by the next iteration
        if active:
            o = tasks[task, 4] + tx
            out[0, o] = best_i
            out[1, o] = best_d
            out[2, o] = next_i
            out[3, o] = next_d
            if ratio > 0:
                keep = best_i >= 0 and best_d <= max_distance
                keep = keep and (next_i < 0 or float64(best_d) < ratio * float64(next_d))
                out[4, o] = int32(1) if keep else int32(0)

    return knn2_tasks


def kernel(words: int, block: int = BLOCK, tile: int | None = None) -> Callable[..., Any]:
    """The kernel for descriptors of ``words`` uint64 words (built once per shape, compiled on first launch).

    Args:
        words: Descriptor width in bytes / 8.
        block: Threads per block, which is also the most queries per task.
        tile: Train rows per shared-memory tile (default: :func:`tile_rows`).

    Returns:
        The numba CUDA kernel, launched as ``kernel[tasks, block](query, train, tasks, none_dist,
        ratio, max_distance, out)``.
    """
    tile = tile or tile_rows(words)
    key = (words, block, tile)
    with _kernels_lock:
        if key not in _kernels:
            _kernels[key] = _make_kernel(words, block, tile)
        return _kernels[key]


class CudaMatcher:
    """Runs the kernel on one device with reused buffers; thread-safe (one launch at a time).

    Args:
        block: Threads per block (queries per task); default: chosen per call by :func:`choose_block`.
            Small values let the simulator cover many tasks and tiles.
        tile: Train rows per shared-memory tile (default: :func:`tile_rows`).

    Raises:
        ImportError: CuPy is missing and the simulator is off.
    """

    def __init__(self, *, block: int | None = None, tile: int | None = None) -> None:
        self.simulator = simulator_enabled()
        if self.simulator:
            self._xp: Any = np
        else:
            import cupy

            self._xp = cupy
            self.pool = cupy.get_default_memory_pool()  # buffers below come from it
        self.block = block
        self.tile = tile
        self._buffers: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _buffer(self, name: str, shape: tuple[int, ...], dtype: type) -> Any:
        """A device array of ``shape`` backed by a grow-only buffer reused across calls."""
        size = max(1, int(np.prod(shape)))
        buf = self._buffers.get(name)
        if buf is None or buf.dtype != dtype or buf.size < size:
            # Grow by 25% beyond the request so a slowly growing batch does not reallocate each time.
            buf = self._xp.empty(size + size // 4, dtype=dtype)
            self._buffers[name] = buf
        return buf[: int(np.prod(shape))].reshape(shape)

    def _upload(self, name: str, host: np.ndarray) -> Any:
        dev = self._buffer(name, host.shape, host.dtype.type)
        if self.simulator:
            dev[...] = host
        else:
            dev.set(host)
        return dev

    def _download(self, dev: Any) -> np.ndarray:
        return np.array(dev) if self.simulator else dev.get()

    def run(
        self,
        query: np.ndarray,
        train: np.ndarray,
        tasks: np.ndarray,
        n_out: int,
        *,
        block: int = BLOCK,
        ratio: float = 0.0,
        max_distance: int = 0,
    ) -> tuple[Knn2, np.ndarray | None]:
        """One launch over ``tasks`` (rows of at most ``block`` queries).

        Args:
            query: (Nq, width) C-contiguous uint8.
            train: (Nt, width) C-contiguous uint8 of the same width, a multiple of 8.
            tasks: (T, 5) int64 ``(query_lo, query_hi, train_lo, train_hi, out_lo)``.
            n_out: Output rows.
            block: Threads per block; no task may have more queries.
            ratio: Lowe's ratio for the fused test; 0 skips it.
            max_distance: Distance cap of the fused test.

        Returns:
            The :class:`Knn2` rows and, with ``ratio > 0``, the (n_out,) bool mask of matches kept.
        """
        if n_out == 0 or tasks.shape[0] == 0:
            empty = np.empty(0, np.int32)
            return Knn2(empty, empty.copy(), empty.copy(), empty.copy()), (
                np.zeros(0, bool) if ratio > 0 else None
            )
        with self._lock:
            staged = self.upload(query, train, tasks, n_out)
            out_dev = self.launch(staged, block=block, ratio=ratio, max_distance=max_distance)
            # One transfer back for all rows; the keep row only when the ratio test ran.
            out = self._download(out_dev if ratio > 0 else out_dev[:4])
        knn = Knn2(out[0], out[1], out[2], out[3])
        return knn, (out[4] != 0) if ratio > 0 else None

    def upload(self, query: np.ndarray, train: np.ndarray, tasks: np.ndarray, n_out: int) -> dict[str, Any]:
        """Copy one batch's inputs into the reused device buffers (three transfers).

        Callers other than :meth:`run` (the benchmark, timing the kernel alone) hold no lock: one thread.

        Returns:
            The device arrays and shapes :meth:`launch` needs.
        """
        words = query.shape[1] // 8
        return {
            "query": self._upload("query", query.view(np.uint64)),
            # An empty train set still needs a valid array to launch with; no thread reads it.
            "train": self._upload(
                "train", train.view(np.uint64) if train.size else np.zeros((1, words), "u8")
            ),
            "tasks": self._upload("tasks", np.ascontiguousarray(tasks, dtype=np.int64)),
            "out": self._buffer("out", (5, n_out), np.int32),
            "words": words,
            "n_tasks": int(tasks.shape[0]),
        }

    def launch(self, staged: dict[str, Any], *, block: int, ratio: float = 0.0, max_distance: int = 0) -> Any:
        """Launch the kernel on uploaded inputs (asynchronous on a GPU); returns the device output."""
        words = staged["words"]
        kernel(words, block, self.tile)[staged["n_tasks"], block](
            staged["query"],
            staged["train"],
            staged["tasks"],
            np.int32(64 * words + 1),  # "no neighbour": one more than the widest distance
            np.float64(ratio),
            np.int32(max_distance),
            staged["out"],
        )
        return staged["out"]

    def _single(self, query: np.ndarray, train: np.ndarray, ratio: float = 0.0, max_distance: int = 0):
        offsets_q = np.array([0, query.shape[0]], np.int64)
        offsets_t = np.array([0, train.shape[0]], np.int64)
        block = self.block or choose_block(offsets_q[1:])
        tasks, _ = pair_tasks(offsets_q, offsets_t, np.zeros((1, 2), np.int64), block)
        return self.run(
            query, train, tasks, query.shape[0], block=block, ratio=ratio, max_distance=max_distance
        )

    def knn2(self, query: np.ndarray, train: np.ndarray) -> Knn2:
        """Nearest and second-nearest train row of every query row (see :func:`mtbsync.gpu.cpu.knn2`)."""
        return self._single(query, train)[0]

    def match(
        self, query: np.ndarray, train: np.ndarray, ratio: float, max_distance: int
    ) -> tuple[Knn2, np.ndarray]:
        """:meth:`knn2` with the ratio test and distance cap decided in the kernel.

        Returns:
            The :class:`Knn2` rows and the (n,) bool mask of queries that keep their nearest row.
        """
        knn, keep = self._single(query, train, ratio, max_distance)
        assert keep is not None
        return knn, keep

    def nearest(self, descriptors: np.ndarray, vocabulary: np.ndarray) -> np.ndarray:
        """Nearest vocabulary row per descriptor (lowest index on ties); -1 if none."""
        return self._single(descriptors, vocabulary)[0].idx1

    def knn2_pairs(
        self,
        query_all: np.ndarray,
        query_offsets: np.ndarray,
        train_all: np.ndarray,
        train_offsets: np.ndarray,
        pairs: np.ndarray,
        threads: int | None = None,
    ) -> tuple[Knn2, np.ndarray]:
        """Every (query block, train block) pair in one launch (see :func:`mtbsync.gpu.cpu.knn2_pairs`).

        ``threads`` is accepted for the common backend signature and ignored.
        """
        block = self.block or choose_block(np.diff(query_offsets)[pairs[:, 0]])
        tasks, out_offsets = pair_tasks(query_offsets, train_offsets, pairs, block)
        knn, _ = self.run(query_all, train_all, tasks, int(out_offsets[-1]), block=block)
        return knn, out_offsets


def device_summary() -> str:
    """Name, compute capability, SMs and clock of the current CUDA device, for logs and benchmarks."""
    if simulator_enabled():
        return "numba CUDA simulator"
    dev = cuda.get_current_device()
    name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
    return (
        f"{name} (compute {dev.compute_capability[0]}.{dev.compute_capability[1]}, "
        f"{dev.MULTIPROCESSOR_COUNT} SMs, {dev.CLOCK_RATE / 1e6:.2f} GHz)"
    )


# 32-bit popcounts per clock per SM (CUDA C Programming Guide, "Arithmetic Instructions" throughput table).
_POPC_PER_CLOCK = {5: 32, 6: 16, 7: 16, 8: 16, 9: 16, 10: 16, 12: 16}


def popcount_peak(width: int = 32, clock_hz: float | None = None) -> dict[str, float]:
    """The current device's popcount-bound peak for Hamming distances (see :func:`peak_for`).

    Args:
        width: Descriptor width in bytes (ORB: 32).
        clock_hz: SM clock to assume (default: the device's reported maximum, ``CLOCK_RATE``).

    Returns:
        As :func:`peak_for`.
    """
    dev = cuda.get_current_device()
    if clock_hz is None:
        clock_hz = dev.CLOCK_RATE * 1e3  # CLOCK_RATE is in kHz
    return peak_for(dev.MULTIPROCESSOR_COUNT, clock_hz, dev.compute_capability, width)


def peak_for(
    sms: int, clock_hz: float, compute_capability: tuple[int, int], width: int = 32
) -> dict[str, float]:
    """Popcount-bound peak of a card: the ceiling the GPU target (>= 50%) is measured against.

    peak distances/s = SMs x clock (Hz) x 32-bit popcounts per clock per SM / (8 x width / 32). A 64-bit
    popcount issues as two 32-bit ones, so the word size does not change the bound. Example, H100 SXM
    (132 SMs, 1.98 GHz, compute 9.0, 16 popcounts per clock per SM), ORB: 132 x 1.98e9 x 16 / 8
    = 5.23e11 distances/s.

    Args:
        sms: Streaming multiprocessors.
        clock_hz: SM clock.
        compute_capability: (major, minor).
        width: Descriptor width in bytes (ORB: 32, i.e. 8 popcounts per distance).

    Returns:
        ``sms``, ``clock_hz``, ``popc_per_clock_per_sm``, ``popc_per_distance`` and ``peak_distances_per_s``.
    """
    major, minor = compute_capability
    per_clock = 32 if (major, minor) in ((6, 1), (6, 2)) else _POPC_PER_CLOCK.get(major, 16)
    per_distance = 8 * width / 32
    return {
        "sms": sms,
        "clock_hz": clock_hz,
        "popc_per_clock_per_sm": per_clock,
        "popc_per_distance": per_distance,
        "peak_distances_per_s": sms * clock_hz * per_clock / per_distance,
    }
