"""The NumPy oracle for the Hamming kernels: obviously correct, memory-hungry, for tests and benchmarks only.

It builds the full distance matrix (a block of queries at a time) with ``np.bitwise_count`` and picks the
two smallest with ``argmin``, whose first-occurrence rule gives the promised tie-break (lowest train index).
"""

from __future__ import annotations

import numpy as np

from mtbsync.gpu.backend import Knn2

_BLOCK_BYTES = 64 << 20  # the XOR temporary of one query block stays under 64 MiB


def distance_matrix(query: np.ndarray, train: np.ndarray) -> np.ndarray:
    """All Hamming distances.

    Args:
        query: (n, width) uint8, width a multiple of 8.
        train: (m, width) uint8.

    Returns:
        (n, m) int32.
    """
    q = np.ascontiguousarray(query).view(np.uint64)
    t = np.ascontiguousarray(train).view(np.uint64)
    out = np.empty((q.shape[0], t.shape[0]), np.int32)
    block = max(1, _BLOCK_BYTES // max(1, t.nbytes))
    for lo in range(0, q.shape[0], block):
        xor = q[lo : lo + block, None, :] ^ t[None, :, :]
        out[lo : lo + block] = np.bitwise_count(xor).sum(axis=2, dtype=np.int32)
    return out


def knn2_numpy(query: np.ndarray, train: np.ndarray) -> Knn2:
    """Nearest and second-nearest train row of each query row, from the full distance matrix.

    Args:
        query: (n, width) uint8, width a multiple of 8.
        train: (m, width) uint8 of the same width.

    Returns:
        A :class:`Knn2`; missing neighbours (m < 2) have index -1 and distance ``8 * width + 1``.
    """
    n, m = query.shape[0], train.shape[0]
    none_dist = 8 * query.shape[1] + 1
    idx1 = np.full(n, -1, np.int32)
    dist1 = np.full(n, none_dist, np.int32)
    idx2 = np.full(n, -1, np.int32)
    dist2 = np.full(n, none_dist, np.int32)
    if n == 0 or m == 0:
        return Knn2(idx1, dist1, idx2, dist2)
    distances = distance_matrix(query, train)
    rows = np.arange(n)
    idx1[:] = np.argmin(distances, axis=1)
    dist1[:] = distances[rows, idx1]
    if m >= 2:
        distances[rows, idx1] = np.iinfo(np.int32).max  # exclude the nearest, then take the next
        idx2[:] = np.argmin(distances, axis=1)
        dist2[:] = distances[rows, idx2]
    return Knn2(idx1, dist1, idx2, dist2)
