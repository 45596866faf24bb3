"""The feature cascade's choice between the ORB and the learned-feature alignments."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from mtbsync.align.select import choose_features
from mtbsync.align.warp import Warp


def _warp(features: str, *, ok: bool, inlier_frac: float, coverage: float) -> Warp:
    return Warp(
        np.array([0.0, 10.0]),
        np.array([0.0, 10.0]),
        np.ones(2),
        ok=ok,
        metrics={"inlier_frac": inlier_frac, "coverage_new": coverage},
        meta={"features": features},
    )


def test_the_better_supported_alignment_is_kept_and_says_why(caplog: pytest.LogCaptureFixture) -> None:
    orb = _warp("orb", ok=True, inlier_frac=0.4, coverage=0.5)
    learned = _warp("xfeat", ok=True, inlier_frac=0.9, coverage=0.9)
    with caplog.at_level(logging.INFO, logger="mtbsync"):
        assert choose_features(orb, learned) is learned
    why = "ORB verified 40% of its path (aligned), learned features (XFeat) 90% of its path (aligned)"
    assert learned.metrics["features"] == {
        "used": "xfeat",
        "tried": ["orb", "xfeat"],
        "why": why,
        "other_ok": True,
    }
    assert "features" not in orb.metrics
    assert f"features: {why}; using xfeat" in caplog.messages


def test_orb_is_kept_on_a_tie_and_over_a_learned_alignment_that_failed() -> None:
    orb = _warp("orb", ok=True, inlier_frac=0.5, coverage=0.5)
    assert choose_features(orb, _warp("xfeat", ok=True, inlier_frac=0.5, coverage=0.5)) is orb
    failed = _warp("xfeat", ok=False, inlier_frac=0.9, coverage=0.9)
    assert choose_features(orb, failed) is orb
    assert orb.metrics["features"]["used"] == "orb" and orb.metrics["features"]["other_ok"] is False
