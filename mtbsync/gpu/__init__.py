"""Hamming matching of binary (ORB) descriptors behind one dispatch point.

Every function takes ``device`` (``auto`` | ``cpu`` | ``gpu``; ``auto`` defers to ``MTBSYNC_DEVICE``), asks
:mod:`mtbsync.gpu.backend` which backend runs it (decided once per process), and returns host NumPy
arrays that are identical whichever backend ran. Record :func:`backend_name` with results.

Descriptors are ``uint8`` arrays of shape ``(n, width)`` with ``width`` a multiple of 8 bytes (ORB: 32);
they are made C-contiguous here, so the kernels never see strided input.

Neighbours are by brute force. Ties go to the lowest train index, for the nearest and for the second
nearest (which is always another row than the nearest). A neighbour that does not exist (train has fewer
than two rows) has index -1 and distance ``8 * width + 1`` (257 for ORB).

The CPU kernel compiles on first use in a fresh environment (several seconds, then cached on disk);
call :func:`mtbsync.gpu.cpu.warm_up` at start-up to pay that before timing anything.

The GPU backend (:mod:`mtbsync.gpu.cuda`, ``pip install 'mtbsync[gpu]'``) runs one numba-cuda launch per
call, batched pairs included, with Lowe's ratio test fused into the kernel for :func:`match_descriptors`;
it gives the same results as the CPU kernel bit for bit, and any failure reruns the call on the CPU.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np

from mtbsync.errors import ConfigError
from mtbsync.gpu.backend import MAX_WIDTH, Knn2, backend_name, run_kernel

__all__ = [
    "Knn2",
    "backend_name",
    "hamming_knn2",
    "hamming_knn2_pairs",
    "match_descriptors",
    "nearest_word",
    "set_threads",
]


def _descriptors(name: str, array: np.ndarray) -> np.ndarray:
    """Check one descriptor array and return it C-contiguous."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ConfigError(f"{name} descriptors must be uint8 (packed bits, as ORB gives), not {array.dtype}")
    if array.ndim != 2:
        raise ConfigError(f"{name} descriptors must be a 2-D (rows, bytes) array, not shape {array.shape}")
    width = array.shape[1]
    if width == 0 or width % 8 or width > MAX_WIDTH:
        raise ConfigError(
            f"{name} descriptors must be a multiple of 8 bytes wide (ORB: 32) "
            f"and at most {MAX_WIDTH}; got {width}"
        )
    return np.ascontiguousarray(array)


