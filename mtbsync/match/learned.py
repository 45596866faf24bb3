"""Matching and verification of learned (XFeat) features between keyframes.

Learned descriptors are unit-length float vectors: two keypoints match when each is the other's
nearest neighbour by cosine similarity and the similarity is high enough (mutual nearest
neighbours, as XFeat's reference matcher). A changed mount sees the same trail from another height
and pitch: the scene is not a plane, so a homography fits only part of it. The geometric check is a
fundamental matrix estimated with MAGSAC++ (OpenCV's USAC), which holds for any rigid 3-D scene
seen from two viewpoints; action-camera barrel distortion is absorbed by a looser threshold, not
corrected. The zoom between the views is read from the inliers as for ORB (`log_zoom_between`).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from mtbsync.config import MatchConfig
from mtbsync.match.verify import PairGeometry, image_centre, log_zoom_between, map_pairs

# Cosine similarity a mutual nearest neighbour needs to count as a match (XFeat's own default).
MIN_COSINE = 0.82
# Keypoints per keyframe used for the all-pairs first look (the strongest by score come first).
COARSE_KEYPOINTS = 192
_MIN_MATCHES_FOR_GEOMETRY = 12
_COARSE_TRAIN_CHUNK = 64
_MAGSAC_ITERATIONS = 400


def mutual_matches(
    query_desc: np.ndarray, train_desc: np.ndarray, *, min_cosine: float = MIN_COSINE
) -> tuple[np.ndarray, np.ndarray]:
    """Mutual nearest neighbours (by cosine) above ``min_cosine``: (query indices, train indices)."""
    if len(query_desc) == 0 or len(train_desc) == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty
    sim = query_desc @ train_desc.T
    best_t = sim.argmax(axis=1)
    best_q = sim.argmax(axis=0)
    qi = np.arange(len(query_desc))
    keep = (best_q[best_t] == qi) & (sim[qi, best_t] >= min_cosine)
    return qi[keep], best_t[keep]


def geometry_of_matches(
    query_xy: np.ndarray, train_xy: np.ndarray, reproj_px: float, seed: int = 0
) -> tuple[int, float]:
    """Fundamental-matrix (MAGSAC++) inliers among matched points, and the zoom between the views."""
    inliers, zoom, _ = _fundamental(query_xy, train_xy, reproj_px, seed)
    return inliers, zoom


def _fundamental(
    query_xy: np.ndarray, train_xy: np.ndarray, reproj_px: float, seed: int
) -> tuple[int, float, np.ndarray | None]:
    if len(query_xy) < _MIN_MATCHES_FOR_GEOMETRY:
        return 0, math.nan, None
    cv2.setRNGSeed(seed)
    try:
        fundamental, mask = cv2.findFundamentalMat(
            query_xy.astype(np.float32),
            train_xy.astype(np.float32),
            cv2.USAC_MAGSAC,
            reproj_px,
            0.999,
            _MAGSAC_ITERATIONS,
        )
    except cv2.error:  # degenerate matches (all on a line, repeated points): no geometry
        return 0, math.nan, None
    if mask is None or fundamental is None or fundamental.shape != (3, 3):
        return 0, math.nan, None
    inlier = mask.ravel().astype(bool)
    n_inliers = int(inlier.sum())
    if n_inliers < 8:
        return n_inliers, math.nan, None
    return n_inliers, log_zoom_between(query_xy[inlier], train_xy[inlier]), fundamental


def epipole_vector(fundamental: np.ndarray | None, centre: tuple[float, float, float]) -> np.ndarray:
    """The query image's epipole about the image centre, scaled and normalised (sign arbitrary).

    The epipole is where the other camera's centre projects. Its homogeneous scale component,
    relative to its distance from the centre, is the other camera's offset along the view direction
    over its offset across it: it passes through zero where the two cameras stand level along the
    trail, whatever their lenses, heights or pitch (unlike the inlier peak, which a narrower lens
    moves to where it sees the same field, behind the place).

    Args:
        fundamental: F with ``train^T F query = 0``, or None.
        centre: (cx, cy, half width) of the image.

    Returns:
        (3,) unit vector (x - cx, y - cy, half width * w), NaN without F.
    """
    if fundamental is None:
        return np.full(3, np.nan)
    _, _, vt = np.linalg.svd(fundamental)
    e = vt[-1]
    cx, cy, scale = centre
    vector = np.array([e[0] - cx * e[2], e[1] - cy * e[2], scale * e[2]])
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else np.full(3, np.nan)


def epipole_of_matches(
    query_xy: np.ndarray,
    train_xy: np.ndarray,
    centre: tuple[float, float, float],
    reproj_px: float,
    seed: int = 0,
) -> np.ndarray:
    """`epipole_vector` of a fundamental matrix fitted (MAGSAC++) to matched points."""
    return epipole_vector(_fundamental(query_xy, train_xy, reproj_px, seed)[2], centre)


def verify_learned_block_pairs(
    query_kp: np.ndarray,
    query_desc: np.ndarray,
    query_offsets: np.ndarray,
    train_kp: np.ndarray,
    train_desc: np.ndarray,
    train_offsets: np.ndarray,
    pairs: np.ndarray,
    config: MatchConfig,
    *,
    reproj_px: float,
    threads: int = 2,
) -> PairGeometry:
    """Verify (query block, train block) pairs of stacked per-frame learned features.

    Same contract as `mtbsync.match.verify.verify_block_pairs`: per pair, the matches, the
    geometric inliers and the log zoom. The matrix products and MAGSAC release the GIL, so a small
    thread pool runs pairs side by side.
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if len(pairs) == 0:
        empty = np.zeros(0)
        return PairGeometry(empty.astype(np.int32), empty.astype(np.int32), empty)

    centre = image_centre(query_kp)

    def work(k: int) -> tuple[int, int, float, np.ndarray]:
        q, t = int(pairs[k, 0]), int(pairs[k, 1])
        q_lo, q_hi = query_offsets[q], query_offsets[q + 1]
        t_lo, t_hi = train_offsets[t], train_offsets[t + 1]
        qi, ti = mutual_matches(query_desc[q_lo:q_hi], train_desc[t_lo:t_hi])
        inliers, zoom, fundamental = _fundamental(
            query_kp[q_lo:q_hi][qi, :2], train_kp[t_lo:t_hi][ti, :2], reproj_px, seed=k
        )
        return len(qi), inliers, zoom, epipole_vector(fundamental, centre)

    results = map_pairs(work, len(pairs), threads=threads, chunksize=8)
    matches, inliers, zoom, epipole = zip(*results, strict=True)
    return PairGeometry(
        np.array(matches, np.int32),
        np.array(inliers, np.int32),
        np.array(zoom, np.float64),
        np.stack(epipole),
    )


