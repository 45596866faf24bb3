"""Alignment by image sequences alone, placed only when it is significant.

The last visual resort, for footage where keypoints verify too little (a tiny or blurred source,
night, a season's change): the monotone path through the sequence evidence of
`mtbsync.match.sequence`. Look-alike footage of another place (the same kind of building, the same
railway elsewhere) can also form a path, so the path counts only when it stands far above paths
found in null matrices that keep the reference's appearance but not its order: the reference cut
into blocks of a couple of seconds and shuffled, and the reference reversed. A real repeat of the
trail is a long straight path; a look-alike gives short pieces, which the nulls give too.
`sequence_fallback` applies it to two keyframe indexes (the pipeline times it as ``sequence``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from mtbsync.align.path import KeyframePath, monotone_path
from mtbsync.align.warp import Warp
from mtbsync.config import SyncConfig, WarpGates
from mtbsync.errors import IN_RESULT
from mtbsync.features.index import FeatureIndex
from mtbsync.match.sequence import enhanced_similarity, sequence_scores

log = logging.getLogger("mtbsync")

# Sequence evidence a cell needs to count for the path (the evidence of unrelated cells has a spread
# of about a third of this).
SEQUENCE_THRESHOLD = 0.6
# The path must score this many times the best null path, and be this long.
SIGNIFICANCE_MARGIN = 2.0
MIN_SEQUENCE_POINTS = 12
_BLOCK = 3


@dataclass(frozen=True)
class SequenceAlignment:
    """The sequence path and its significance.

    Attributes:
        path: The monotone path (keyframe numbers).
        evidence: (n_new, n_ref) sequence evidence.
        null_scores: Best path scores of the null matrices.
        significant: Whether the path may place the runs.
    """

    path: KeyframePath
    evidence: np.ndarray
    null_scores: np.ndarray
    significant: bool

    @property
    def margin(self) -> float:
        """The path's score over the best null score."""
        best_null = float(self.null_scores.max()) if self.null_scores.size else 0.0
        return self.path.score / best_null if best_null > 0 else float("inf")


def _path_of(enhanced: np.ndarray, max_step: int) -> tuple[KeyframePath, np.ndarray]:
    evidence = sequence_scores(enhanced)
    return monotone_path(evidence - SEQUENCE_THRESHOLD, max_step=max_step, stop_penalty=0.15), evidence


def align_by_sequence(
    new_thumbnails: np.ndarray,
    ref_thumbnails: np.ndarray,
    *,
    max_step: int,
    trials: int = 12,
    seed: int = 0,
) -> SequenceAlignment:
    """The sequence path of the new run through the reference, and whether it is significant.

    Args:
        new_thumbnails: (n_new, h, w) grey keyframe thumbnails of the new run.
        ref_thumbnails: (n_ref, h, w) those of the reference.
        max_step: Most reference keyframes per new keyframe.
        trials: Block-shuffled nulls (the reversed reference is one more).
        seed: Seed of the shuffles (results are reproducible).
    """
    enhanced = enhanced_similarity(new_thumbnails, ref_thumbnails)
    path, evidence = _path_of(enhanced, max_step)
    n_ref = len(ref_thumbnails)
    rng = np.random.default_rng(seed)
    nulls = []
    orders = [np.arange(n_ref)[::-1]]
    blocks = [np.arange(a, min(a + _BLOCK, n_ref)) for a in range(0, n_ref, _BLOCK)]
    for _ in range(trials if len(blocks) > 2 else 0):
        orders.append(np.concatenate([blocks[k] for k in rng.permutation(len(blocks))]))
    for order in orders:
        null_path, _ = _path_of(enhanced_similarity(new_thumbnails, ref_thumbnails[order]), max_step)
        nulls.append(null_path.score)
    null_scores = np.array(nulls, np.float64)
    best_null = float(null_scores.max()) if null_scores.size else 0.0
    significant = (
        len(path) >= MIN_SEQUENCE_POINTS
        and path.score > SIGNIFICANCE_MARGIN * max(best_null, 1e-9)
        and path.score > 0
    )
    return SequenceAlignment(path, evidence, null_scores, bool(significant))