def _descriptor_pair(query: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    query, train = _descriptors("query", query), _descriptors("train", train)
    if query.shape[1] != train.shape[1]:
        raise ConfigError(
            f"query and train descriptors differ in width ({query.shape[1]} vs {train.shape[1]} bytes)"
        )
    return query, train


def _offsets(name: str, offsets: np.ndarray, rows: int) -> np.ndarray:
    """Check block offsets ``(B + 1,)``: integers from 0 to ``rows``, never decreasing."""
    offsets = np.asarray(offsets)
    if offsets.ndim != 1 or offsets.shape[0] < 1 or not np.issubdtype(offsets.dtype, np.integer):
        raise ConfigError(f"{name} must be a 1-D integer array of block starts plus the end, not {offsets!r}")
    offsets = offsets.astype(np.int64)
    if offsets[0] != 0 or offsets[-1] != rows or np.any(np.diff(offsets) < 0):
        raise ConfigError(f"{name} must rise from 0 to the number of rows ({rows}) without decreasing")
    return offsets


def hamming_knn2(query: np.ndarray, train: np.ndarray, *, device: str = "auto") -> Knn2:
    """Nearest and second-nearest train descriptor of every query descriptor.

    Args:
        query: (n, width) uint8 descriptors.
        train: (m, width) uint8 descriptors of the same width.
        device: ``auto``, ``cpu`` or ``gpu``.

    Returns:
        A :class:`Knn2` with one int32 row per query (ties and missing neighbours: see the module doc).

    Raises:
        ConfigError: Bad descriptor arrays or device name.
        DeviceError: ``gpu`` was requested and cannot run here.
    """
    query, train = _descriptor_pair(query, train)
    return run_kernel(device, "knn2", query, train)


def hamming_knn2_pairs(
    query_all: np.ndarray,
    query_offsets: np.ndarray,
    train_all: np.ndarray,
    train_offsets: np.ndarray,
    pairs: np.ndarray,
    *,
    device: str = "auto",
    threads: int | None = None,
) -> list[Knn2]:
    """:func:`hamming_knn2` for many (query block, train block) pairs in one parallel call.

    Blocks are stacked as in a feature index: block ``b`` of ``query_all`` is rows
    ``query_offsets[b]:query_offsets[b + 1]``; likewise for train. Aligning hundreds of keyframe pairs
    this way is one call that keeps every core busy, instead of hundreds of small calls.

    Args:
        query_all: (Nq, width) uint8, all query blocks stacked.
        query_offsets: (Bq + 1,) integer block starts followed by Nq.
        train_all: (Nt, width) uint8, all train blocks stacked.
        train_offsets: (Bt + 1,) integer block starts followed by Nt.
        pairs: (P, 2) integer (query block, train block) rows.
        device: ``auto``, ``cpu`` or ``gpu``.
        threads: Most threads to use (default: all cores).

    Returns:
        One :class:`Knn2` per pair, in the order of ``pairs``, with indices local to the pair's train
        block, exactly as ``hamming_knn2(query block, train block)`` would return them. They are views
        into one flat result, so building the list costs no copies.

    Raises:
        ConfigError: Bad descriptors, offsets or pairs, or device name.
        DeviceError: ``gpu`` was requested and cannot run here.
    """
    query_all, train_all = _descriptor_pair(query_all, train_all)
    query_offsets = _offsets("query_offsets", query_offsets, query_all.shape[0])
    train_offsets = _offsets("train_offsets", train_offsets, train_all.shape[0])
    pairs = np.asarray(pairs)
    if pairs.size == 0:
        pairs = pairs.reshape(0, 2)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or not np.issubdtype(pairs.dtype, np.integer):
        raise ConfigError(
            f"pairs must be a (P, 2) integer array of (query block, train block), not {pairs.shape}"
        )
    pairs = np.ascontiguousarray(pairs, dtype=np.int64)
    n_query_blocks, n_train_blocks = query_offsets.shape[0] - 1, train_offsets.shape[0] - 1
    if pairs.shape[0] and (
        pairs.min(axis=0).min() < 0
        or pairs[:, 0].max() >= n_query_blocks
        or pairs[:, 1].max() >= n_train_blocks
    ):
        raise ConfigError(
            f"pairs name blocks out of range ({n_query_blocks} query blocks, {n_train_blocks} train blocks)"
        )
    flat, out_offsets = run_kernel(
        device, "knn2_pairs", query_all, query_offsets, train_all, train_offsets, pairs, threads
    )
    return [
        Knn2(flat.idx1[lo:hi], flat.dist1[lo:hi], flat.idx2[lo:hi], flat.dist2[lo:hi])
        for lo, hi in pairwise(out_offsets.tolist())
    ]


def match_descriptors(
    query: np.ndarray,
    train: np.ndarray,
    *,
    ratio: float = 0.8,
    max_distance: int = 80,
    cross_check: bool = False,
    device: str = "auto",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Match query to train descriptors with Lowe's ratio test, a distance cap and optional cross-check.

    A query keeps its nearest train descriptor when ``dist1 < ratio * dist2`` (strict, in float64; passes
    when there is no second neighbour) and ``dist1 <= max_distance``. With ``cross_check`` the query must
    also be the nearest query of that train descriptor (mutual nearest neighbours; ties to the lowest
    index both ways), which costs a second, nearest-only pass from train to query.

    Args:
        query: (n, width) uint8 descriptors.
        train: (m, width) uint8 descriptors of the same width.
        ratio: Lowe's ratio, in (0, 1]; smaller is stricter.
        max_distance: Largest Hamming distance accepted for a match, >= 0.
        cross_check: Keep only mutual nearest neighbours.
        device: ``auto``, ``cpu`` or ``gpu``.

    Returns:
        ``(query_idx, train_idx, distance)``, three int32 arrays of equal length, by increasing query index.

    Raises:
        ConfigError: Bad descriptors, ratio, max_distance or device name.
        DeviceError: ``gpu`` was requested and cannot run here.
    """
    if not 0.0 < ratio <= 1.0:
        raise ConfigError(f"ratio must be in (0, 1], not {ratio}")
    if max_distance < 0:
        raise ConfigError(f"max_distance must be >= 0, not {max_distance}")
    query, train = _descriptor_pair(query, train)
    knn, keep = run_kernel(device, "match", query, train, float(ratio), int(max_distance))
    query_idx = np.flatnonzero(keep).astype(np.int32)
    train_idx = knn.idx1[query_idx]
    if cross_check and query_idx.shape[0]:
        back = run_kernel(device, "nearest", train, query)
        mutual = back[train_idx] == query_idx
        query_idx, train_idx = query_idx[mutual], train_idx[mutual]
    return query_idx, train_idx, knn.dist1[query_idx]


def nearest_word(descriptors: np.ndarray, vocabulary: np.ndarray, *, device: str = "auto") -> np.ndarray:
    """Nearest vocabulary row (visual word) of every descriptor, for bag-of-words vectors.

    Runs a nearest-only pass, cheaper than :func:`hamming_knn2`; ties go to the lowest word index.

    Args:
        descriptors: (n, width) uint8 descriptors.
        vocabulary: (k, width) uint8 words of the same width, k >= 1 unless n == 0.
        device: ``auto``, ``cpu`` or ``gpu``.

    Returns:
        (n,) int32 word index per descriptor.

    Raises:
        ConfigError: Bad arrays, an empty vocabulary, or a bad device name.
        DeviceError: ``gpu`` was requested and cannot run here.
    """
    descriptors, vocabulary = _descriptor_pair(descriptors, vocabulary)
    if vocabulary.shape[0] == 0 and descriptors.shape[0]:
        raise ConfigError("the vocabulary is empty: there is no nearest word")
    return run_kernel(device, "nearest", descriptors, vocabulary)


def set_threads(threads: int) -> None:
    """Use at most ``threads`` threads for the CPU kernels (launches from the calling thread)."""
    import numba

    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