def coarse_match_counts(
    query_desc: np.ndarray,
    query_offsets: np.ndarray,
    train_desc: np.ndarray,
    train_offsets: np.ndarray,
    *,
    keypoints: int = COARSE_KEYPOINTS,
    allowed: np.ndarray | None = None,
) -> np.ndarray:
    """Mutual-nearest-neighbour counts between every query and every train keyframe.

    Uses each keyframe's ``keypoints`` strongest features: one matrix product per query keyframe
    against all train keyframes, so the all-pairs look costs about as much as a few verifications.

    Args:
        query_desc, query_offsets, train_desc, train_offsets: Stacked per-frame descriptors.
        keypoints: Features per keyframe taken into account.
        allowed: Optional (n_query, n_train) mask; pairs outside it get 0 (not computed).

    Returns:
        (n_query, n_train) float array of match counts.
    """
    n_q, n_t = len(query_offsets) - 1, len(train_offsets) - 1
    counts = np.zeros((n_q, n_t))
    if n_q == 0 or n_t == 0:
        return counts
    dim = query_desc.shape[1]
    train = np.zeros((n_t, keypoints, dim), np.float32)
    valid = np.zeros((n_t, keypoints), bool)
    for t in range(n_t):
        block = train_desc[train_offsets[t] : train_offsets[t + 1]][:keypoints]
        train[t, : len(block)] = block
        valid[t, : len(block)] = True
    for q in range(n_q):
        block = query_desc[query_offsets[q] : query_offsets[q + 1]][:keypoints]
        all_cols = np.arange(n_t) if allowed is None else np.nonzero(allowed[q])[0]
        if len(block) == 0:
            continue
        # A bounded slab of train keyframes at a time: memory stays flat however long the runs are.
        for start in range(0, len(all_cols), _COARSE_TRAIN_CHUNK):
            cols = all_cols[start : start + _COARSE_TRAIN_CHUNK]
            sim = np.einsum("qd,ckd->qck", block, train[cols], optimize=True)
            sim = np.where(valid[cols][None], sim, -2.0)
            best_t = sim.argmax(axis=2)  # (nq, cols)
            best_val = np.take_along_axis(sim, best_t[..., None], axis=2)[..., 0]
            best_q = sim.argmax(axis=0)  # (cols, keypoints)
            mutual = best_q[np.arange(len(cols))[None, :], best_t] == np.arange(len(block))[:, None]
            counts[q, cols] = ((best_val >= MIN_COSINE) & mutual).sum(axis=0)
    return counts
