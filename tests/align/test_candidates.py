from __future__ import annotations

import numpy as np

from mtbsync.align.candidates import band_pairs, candidate_pairs, count_score, verification_score
from mtbsync.align.path import KeyframePath
from mtbsync.align.refine import interpolate_located
from mtbsync.align.warp import Warp


def test_scores_grow_with_evidence_and_bottom_out() -> None:
    scores = verification_score(np.array([0, 6, 12, 48, 400]), 12)
    assert scores[0] == -1.0 and scores[2] == 0.0
    assert np.all(np.diff(scores[1:]) > 0)  # no saturation: more inliers always score more
    counts = np.array([[20.0, 22.0, 90.0, np.nan], [np.nan, np.nan, np.nan, np.nan]])
    score = count_score(counts)
    assert score[0, 2] > 0.5 > score[0, 0]
    assert score[0, 3] == -1.0 and np.all(score[1] == -1.0)


def test_band_and_candidates_stay_inside_the_matrix() -> None:
    path = KeyframePath(np.array([0, 1, 2]), np.array([0, 2, 4]), 3.0)
    band = band_pairs(path, n_ref=5, width=1)
    assert {tuple(p) for p in band} == {(0, 0), (0, 1), (1, 1), (1, 2), (1, 3), (2, 3), (2, 4)}
    similarity = np.random.default_rng(0).normal(size=(3, 5))
    pairs = candidate_pairs(similarity, path, k=2, around=1)
    assert pairs[:, 1].min() >= 0 and pairs[:, 1].max() < 5
    assert {tuple(p) for p in band} <= {tuple(p) for p in pairs}


def test_interpolate_located_fits_a_line_and_drops_the_odd_frame() -> None:
    warp = Warp([0.0, 10.0], [0.0, 20.0], [1.0, 1.0])  # reference twice as fast
    located = [(4.0, 2.0), (4.1, 2.05), (4.2, 2.1), (4.3, 2.45), (4.4, 2.2)]
    assert abs(interpolate_located(located, 4.25, warp) - 2.125) < 1e-9
    assert abs(interpolate_located([(4.0, 2.0)], 4.5, warp) - 2.25) < 1e-9  # carried at the warp's pace
    assert np.isnan(interpolate_located([], 4.0, warp))