# Confidence of a warp resting on image sequences alone: markers placed through it ask for review.
SEQUENCE_CONFIDENCE = 0.45


def sequence_warp(
    ref_times: np.ndarray,
    ref_thumbnails: np.ndarray,
    new_times: np.ndarray,
    new_thumbnails: np.ndarray,
    vision: Warp,
    *,
    gates: WarpGates,
    new_duration: float,
    ref_duration: float,
    max_step: int,
) -> Warp | None:
    """A warp from the significant sequence path, when keypoints verified too little; else None.

    The warp passes the same gates as a keypoint warp (coverage, residuals, points; every path
    point counts as verified, its significance standing for the geometry), its confidence is at
    most `SEQUENCE_CONFIDENCE`, ``metrics["model"]`` is ``sequence`` and ``metrics["sequence"]``
    holds the path score against the nulls.

    Args:
        ref_times, ref_thumbnails: The reference's keyframe times and thumbnails.
        new_times, new_thumbnails: The new run's.
        vision: The keypoint warp that did not pass (its reason is kept in the metrics).
        gates: Quality gates.
        new_duration, ref_duration: The runs' lengths (s).
        max_step: Most reference keyframes per new keyframe.
    """
    from mtbsync.align.fit import fit_warp

    found = align_by_sequence(new_thumbnails, ref_thumbnails, max_step=max_step)
    summary = {
        "points": len(found.path),
        "score": round(float(found.path.score), 2),
        "best_null": round(float(found.null_scores.max()), 2) if found.null_scores.size else None,
        "significant": found.significant,
    }
    vision.metrics["sequence"] = summary
    if not found.significant:
        return None
    t_new = np.asarray(new_times)[found.path.new_idx]
    t_ref = np.asarray(ref_times)[found.path.ref_idx]
    strength = found.evidence[found.path.new_idx, found.path.ref_idx]
    step = float(np.median(np.diff(new_times))) if len(new_times) > 1 else 0.0
    warp = fit_warp(
        t_new,
        t_ref,
        np.clip(40.0 * strength, 1.0, None),
        np.ones(t_new.size, bool),
        gates=gates,
        new_duration=new_duration,
        ref_duration=ref_duration,
        path_points=len(found.path),
        extend_s=0.5 * step,
    )
    if not warp.ok:
        return None
    warp.confidence = np.minimum(warp.confidence, SEQUENCE_CONFIDENCE)
    warp.metrics.update(model="sequence", sequence=summary, vision_reason=vision.reason)
    warp.meta = dict(vision.meta)
    warp.reason = (
        "aligned by image sequences alone (keypoints verified too little: "
        f"{vision.reason or 'no consistent path'}); every marker needs review"
    )
    return warp


def sequence_fallback(vision: Warp, ref: FeatureIndex, new: FeatureIndex, config: SyncConfig) -> Warp:
    """Keypoint-free last visual resort for two keyframe indexes: their thumbnail sequences.

    Args:
        vision: The keypoint warp that did not pass (``metrics["sequence"]`` is set on it).
        ref: The reference run's keyframe index.
        new: The new run's keyframe index.
        config: Parameters (the gates; the path's speed ratio bounds the step).

    Returns:
        `sequence_warp`'s warp with its reason in ``meta["model_reason"]`` (also logged as a
        warning that goes into the result), or ``vision`` when the sequence path is not significant.
    """
    warp = sequence_warp(
        ref.times,
        ref.thumbnails,
        new.times,
        new.thumbnails,
        vision,
        gates=config.gates,
        new_duration=float(new.video.get("duration") or 0.0),
        ref_duration=float(ref.video.get("duration") or 0.0),
        max_step=max(2, math.ceil(config.path.max_speed_ratio)),
    )
    if warp is None:
        return vision
    warp.meta["model_reason"] = warp.reason
    log.warning("%s", warp.reason, extra=IN_RESULT)
    return warp
