"""Brute-force Hamming 2-nearest-neighbour kernels for the CPU, in numba.

No distance matrix is ever stored: each query walks the train rows and keeps only its best two.

Memory layout (why it is fast)
------------------------------
* Descriptors are read as ``uint32`` words, padded with zero bytes to a multiple of 32 bytes (zeros XOR
  zeros add nothing to a distance). ORB's 32 bytes are exactly 8 words, no padding.
* Queries stay row-major, ``(n_query, words)``: one query's words are loaded once into registers.
* Train rows are transposed to word-major, ``(words, n_train)``: word ``w`` of consecutive train rows is
  contiguous, so the inner loop over train rows is a plain SIMD loop (XOR, popcount, add) with one train
  row per vector lane, no gathers and no data-dependent branches. On AVX-512 machines LLVM emits
  ``vpopcntd``; elsewhere a ``pshufb`` nibble table.
* The distances of a chunk of up to 4096 train rows go to a small int32 buffer (L1-resident) as keys
  ``distance << 16 | row_in_chunk``. Keys order like (distance, row), which is exactly the tie-break we
  promise (lowest train index first), so the nearest is a vector ``min`` over the chunk and the second
  a ``min`` over the other keys: two branch-free reductions instead of a branchy top-2 insertion per
  distance. Chunk winners are merged in train order. 15 bits of distance allow up to 4088-byte
  descriptors.

Batched layout (``knn2_pairs``)
-------------------------------
All query blocks are stacked in ``query_all`` with ``query_offsets`` (block ``b`` is rows
``query_offsets[b]:query_offsets[b + 1]``, as in a feature index); likewise the train blocks. ``pairs``
is ``(P, 2)`` of (query block, train block). Work is cut into tasks of at most 32 queries of one pair,
int64 rows ``(query_lo, query_hi, train_lo, train_hi, out_lo)``, so one ``prange`` spreads pairs ×
queries evenly over the threads. Results are concatenated by pair: pair ``p`` owns output rows
``out_offsets[p]:out_offsets[p + 1]`` and its indices are local to its train block.

Threads
-------
Single-pair calls below ~4 M distances run on the calling thread (``nogil``: a thread pool of callers
scales, and no parallel region is nested or contended); bigger ones and the batched call use numba's
thread pool. Parallel launches are serialised by a lock because numba's ``workqueue`` layer must not
be entered from two threads at once.

Compilation: the first call in a fresh environment compiles the kernels (several seconds);
``cache=True`` keeps the machine code in ``__pycache__`` so later processes load it quickly.
:func:`warm_up` triggers both on purpose.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from mtbsync.gpu.backend import MAX_WIDTH, Knn2

# Keys are ``distance << 16 | row``: the widest descriptor's distance must stay below 2**15.
assert 8 * MAX_WIDTH < 1 << 15
_GROUP_WORDS = 8  # uint32 words handled per pass over a train chunk (32 bytes: one ORB descriptor)
_GROUP_BYTES = 4 * _GROUP_WORDS
_TRAIN_CHUNK = 4096  # train rows per key buffer: the row fits the key's low 16 bits; 16 KiB stays in L1
_QUERY_TASK = 32  # queries per parallel task: amortises scheduling, still balances 2-16 threads
_TASKS_PER_GRAB = 4  # tasks a pool thread takes at a time (dynamic schedule)
_PARALLEL_MIN_WORK = 1 << 22  # distances below which a single pair runs on the calling thread
_ROW_MASK = 0xFFFF
_KEY_NONE = 0x7FFFFFFF  # above every real key: "no row"

_parallel_lock = threading.Lock()


@intrinsic
def _popcount(typingctx: object, x: types.Type) -> tuple[object, Callable] | None:
    """LLVM ``ctpop``: numba has no popcount of its own; this becomes ``popcnt`` or a SIMD popcount."""
    if not isinstance(x, types.Integer):
        return None

    def codegen(context: object, builder: ir.IRBuilder, signature: object, args: list[ir.Value]) -> ir.Value:
        return builder.ctpop(args[0])

    return x(x), codegen


@njit(inline="always")
def _distance(q: tuple, t: tuple, j: int) -> int:
    """Bits differing between 8 query words ``q`` and word ``j`` of the 8 train word rows ``t``."""
    # Two sums of four shorten the dependency chain the vectoriser has to schedule.
    return (
        _popcount(q[0] ^ t[0][j])
        + _popcount(q[1] ^ t[1][j])
        + _popcount(q[2] ^ t[2][j])
        + _popcount(q[3] ^ t[3][j])
    ) + (
        _popcount(q[4] ^ t[4][j])
        + _popcount(q[5] ^ t[5][j])
        + _popcount(q[6] ^ t[6][j])
        + _popcount(q[7] ^ t[7][j])
    )


@njit(cache=True, nogil=True, fastmath=False)
def _group_keys(
    qrow: np.ndarray, train_t: np.ndarray, w: int, lo: int, m: int, buf: np.ndarray, first: bool, last: bool
) -> int:
    """Add the distances over words ``w:w+8`` from ``qrow`` to train rows ``lo:lo+m`` into ``buf[:m]``.

    ``first`` stores instead of adding; ``last`` turns the totals into keys and returns their minimum
    (otherwise the return value is meaningless).
    """
    q = (qrow[w], qrow[w + 1], qrow[w + 2], qrow[w + 3], qrow[w + 4], qrow[w + 5], qrow[w + 6], qrow[w + 7])
    # 1-D slices keep 2-D index arithmetic out of the inner loop (LLVM would turn it into gathers).
    hi = lo + m
    t = (
        train_t[w, lo:hi],
        train_t[w + 1, lo:hi],
        train_t[w + 2, lo:hi],
        train_t[w + 3, lo:hi],
        train_t[w + 4, lo:hi],
        train_t[w + 5, lo:hi],
        train_t[w + 6, lo:hi],
        train_t[w + 7, lo:hi],
    )
    smallest = np.int32(_KEY_NONE)
    # One loop per case, so that every inner loop is branch-free and vectorises.
    if first and last:
        for j in range(m):
            key = np.int32((np.int32(_distance(q, t, j)) << 16) | j)
            buf[j] = key
            smallest = min(smallest, key)
    elif first:
        for j in range(m):
            buf[j] = np.int32(_distance(q, t, j))
    elif last:
        for j in range(m):
            key = np.int32(((buf[j] + np.int32(_distance(q, t, j))) << 16) | j)
            buf[j] = key
            smallest = min(smallest, key)
    else:
        for j in range(m):
            buf[j] = np.int32(buf[j] + np.int32(_distance(q, t, j)))
    return smallest


@njit(cache=True, nogil=True, fastmath=False)
def _smallest_other(buf: np.ndarray, m: int, key: int) -> int:
    """Smallest key in ``buf[:m]`` other than ``key`` (keys are unique: they contain the row)."""
    smallest = np.int32(_KEY_NONE)
    for j in range(m):
        k = buf[j]
        smallest = min(smallest, np.int32(_KEY_NONE) if k == key else k)
    return smallest


@njit(cache=True, nogil=True, fastmath=False)
def _run_task(
    query: np.ndarray,
    train_t: np.ndarray,
    task: np.ndarray,
    second: bool,
    none_dist: int,
    buf: np.ndarray,
    idx1: np.ndarray,
    dist1: np.ndarray,
    idx2: np.ndarray,
    dist2: np.ndarray,
) -> None:
    """Nearest (and second) train row of queries ``task[0]:task[1]`` among train rows ``task[2]:task[3]``."""
    q_lo, q_hi, t_lo, t_hi, out = task[0], task[1], task[2], task[3], task[4]
    groups = query.shape[1] // _GROUP_WORDS
    for i in range(q_lo, q_hi):
        qrow = query[i]
        best_d, best_i, next_d, next_i = none_dist, -1, none_dist, -1
        for lo in range(t_lo, t_hi, _TRAIN_CHUNK):
            m = min(_TRAIN_CHUNK, t_hi - lo)
            k1 = np.int32(_KEY_NONE)
            for g in range(groups):
                k1 = _group_keys(qrow, train_t, g * _GROUP_WORDS, lo, m, buf, g == 0, g == groups - 1)
            k2 = _smallest_other(buf, m, k1) if second else np.int32(_KEY_NONE)
            # Merge the chunk's best two into the running best two. Chunks come in train order and the
            # comparisons are strict, so on equal distances the earlier (lower) train row stays ahead.
            for key in (k1, k2):
                if key == _KEY_NONE:
                    continue
                d = key >> 16
                j = lo - t_lo + (key & _ROW_MASK)
                if d < best_d:
                    next_d, next_i = best_d, best_i
                    best_d, best_i = d, j
                elif d < next_d:
                    next_d, next_i = d, j
        r = out + i - q_lo
        idx1[r] = best_i
        dist1[r] = best_d
        if second:
            idx2[r] = next_i
            dist2[r] = next_d


@njit(cache=True, nogil=True, fastmath=False)
def _knn2_serial(
    query: np.ndarray,
    train_t: np.ndarray,
    tasks: np.ndarray,
    second: bool,
    none_dist: int,
    idx1: np.ndarray,
    dist1: np.ndarray,
    idx2: np.ndarray,
    dist2: np.ndarray,
) -> None:
    buf = np.empty(_TRAIN_CHUNK, np.int32)
    for t in range(tasks.shape[0]):
        _run_task(query, train_t, tasks[t], second, none_dist, buf, idx1, dist1, idx2, dist2)


@njit(parallel=True, cache=True, nogil=True, fastmath=False)
def _knn2_parallel(
    query: np.ndarray,
    train_t: np.ndarray,
    tasks: np.ndarray,
    second: bool,
    none_dist: int,
    idx1: np.ndarray,
    dist1: np.ndarray,
    idx2: np.ndarray,
    dist2: np.ndarray,
) -> None:
    for t in prange(tasks.shape[0]):
        # A buffer per task (16 KiB, ~0.1 us) is noise next to a task's work, and unlike a per-thread
        # buffer indexed by numba.get_thread_id() it leaves the function cacheable.
        buf = np.empty(_TRAIN_CHUNK, np.int32)
        _run_task(query, train_t, tasks[t], second, none_dist, buf, idx1, dist1, idx2, dist2)


def _words(descriptors: np.ndarray) -> np.ndarray:
    """``(n, width)`` uint8 -> ``(n, words)`` uint32, zero-padded to whole 32-byte groups."""
    pad = -descriptors.shape[1] % _GROUP_BYTES
    if pad:
        descriptors = np.pad(descriptors, ((0, 0), (0, pad)))
    words = np.ascontiguousarray(descriptors).view(np.uint32)
    # An unaligned view (a buffer at an odd offset) would make numba compile a second kernel variant.
    return words if words.flags.aligned else words.copy()


def _words_transposed(descriptors: np.ndarray) -> np.ndarray:
    """``(n, width)`` uint8 -> word-major ``(words, n)`` uint32 (see the module docstring)."""
    return np.ascontiguousarray(_words(descriptors).T)


def _single_tasks(n_query: int, n_train: int) -> np.ndarray:
    lo = np.arange(0, n_query, _QUERY_TASK, dtype=np.int64)
    tasks = np.empty((lo.shape[0], 5), np.int64)
    tasks[:, 0] = lo
    tasks[:, 1] = np.minimum(lo + _QUERY_TASK, n_query)
    tasks[:, 2] = 0
    tasks[:, 3] = n_train
    tasks[:, 4] = lo
    return tasks


@contextmanager
def _threads(threads: int | None) -> Iterator[None]:
    """Run the enclosed parallel launch on at most ``threads`` threads (numba's setting is per caller)."""
    if threads is None:
        yield
        return
    before = numba.get_num_threads()
    numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(before)


@contextmanager
def _dynamic_schedule() -> Iterator[None]:
    """Hand out tasks a few at a time instead of in one static slice per thread.

    Pairs differ in size and the cores are shared with decoding, so a static split leaves threads idle.
    """
    before = numba.set_parallel_chunksize(_TASKS_PER_GRAB)
    try:
        yield
    finally:
        numba.set_parallel_chunksize(before)


def _launch(
    query: np.ndarray,
    train_t: np.ndarray,
    tasks: np.ndarray,
    n_out: int,
    *,
    second: bool,
    bits: int,
    parallel: bool,
    threads: int | None = None,
) -> Knn2:
    idx1 = np.empty(n_out, np.int32)
    dist1 = np.empty(n_out, np.int32)
    idx2 = np.empty(n_out if second else 0, np.int32)
    dist2 = np.empty(n_out if second else 0, np.int32)
    args = (query, train_t, tasks, second, np.int32(bits + 1), idx1, dist1, idx2, dist2)
    if parallel and tasks.shape[0] > 1:
        with _parallel_lock, _threads(threads), _dynamic_schedule():
            _knn2_parallel(*args)
    else:
        _knn2_serial(*args)
    return Knn2(idx1, dist1, idx2, dist2)


def knn2(query: np.ndarray, train: np.ndarray, *, parallel: bool | None = None) -> Knn2:
    """Nearest and second-nearest train row of every query row, by Hamming distance.

    Args:
        query: (n, width) C-contiguous uint8, width a multiple of 8 (validated by the caller).
        train: (m, width) C-contiguous uint8.
        parallel: Use the thread pool; ``None`` decides by the amount of work.

    Returns:
        One :class:`Knn2` row per query; see :class:`Knn2` for ties and missing neighbours.
    """
    n_query, n_train = query.shape[0], train.shape[0]
    if parallel is None:
        parallel = n_query * n_train >= _PARALLEL_MIN_WORK
    tasks = _single_tasks(n_query, n_train)
    return _launch(
        _words(query),
        _words_transposed(train),
        tasks,
        n_query,
        second=True,
        bits=8 * query.shape[1],
        parallel=parallel,
    )


def nearest(descriptors: np.ndarray, vocabulary: np.ndarray, *, parallel: bool | None = None) -> np.ndarray:
    """Index of the nearest vocabulary row per descriptor (lowest index on ties); -1 if none.

    Skips the second-nearest pass of :func:`knn2`.

    Args:
        descriptors: (n, width) C-contiguous uint8, width a multiple of 8.
        vocabulary: (k, width) C-contiguous uint8.
        parallel: Use the thread pool; ``None`` decides by the amount of work.

    Returns:
        (n,) int32.
    """
    n, k = descriptors.shape[0], vocabulary.shape[0]
    if parallel is None:
        parallel = n * k >= _PARALLEL_MIN_WORK
    tasks = _single_tasks(n, k)
    bits = 8 * descriptors.shape[1]
    return _launch(
        _words(descriptors),
        _words_transposed(vocabulary),
        tasks,
        n,
        second=False,
        bits=bits,
        parallel=parallel,
    ).idx1


def pair_tasks(
    query_offsets: np.ndarray, train_offsets: np.ndarray, pairs: np.ndarray, task_size: int = _QUERY_TASK
) -> tuple[np.ndarray, np.ndarray]:
    """Cut (query block, train block) pairs into tasks of at most ``task_size`` queries.

    Args:
        query_offsets: (Bq + 1,) int64 block starts in the stacked queries.
        train_offsets: (Bt + 1,) int64 block starts in the stacked train rows.
        pairs: (P, 2) int64 (query block, train block), indices already checked.
        task_size: Most queries per task (32 here; the GPU kernel uses one thread block's worth).

    Returns:
        ``tasks`` (T, 5) int64 rows ``(query_lo, query_hi, train_lo, train_hi, out_lo)`` and
        ``out_offsets`` (P + 1,) int64: pair ``p``'s results are output rows
        ``out_offsets[p]:out_offsets[p + 1]``.
    """
    qb, tb = pairs[:, 0], pairs[:, 1]
    q_start, q_stop = query_offsets[qb], query_offsets[qb + 1]
    sizes = q_stop - q_start
    out_offsets = np.zeros(pairs.shape[0] + 1, np.int64)
    np.cumsum(sizes, out=out_offsets[1:])
    per_pair = -(-sizes // task_size)
    pair_of = np.repeat(np.arange(pairs.shape[0]), per_pair)
    first_task = np.cumsum(per_pair) - per_pair
    within = (np.arange(pair_of.shape[0]) - first_task[pair_of]) * task_size
    tasks = np.empty((pair_of.shape[0], 5), np.int64)
    tasks[:, 0] = q_start[pair_of] + within
    tasks[:, 1] = np.minimum(tasks[:, 0] + task_size, q_stop[pair_of])
    tasks[:, 2] = train_offsets[tb][pair_of]
    tasks[:, 3] = train_offsets[tb + 1][pair_of]
    tasks[:, 4] = out_offsets[pair_of] + within
    return tasks, out_offsets


def knn2_pairs(
    query_all: np.ndarray,
    query_offsets: np.ndarray,
    train_all: np.ndarray,
    train_offsets: np.ndarray,
    pairs: np.ndarray,
    threads: int | None = None,
) -> tuple[Knn2, np.ndarray]:
    """:func:`knn2` for many (query block, train block) pairs in one parallel call.

    Args:
        query_all: (Nq, width) C-contiguous uint8, all query blocks stacked.
        query_offsets: (Bq + 1,) int64, non-decreasing, from 0 to Nq.
        train_all: (Nt, width) C-contiguous uint8, all train blocks stacked.
        train_offsets: (Bt + 1,) int64, non-decreasing, from 0 to Nt.
        pairs: (P, 2) int64 (query block, train block), indices in range.
        threads: Threads to use (default: numba's setting, all cores).

    Returns:
        The per-pair results concatenated in one :class:`Knn2` (train indices local to each pair's
        train block), and ``out_offsets`` (P + 1,) int64 locating each pair's rows in it.
    """
    tasks, out_offsets = pair_tasks(query_offsets, train_offsets, pairs)
    result = _launch(
        _words(query_all),
        _words_transposed(train_all),
        tasks,
        int(out_offsets[-1]),
        second=True,
        bits=8 * query_all.shape[1],
        parallel=True,
        threads=threads,
    )
    return result, out_offsets


def warm_up() -> None:
    """Compile (or load from the cache) every kernel variant, so the first real call is not slow."""
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (40, 32), dtype=np.uint8)
    b = rng.integers(0, 256, (40, 64), dtype=np.uint8)
    for x in (a, b):
        knn2(x, x, parallel=False)
        knn2(x, x, parallel=True)
        nearest(x, x, parallel=False)
        nearest(x, x, parallel=True)
