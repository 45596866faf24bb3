"""Geometric verification of keyframe pairs, and the relative zoom between two views.

For each (query keyframe, train keyframe) pair: Hamming 2-NN matching with the ratio test, then a
RANSAC homography. The inlier count says whether the two frames show the same place. Among the
inliers, the median log ratio of point-to-point distances is the *zoom* of the train view relative to
the query view: riding forward makes everything grow, so the zoom tells which view is further along
the trail, and by how much (used for sub-keyframe timing in `align.refine`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import cv2
import numpy as np

from mtbsync.config import MatchConfig
from mtbsync.features.extractors import is_learned
from mtbsync.features.index import FeatureIndex
from mtbsync.gpu import Knn2, hamming_knn2_pairs, match_descriptors
from mtbsync.gpu.backend import ratio_keep

T = TypeVar("T")

_MIN_MATCHES_FOR_RANSAC = 8
_MIN_POINT_SEPARATION = 12.0  # px; shorter baselines make distance ratios noisy
_ZOOM_SAMPLE_PAIRS = 1500
# True pairs (many inliers) converge in a few dozen iterations; the cap bounds the cost of the
# hopeless pairs, which is where RANSAC spends its time.
_RANSAC_ITERATIONS = 200


@dataclass(frozen=True)
class PairGeometry:
    """Verification results for P keyframe pairs (one entry per pair).

    Attributes:
        matches: Ratio-test matches.
        inliers: RANSAC homography inliers.
        log_zoom: Median log distance ratio train/query over inliers (NaN when not measurable).
        epipole: (P, 3) where the train camera's centre projects in the query image, as a unit
            vector (x - cx, y - cy, scale) in homogeneous image coordinates about the image centre
            (sign arbitrary; NaN rows when not computed). Its last component crosses zero when the
            two cameras stand at the same place along the direction of view.
    """

    matches: np.ndarray
    inliers: np.ndarray
    log_zoom: np.ndarray
    epipole: np.ndarray | None = None


def log_zoom_between(query_xy: np.ndarray, train_xy: np.ndarray, seed: int = 0) -> float:
    """Median log ratio of distances between random inlier point pairs, train over query.

    Distance ratios are invariant to rotation and translation, so head turns and lateral offsets do
    not bias the zoom; the median ignores the few mismatches RANSAC let through.
    """
    n = query_xy.shape[0]
    if n < 4:
        return math.nan
    rng = np.random.default_rng(seed)
    a = rng.integers(0, n, _ZOOM_SAMPLE_PAIRS)
    b = rng.integers(0, n, _ZOOM_SAMPLE_PAIRS)
    dq = np.hypot(*(query_xy[a] - query_xy[b]).T)
    dt = np.hypot(*(train_xy[a] - train_xy[b]).T)
    usable = (dq > _MIN_POINT_SEPARATION) & (dt > _MIN_POINT_SEPARATION)
    if usable.sum() < 10:
        return math.nan
    return float(np.median(np.log(dt[usable] / dq[usable])))


def verify_pair(
    query_kp: np.ndarray,
    query_desc: np.ndarray,
    train_kp: np.ndarray,
    train_desc: np.ndarray,
    config: MatchConfig,
    *,
    reproj_px: float,
) -> tuple[int, int, float]:
    """Match and verify one pair; returns (matches, inliers, log_zoom)."""
    if query_desc.shape[0] < 2 or train_desc.shape[0] < 2:
        return 0, 0, math.nan
    qi, ti, _ = match_descriptors(
        query_desc, train_desc, ratio=config.ratio, max_distance=config.max_distance, device=config.device
    )
    return _geometry_from_matches(query_kp, train_kp, qi, ti, reproj_px)


def _geometry_from_matches(
    query_kp: np.ndarray, train_kp: np.ndarray, qi: np.ndarray, ti: np.ndarray, reproj_px: float
) -> tuple[int, int, float]:
    n_matches = int(qi.shape[0])
    if n_matches < _MIN_MATCHES_FOR_RANSAC:
        return n_matches, 0, math.nan
    src = query_kp[qi, :2].astype(np.float32)
    dst = train_kp[ti, :2].astype(np.float32)
    _, mask = cv2.findHomography(
        src, dst, cv2.RANSAC, reproj_px, maxIters=_RANSAC_ITERATIONS, confidence=0.995
    )
    if mask is None:
        return n_matches, 0, math.nan
    inlier = mask.ravel().astype(bool)
    n_inliers = int(inlier.sum())
    if n_inliers < 4:
        return n_matches, n_inliers, math.nan
    return n_matches, n_inliers, log_zoom_between(src[inlier], dst[inlier])


def _ratio_mask(knn: Knn2, config: MatchConfig) -> np.ndarray:
    """Lowe's ratio test (a missing second neighbour passes) and the distance cap: the one rule the
    GPU kernel fuses (`mtbsync.gpu.backend.ratio_keep`)."""
    return ratio_keep(knn, config.ratio, config.max_distance)


def _ratio_matches(knn: Knn2, config: MatchConfig) -> tuple[np.ndarray, np.ndarray]:
    good = _ratio_mask(knn, config)
    qi = np.nonzero(good)[0]
    return qi, knn.idx1[qi]


def verify_block_pairs(
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
    epipoles: bool = False,
) -> PairGeometry:
    """Verify (query block, train block) pairs of stacked per-frame features.

    All descriptor matching happens in one batched kernel call (parallel inside); the RANSAC fits,
    which release the GIL, run in a small thread pool. Learned (float) descriptors go to
    `mtbsync.match.learned` (mutual nearest neighbours, fundamental matrix), ``reproj_px`` scaled
    from ORB's threshold to theirs. With ``epipoles``, each pair's epipole is measured too (a
    fundamental matrix on the matches; learned features have it anyway).
    """
    if is_learned(query_desc):
        from mtbsync.match.learned import verify_learned_block_pairs

        learned_px = reproj_px * config.learned_reproj_px / config.ransac_reproj_px
        return verify_learned_block_pairs(
            query_kp,
            query_desc,
            query_offsets,
            train_kp,
            train_desc,
            train_offsets,
            pairs,
            config,
            reproj_px=learned_px,
            threads=threads,
        )
    if epipoles:
        from mtbsync.match.learned import epipole_of_matches

    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if len(pairs) == 0:
        empty = np.zeros(0)
        return PairGeometry(empty.astype(np.int32), empty.astype(np.int32), empty)
    knns = hamming_knn2_pairs(
        query_desc, query_offsets, train_desc, train_offsets, pairs, device=config.device
    )

    centre = image_centre(query_kp)

    def work(k: int) -> tuple[int, int, float, np.ndarray]:
        q, t = int(pairs[k, 0]), int(pairs[k, 1])
        qi, ti = _ratio_matches(knns[k], config)
        q_kp = query_kp[query_offsets[q] : query_offsets[q + 1]]
        t_kp = train_kp[train_offsets[t] : train_offsets[t + 1]]
        geometry = _geometry_from_matches(q_kp, t_kp, qi, ti, reproj_px)
        epipole = (
            epipole_of_matches(q_kp[qi, :2], t_kp[ti, :2], centre, 0.5 * reproj_px, seed=k)
            if epipoles
            else _NO_EPIPOLE
        )
        return (*geometry, epipole)

    results = map_pairs(work, len(pairs), threads=threads, chunksize=16)
    matches, inliers, zoom, epipole = zip(*results, strict=True)
    return PairGeometry(
        np.array(matches, np.int32),
        np.array(inliers, np.int32),
        np.array(zoom, np.float64),
        np.stack(epipole) if epipoles else None,
    )


_NO_EPIPOLE = np.full(3, np.nan)


def map_pairs(work: Callable[[int], T], count: int, *, threads: int, chunksize: int) -> list[T]:
    """``work(k)`` for every pair ``k``, in a small thread pool when there are enough pairs (the
    geometric fits and matrix products release the GIL)."""
    if threads > 1 and count > 8:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            return list(pool.map(work, range(count), chunksize=chunksize))
    return [work(k) for k in range(count)]


def image_centre(keypoints: np.ndarray) -> tuple[float, float, float]:
    """(cx, cy, half width) of the feature images, from where their keypoints lie (the epipoles'
    origin and scale; the images themselves are not at hand in verification)."""
    if len(keypoints) == 0:
        return 320.0, 180.0, 320.0
    lo, hi = keypoints[:, :2].min(axis=0), keypoints[:, :2].max(axis=0)
    return float(0.5 * (lo[0] + hi[0])), float(0.5 * (lo[1] + hi[1])), float(max(0.5 * (hi[0] - lo[0]), 1.0))


def match_counts(
    query: FeatureIndex, train: FeatureIndex, pairs: np.ndarray, config: MatchConfig
) -> np.ndarray:
    """Ratio-test matches of every (query keyframe, train keyframe) pair, without geometry.

    A cheap first look (one batched kernel call) that ranks candidates before the costlier RANSAC;
    for learned descriptors, mutual nearest neighbours.
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if len(pairs) == 0:
        return np.zeros(0, np.int32)
    if is_learned(query.descriptors):
        from mtbsync.match.learned import mutual_matches

        return np.array(
            [
                len(mutual_matches(query.frame(int(q)).descriptors, train.frame(int(t)).descriptors)[0])
                for q, t in pairs
            ],
            np.int32,
        )
    knns = hamming_knn2_pairs(
        query.descriptors, query.offsets, train.descriptors, train.offsets, pairs, device=config.device
    )
    return np.array([int(_ratio_mask(knn, config).sum()) for knn in knns], np.int32)


def verify_pairs(
    query: FeatureIndex,
    train: FeatureIndex,
    pairs: np.ndarray,
    config: MatchConfig,
    *,
    threads: int = 2,
) -> PairGeometry:
    """Verify every (query keyframe, train keyframe) row of ``pairs``.

    Args:
        query: Index of the query run (usually the new run).
        train: Index of the train run (usually the reference).
        pairs: (P, 2) int array of keyframe numbers (query, train).
        config: Matching parameters.
        threads: Threads for the RANSAC fits.

    Returns:
        Per-pair matches, inliers and log zoom.
    """
    # RANSAC threshold is given for a 640-px feature image; scale it to the image actually used.
    reproj_px = config.ransac_reproj_px * max(query.image_size) / 640.0
    return verify_block_pairs(
        query.keypoints,
        query.descriptors,
        query.offsets,
        train.keypoints,
        train.descriptors,
        train.offsets,
        pairs,
        config,
        reproj_px=reproj_px,
        threads=threads,
    )
