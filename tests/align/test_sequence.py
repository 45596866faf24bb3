"""Keypoint-free sequence alignment: a repeat in order is significant, look-alikes out of order are not."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import cv2
import numpy as np

from mtbsync.align.sequence import align_by_sequence, sequence_fallback
from mtbsync.align.warp import Warp
from mtbsync.config import SyncConfig
from mtbsync.match.sequence import enhanced_similarity, patch_normalised, sequence_scores


def _places(n: int, seed: int) -> np.ndarray:
    """``n`` distinct smooth grey 36x64 'views' (one per place along a route)."""
    rng = np.random.default_rng(seed)
    views = []
    for _ in range(n):
        noise = rng.normal(0, 1, (9, 16)).astype(np.float32)
        views.append(cv2.resize(noise, (64, 36), interpolation=cv2.INTER_CUBIC))
    return np.stack(views)


def _filmed(views: np.ndarray, places: np.ndarray, *, gain: float, seed: int) -> np.ndarray:
    """Thumbnails of a run passing ``places`` (fractional indices), with another exposure and noise."""
    rng = np.random.default_rng(seed)
    lo = np.clip(np.floor(places).astype(int), 0, len(views) - 1)
    hi = np.clip(lo + 1, 0, len(views) - 1)
    w = (places - lo)[:, None, None]
    frames = (1 - w) * views[lo] + w * views[hi]
    frames = 128 + 40 * gain * frames + rng.normal(0, 6, frames.shape)
    return np.clip(frames, 0, 255).astype(np.uint8)


def test_patch_normalisation_ignores_exposure() -> None:
    views = _filmed(_places(5, 1), np.arange(5.0), gain=1.0, seed=2)
    darker = (views.astype(np.float32) * 0.5).astype(np.uint8)
    a, b = patch_normalised(views), patch_normalised(darker)
    assert np.all(np.sum(a * b, axis=1) > 0.95)


def test_a_repeat_in_order_is_found_and_significant() -> None:
    views = _places(80, 3)
    reference = _filmed(views, np.arange(0.0, 60.0), gain=1.0, seed=4)
    # The new run starts 10 places in, rides at 0.8x then 1.3x, with darker light.
    places = np.concatenate([np.arange(10.0, 30.0, 0.8), np.arange(30.0, 58.0, 1.3)])
    new = _filmed(views, places, gain=0.6, seed=5)
    result = align_by_sequence(new, reference, max_step=3)
    assert result.significant, (result.path.score, result.null_scores.max())
    error = np.abs(result.path.ref_idx - places[result.path.new_idx])
    assert np.median(error) <= 1.0
    evidence = sequence_scores(enhanced_similarity(new, reference))
    assert evidence.shape == (len(new), len(reference))


def test_the_same_kind_of_place_elsewhere_is_not_significant() -> None:
    reference = _filmed(_places(60, 6), np.arange(0.0, 60.0), gain=1.0, seed=7)
    elsewhere = _filmed(_places(60, 8), np.arange(0.0, 50.0), gain=1.0, seed=9)
    assert not align_by_sequence(elsewhere, reference, max_step=3).significant


def _index(thumbnails: np.ndarray, step_s: float = 0.5) -> SimpleNamespace:
    """The parts of a keyframe index the sequence fallback reads."""
    times = step_s * np.arange(len(thumbnails), dtype=np.float64)
    return SimpleNamespace(times=times, thumbnails=thumbnails, video={"duration": float(times[-1] + step_s)})


def _failed() -> Warp:
    return Warp(np.zeros(0), np.zeros(0), np.zeros(0), ok=False, reason="too few verified matches")


def test_the_sequence_fallback_places_a_repeat_and_says_so(caplog) -> None:
    views = _places(80, 3)
    reference = _index(_filmed(views, np.arange(0.0, 60.0), gain=1.0, seed=4))
    new = _index(_filmed(views, np.arange(10.0, 50.0), gain=0.6, seed=5))
    vision = _failed()
    with caplog.at_level(logging.WARNING, logger="mtbsync"):
        warp = sequence_fallback(vision, reference, new, SyncConfig())
    assert warp is not vision and warp.ok and warp.metrics["model"] == "sequence"
    assert warp.meta["model_reason"] == warp.reason and "image sequences alone" in warp.reason
    assert caplog.messages == [warp.reason]


def test_the_sequence_fallback_keeps_the_vision_warp_for_look_alikes() -> None:
    reference = _index(_filmed(_places(60, 6), np.arange(0.0, 60.0), gain=1.0, seed=7))
    elsewhere = _index(_filmed(_places(60, 8), np.arange(0.0, 50.0), gain=1.0, seed=9))
    vision = _failed()
    assert sequence_fallback(vision, reference, elsewhere, SyncConfig()) is vision
    assert vision.metrics["sequence"]["significant"] is False
