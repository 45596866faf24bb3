from __future__ import annotations

import numpy as np

from mtbsync.align.path import monotone_path


def _truth_scores(truth_ref: np.ndarray, n_ref: int, seed: int = 0) -> np.ndarray:
    """Score matrix: noise everywhere, a strong ridge at the true reference keyframe of each row."""
    rng = np.random.default_rng(seed)
    score = rng.normal(-1.0, 0.3, (truth_ref.size, n_ref))
    for i, j in enumerate(truth_ref):
        if j >= 0:
            score[i, j] = 2.0 + rng.normal(0, 0.2)
    return score


def test_path_follows_speed_changes_a_stop_and_a_late_start() -> None:
    # New run: 5 frames of waiting with no counterpart, then starts at ref 10, rides at 1x, 2x,
    # stops for 6 frames, then 0.5x.
    truth = (
        [-1] * 5 + list(range(10, 30)) + list(range(30, 60, 2)) + [60] * 6 + list(np.repeat(range(61, 80), 2))
    )
    truth = np.array(truth)
    path = monotone_path(_truth_scores(truth, 100), max_step=3, stop_penalty=0.15)
    assert path.new_idx[0] == 5
    assert np.all(np.diff(path.new_idx) == 1)
    assert np.all(np.diff(path.ref_idx) >= 0)
    assert np.array_equal(path.ref_idx, truth[path.new_idx])


def test_path_on_noise_is_short_or_empty() -> None:
    rng = np.random.default_rng(3)
    score = rng.normal(-1.0, 0.3, (80, 80))
    assert len(monotone_path(score, max_step=3, stop_penalty=0.15)) <= 3


def test_empty_inputs() -> None:
    assert len(monotone_path(np.zeros((0, 5)), max_step=3, stop_penalty=0.1)) == 0
    assert len(monotone_path(np.zeros((5, 0)), max_step=3, stop_penalty=0.1)) == 0
