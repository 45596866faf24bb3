"""The globally consistent monotone path through a keyframe score matrix.

Dynamic programming in the style of local sequence alignment: every new keyframe on the path is
paired with one reference keyframe; from one new keyframe to the next the reference index advances
by 0 (the new rider stands still) up to ``max_step`` (the new rider is faster). The best-scoring
contiguous stretch wins, so a new run that starts later or ends earlier, or footage with no
counterpart (waiting at the start gate), simply stays off the path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class KeyframePath:
    """A monotone path: new keyframe ``new_idx[k]`` pairs with reference keyframe ``ref_idx[k]``.

    Attributes:
        new_idx: Strictly increasing new keyframe numbers.
        ref_idx: Non-decreasing reference keyframe numbers.
        score: Path score (sum of cell scores and step costs).
    """

    new_idx: np.ndarray
    ref_idx: np.ndarray
    score: float

    def __len__(self) -> int:
        return int(self.new_idx.shape[0])


def monotone_path(score: np.ndarray, *, max_step: int, stop_penalty: float) -> KeyframePath:
    """Best monotone path through ``score`` (n_new, n_ref).

    Args:
        score: Cell scores: positive where the pair looks like the same place, negative otherwise.
        max_step: Most reference keyframes the path may advance per new keyframe.
        stop_penalty: Cost of a step where the reference index stays (keeps stops honest).

    Returns:
        The highest-scoring contiguous path (empty when no cell scores above zero).
    """
    n_new, n_ref = score.shape
    if n_new == 0 or n_ref == 0:
        return KeyframePath(np.zeros(0, np.int64), np.zeros(0, np.int64), 0.0)
    score = np.nan_to_num(score.astype(np.float64), nan=-1.0, neginf=-1e3, posinf=1e3)
    total = np.empty((n_new, n_ref))
    step_taken = np.full((n_new, n_ref), -1, np.int8)  # -1: path starts here
    total[0] = score[0]
    steps = np.arange(0, max_step + 1)
    penalties = np.where(steps == 0, stop_penalty, 0.0) + 0.02 * np.maximum(steps - 1, 0)
    for i in range(1, n_new):
        prev = total[i - 1]
        best = np.zeros(n_ref)
        best_step = np.full(n_ref, -1, np.int8)
        for d, penalty in zip(steps, penalties, strict=True):
            shifted = np.full(n_ref, -np.inf)
            if d == 0:
                shifted[:] = prev
            else:
                shifted[d:] = prev[:-d]
            candidate = shifted - penalty
            better = candidate > best
            best[better] = candidate[better]
            best_step[better] = d
        total[i] = score[i] + best
        step_taken[i] = best_step
    end = np.unravel_index(int(np.argmax(total)), total.shape)
    best_total = float(total[end])
    if best_total <= 0:
        return KeyframePath(np.zeros(0, np.int64), np.zeros(0, np.int64), 0.0)
    new_idx, ref_idx = [int(end[0])], [int(end[1])]
    i, j = int(end[0]), int(end[1])
    while step_taken[i, j] >= 0 and i > 0:
        j -= int(step_taken[i, j])
        i -= 1
        new_idx.append(i)
        ref_idx.append(j)
    return KeyframePath(np.array(new_idx[::-1], np.int64), np.array(ref_idx[::-1], np.int64), best_total)
