"""What the vision alignment records about itself: the GPS summary and the warp's facts."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np

from mtbsync import __version__
from mtbsync.align.vision import (
    Candidates,
    GpsGuide,
    PathWarp,
    band_retry_reason,
    described_warp,
    gps_summary,
    mark_vision_retry,
)
from mtbsync.align.warp import Warp


def _fitted(**gps_figures) -> PathWarp:
    warp = Warp(np.array([0.0, 10.0]), np.array([1.0, 11.0]), np.ones(2))
    return PathWarp(warp, np.ones(2, bool), **gps_figures)


def _candidates(map_shift_s: float | None) -> Candidates:
    pairs = np.zeros((5, 2), np.int64)
    return Candidates(pairs, np.zeros((2, 2)), None, None, ["moved"], map_shift_s)


def test_the_gps_summary_keeps_every_stages_notes_and_figures_in_order() -> None:
    guide = GpsGuide(facts={"map": {"same_trail": True}, "band_rows": 4}, notes=["guided"])
    gps = gps_summary(
        "both", ("timed",), guide, _candidates(-1.5), _fitted(stop_pairs_held=3, filled_knots=2)
    )
    assert gps == {
        "mode": "both",
        "notes": ["timed", "guided", "moved"],
        "map": {"same_trail": True},
        "band_rows": 4,
        "map_shift_s": -1.5,
        "stop_pairs_held": 3,
        "filled_knots": 2,
        "candidates": 5,
    }
    assert list(gps) == [  # in the order of the stages
        "mode",
        "notes",
        "map",
        "band_rows",
        "map_shift_s",
        "stop_pairs_held",
        "filled_knots",
        "candidates",
    ]
    # Figures that do not apply are left out.
    assert gps_summary("none", (), GpsGuide(), _candidates(None), _fitted()) == {
        "mode": "none",
        "notes": ["moved"],
        "candidates": 5,
    }


def test_the_described_warp_carries_the_gps_summary_itself_and_its_provenance() -> None:
    fitted = _fitted()
    ref = SimpleNamespace(
        video={"path": "ref.mp4"}, params={"sample_fps": 3.0, "features": {"kind": "xfeat"}}
    )
    new = SimpleNamespace(video={"path": "new.mp4"}, params={})
    gps = {"mode": "none"}
    warp = described_warp(fitted, SimpleNamespace(zoom_bias=0.02), new, ref, gps=gps, device="cpu")
    assert warp is fitted.warp and warp.metrics["gps"] is gps
    assert warp.meta == {
        "reference": {"path": "ref.mp4"},
        "new": {"path": "new.mp4"},
        "keyframe_fps": 3.0,
        "device": "cpu",
        "mtbsync_version": __version__,
        "zoom_bias": 0.02,
        "features": "xfeat",
    }


def test_no_consistent_path_inside_the_gps_band_asks_for_a_retry_by_vision_alone(caplog) -> None:
    failed = Warp(np.array([0.0, 10.0]), np.array([0.0, 10.0]), np.ones(2), ok=False, reason="too few")
    band = np.ones((2, 2), bool)
    assert band_retry_reason(None, failed) is None  # no band: GPS did not narrow the search
    assert band_retry_reason(band, _fitted().warp) is None  # aligned inside the band
    with caplog.at_level(logging.WARNING, logger="mtbsync"):
        why = band_retry_reason(band, failed)
    assert why == "the GPS map disagreed with vision (check the track offset)"
    assert [r.getMessage() for r in caplog.records] == [
        "no consistent visual path inside the GPS band (too few); retrying by vision alone"
    ]

    retry = {"mode": "none: no GPS given; aligned by vision alone", "notes": [why]}
    mark_vision_retry(retry, {"mode": "both", "map": {"same_trail": True}}, why)
    assert retry == {  # in place: it is the retry's warp.metrics["gps"] too
        "mode": f"none: {why}; aligned by vision alone",
        "notes": [why],
        "map": {"same_trail": True},
    }
