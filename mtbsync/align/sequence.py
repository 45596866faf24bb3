"""Alignment by image sequences alone, placed only when it is significant.

The last visual resort, for footage where keypoints verify too little (a tiny or blurred source,
night, a season's change): the monotone path through the sequence evidence of
`mtbsync.match.sequence`. Look-alike footage of another place (the same kind of building, the same
railway elsewhere) can also form a path, so the path counts only when it stands far above paths
found in null matrices that keep the reference's appearance but not its order: the reference cut
into blocks of a couple of seconds and shuffled, and the reference reversed. A real repeat of the
trail is a long straight path; a look-alike gives short pieces, which the nulls give too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtbsync.align.path import KeyframePath, monotone_path
from mtbsync.match.sequence import enhanced_similarity, sequence_scores

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
