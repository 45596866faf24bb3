"""Which keyframe pairs to examine, and how their evidence scores on the monotone path.

Cheap evidence first (appearance retrieval, then ratio-test match counts), costly evidence (RANSAC)
only on a band around the path the cheap evidence suggests.
"""

from __future__ import annotations

import numpy as np

from mtbsync.align.path import KeyframePath
from mtbsync.match.retrieval import top_candidates


def verification_score(inliers: np.ndarray, min_inliers: int) -> np.ndarray:
    """Path score of a verified pair: zero at the verification threshold, growing with the log of the
    inliers, so a better-supported pair always wins (no saturation), and -1 at worst."""
    return np.maximum(np.log(np.maximum(inliers, 1.0) / float(min_inliers)), -1.0)


def count_score(counts: np.ndarray) -> np.ndarray:
    """Path score from ratio-test match counts: how far a pair stands out from the typical candidate of
    its row (most candidates are wrong), in log units; -1 where not computed."""
    known = np.isfinite(counts)
    typical = np.full((counts.shape[0], 1), 10.0)
    rows = known.any(axis=1)
    typical[rows, 0] = np.nanmedian(counts[rows], axis=1)
    score = np.log((counts + 1.0) / (np.maximum(typical, 10.0) + 1.0)) - np.log(1.5)
    return np.where(known, np.maximum(score, -1.0), -1.0)


def band_pairs(path: KeyframePath, n_ref: int, width: int) -> np.ndarray:
    """(new keyframe, reference keyframe) pairs within ``width`` reference keyframes of ``path``."""
    if len(path) == 0:
        return np.zeros((0, 2), np.int64)
    rows = [
        (i, j + d)
        for i, j in zip(path.new_idx, path.ref_idx, strict=True)
        for d in range(-width, width + 1)
        if 0 <= j + d < n_ref
    ]
    return np.unique(np.array(rows, np.int64), axis=0)


def candidate_pairs(similarity: np.ndarray, coarse: KeyframePath, *, k: int, around: int) -> np.ndarray:
    """Reference keyframes worth verifying for each new keyframe: the best-looking ones and the
    neighbourhood of the coarse appearance path."""
    n_new, n_ref = similarity.shape
    if n_new == 0 or n_ref == 0:
        return np.zeros((0, 2), np.int64)
    chosen = np.zeros((n_new, n_ref), bool)
    top = top_candidates(similarity, k)
    rows = np.repeat(np.arange(n_new), top.shape[1])
    chosen[rows, top.ravel()] = True
    for offset in range(-around, around + 1):
        j = coarse.ref_idx + offset
        valid = (j >= 0) & (j < n_ref)
        chosen[coarse.new_idx[valid], j[valid]] = True
    # The neighbours of every top candidate too: the true place is often next to the best look-alike.
    for offset in (-1, 1):
        j = top.ravel() + offset
        valid = (j >= 0) & (j < n_ref)
        chosen[rows[valid], j[valid]] = True
    return np.argwhere(chosen)
