"""A marker file of 300,000: linear in the markers, and the same result as one marker at a time."""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import tracemalloc

import numpy as np
import pytest

from mtbsync.align.warp import Warp, load_warp
from mtbsync.config import SyncConfig
from mtbsync.markers import Marker, TransferredMarker, transfer_markers
from mtbsync.markers.policy import apply_refinement, pin_at_refinement, wants_full_rate_timing
from mtbsync.markers.refine import (
    REFINE_MAX_MARKERS,
    THROUGH_WARP,
    RefinementPlan,
    _within_limit,
    plan_refinement,
    refine_markers,
)


def _to_new_one_at_a_time(warp: Warp, t_ref: np.ndarray) -> np.ndarray:
    """The warp's inverse as it was computed before: a bisection per time, one cubic call a step."""
    out = np.full(t_ref.shape, np.nan)
    lo, hi = warp.ref_range
    for k, value in enumerate(t_ref):
        if not (lo <= value <= hi):
            continue
        seg = int(np.searchsorted(warp.t_ref, value, side="left"))
        if seg == 0:
            out[k] = warp.t_new[0]
            continue
        a, b = warp.t_new[seg - 1], warp.t_new[seg]
        for _ in range(60):
            mid = 0.5 * (a + b)
            if warp.to_ref(mid)[0] < value:
                a = mid
            else:
                b = mid
        out[k] = b
    return out


def _transfer_one_at_a_time(
    markers: list[Marker], warp: Warp, review_threshold: float = 0.6
) -> list[TransferredMarker]:
    """`transfer_markers` as it was: every marker through the warp on its own."""

    def append(comment: str, reason: str) -> str:
        return f"{comment} | {reason}" if comment else reason

    def not_placed(m: Marker, reason: str) -> TransferredMarker:
        return TransferredMarker(m.name, float(m.t_ref), None, 0.0, True, m.colour, append(m.comment, reason))

    lo, hi = warp.ref_range
    gps_only = warp.metrics.get("model") == "gps"
    accuracy = float(warp.metrics.get("accuracy_s") or 0.0)
    out = []
    for m in markers:
        tn = float(_to_new_one_at_a_time(warp, np.array([m.t_ref], float))[0])
        if not math.isfinite(m.t_ref):
            out.append(not_placed(m, "not placed: its reference time is not a number"))
        elif math.isnan(tn):
            side = "before" if m.t_ref < lo else "after"
            out.append(
                not_placed(m, f"not placed: {side} the new run's covered part (ref {lo:.1f}–{hi:.1f} s)")
            )
        else:
            conf = min(max(float(warp.confidence_at(tn)[0]), 0.0), 1.0)
            low = conf < review_threshold or gps_only
            if gps_only:
                comment = append(m.comment, f"placed by GPS alone (about +-{accuracy:.1f} s): check it")
            elif low:
                comment = append(m.comment, f"low confidence ({conf:.2f} < {review_threshold:.2f})")
            else:
                comment = m.comment
            out.append(TransferredMarker(m.name, float(m.t_ref), tn, conf, low, m.colour, comment))
    return out


def _warps() -> list[Warp]:
    rng = np.random.default_rng(7)
    t_new = np.cumsum(rng.uniform(0.2, 0.5, 60))
    t_ref = 3.0 + np.cumsum(rng.uniform(0.0, 0.6, 60))  # steps of 0: the reference stands still
    return [
        Warp(t_new, t_ref, rng.uniform(0.2, 1.0, 60)),
        Warp([0, 5, 10, 12, 15], [2, 7, 12, 12, 18], [1, 1, 0.4, 0.4, 1]),  # a stop from 10 to 12 s
        Warp([1.0, 4.0], [0.5, 9.0], [0.9, 0.5]),
    ]


@pytest.mark.parametrize("warp", _warps(), ids=["random", "stop", "two knots"])
def test_the_warps_inverse_is_the_same_for_all_at_once(warp: Warp) -> None:
    rng = np.random.default_rng(1)
    lo, hi = warp.ref_range
    times = np.concatenate(
        [rng.uniform(lo - 2, hi + 2, 500), warp.t_ref, [lo, hi, np.nan, np.inf, -np.inf, -0.0]]
    )
    assert np.array_equal(warp.to_new(times), _to_new_one_at_a_time(warp, times), equal_nan=True)


@pytest.mark.parametrize("warp", _warps(), ids=["random", "stop", "two knots"])
@pytest.mark.parametrize("gps_only", [False, True])
def test_transfer_is_the_same_as_one_marker_at_a_time(warp: Warp, gps_only: bool) -> None:
    if gps_only:
        warp.metrics.update(model="gps", accuracy_s=1.5)
    rng = np.random.default_rng(2)
    lo, hi = warp.ref_range
    times = [*rng.uniform(lo - 1, hi + 1, 300).tolist(), *warp.t_ref.tolist(), math.nan, math.inf]
    markers = [
        Marker(f"m{k}", t, colour=("red", "")[k % 2], comment=("", "a note")[k % 3 == 0])
        for k, t in enumerate(times)
    ]
    for threshold in (0.0, 0.6, 1.0):
        assert transfer_markers(markers, warp, review_threshold=threshold) == _transfer_one_at_a_time(
            markers, warp, threshold
        )


def test_300000_markers_are_transferred(tmp_path) -> None:
    warp = _warps()[0]
    lo, hi = warp.ref_range
    times = np.random.default_rng(3).uniform(lo - 1, hi + 1, 300_000)
    markers = [Marker(f"marker {k}", t) for k, t in enumerate(times.tolist())]
    out = transfer_markers(markers, warp)
    assert len(out) == len(markers)
    inside = (times >= lo) & (times <= hi)
    assert [m.placed for m in out] == inside.tolist()
    # The inverse over all of them holds a few arrays of 300,000 floats, no per-marker objects.
    tracemalloc.start()
    try:
        warp.to_new(times)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20


def test_the_markers_timed_at_full_rate_are_spread_over_the_file() -> None:
    times = np.random.default_rng(4).uniform(0, 600, 10_000)
    placeable = np.flatnonzero(times > 5.0)  # the others are not placed by the warp
    todo, rest = _within_limit(placeable, times, 100)
    assert len(todo) == 100 and sorted(todo + rest) == placeable.tolist()
    assert todo == sorted(todo) and rest == sorted(rest)
    chosen = np.sort(times[todo])
    assert chosen[0] == times[placeable].min() and chosen[-1] == times[placeable].max()
    assert np.diff(chosen).max() < 30.0  # no long stretch without a pin
    assert _within_limit(placeable[:50], times, 100) == (placeable[:50].tolist(), [])
    assert _within_limit(placeable, times, None) == (placeable.tolist(), [])


def test_the_plan_says_when_markers_are_left_to_the_warp() -> None:
    times = np.linspace(0.0, 60.0, 12)
    assert RefinementPlan(times, times, list(range(12))).limit_note is None
    limited = RefinementPlan(times, times, [0, 5, 11], through_warp=[1, 2, 3, 4, 6, 7, 8, 9, 10])
    assert limited.limit_note == (
        "full-rate timing is limited to 3 markers: the other 9 were placed through the warp pinned at "
        "those timed"
    )


def test_full_rate_timing_needs_markers_both_videos_and_a_vision_warp(tmp_path) -> None:
    warp = Warp([0, 10], [0, 10], [1, 1])
    markers, config = [Marker("drop", 5.0)], SyncConfig()
    videos = {"reference": tmp_path / "ref.mp4", "new": tmp_path / "new.mp4"}
    assert wants_full_rate_timing(markers, warp, **videos, config=config)
    assert not wants_full_rate_timing([], warp, **videos, config=config)
    assert not wants_full_rate_timing(markers, warp, reference=None, new=videos["new"], config=config)
    assert not wants_full_rate_timing(markers, warp, reference=videos["reference"], new=None, config=config)
    off = dataclasses.replace(config, refine=False)
    assert not wants_full_rate_timing(markers, warp, **videos, config=off)
    failed = Warp([0, 10], [0, 10], [1, 1], ok=False)
    assert not wants_full_rate_timing(markers, failed, **videos, config=config)
    gps_only = Warp([0, 10], [0, 10], [1, 1], metrics={"model": "gps"})
    assert not wants_full_rate_timing(markers, gps_only, **videos, config=config)


def test_past_the_limit_markers_follow_the_pinned_warp(sample_pair, tmp_path, caplog) -> None:
    from web_fixtures import truth_warp

    from mtbsync.markers import full_rate
    from mtbsync.timing import StageTimer

    warp = load_warp(truth_warp(sample_pair, tmp_path / "warp.npz"))
    warp.meta.update(features="orb", keyframe_fps=3.0)
    lo, hi = warp.ref_range
    markers = [Marker(f"m{k}", t) for k, t in enumerate(np.linspace(lo + 0.5, hi - 0.5, 12).tolist())]
    config = SyncConfig()
    ref_times = [m.t_ref for m in markers]
    plan = plan_refinement(sample_pair.reference, sample_pair.new, warp, ref_times, config, max_markers=3)
    assert len(plan.todo) == 3 and len(plan.through_warp) == 9
    refinement, figures = refine_markers(sample_pair.reference, sample_pair.new, warp, plan, config)
    assert figures["through_warp"] == 9 and refinement.through_warp == 9
    assert all(np.isnan(refinement.t_new[k]) for k in plan.through_warp)
    assert [refinement.method[k] for k in plan.through_warp] == [THROUGH_WARP] * 9

    pinned, anchors = pin_at_refinement(warp, refinement)
    assert 1 <= len(anchors) <= 3
    transferred = transfer_markers(markers, pinned)
    out = apply_refinement(transferred, refinement, pinned, 0.6)
    for k in plan.through_warp:
        # Not looked for is not "not found": placed through the pinned warp, with its confidence.
        assert out[k] == transferred[k]
        assert out[k].t_new == pytest.approx(float(pinned.to_new(markers[k].t_ref)[0]))
        assert "keyframes only" not in out[k].comment

    # Through the markers stage's entry point, the limit is said once, as a warning.
    limited = functools.partial(full_rate.plan_refinement, max_markers=3)
    with pytest.MonkeyPatch.context() as mp, caplog.at_level(logging.WARNING, logger="mtbsync"):
        mp.setattr(full_rate, "plan_refinement", limited)
        _, carried, pins = full_rate.transfer_with_refinement(
            markers,
            warp,
            reference=sample_pair.reference,
            new=sample_pair.new,
            config=config,
            review_threshold=0.6,
            timer=StageTimer(),
        )
    assert [m.name for m in carried] == [m.name for m in markers] and len(pins) <= 3
    notes = [r.getMessage() for r in caplog.records if "full-rate timing is limited" in r.getMessage()]
    assert notes == [
        "full-rate timing is limited to 3 markers: the other 9 were placed through the warp pinned at "
        "those timed"
    ]
    assert REFINE_MAX_MARKERS >= 50  # a rider's file of a run's features is timed whole


def test_thousands_of_markers_are_drawn_as_one_cloud_and_listed_in_part(tmp_path) -> None:
    from rich.console import Console

    from mtbsync.cli._common import MARKERS_TABLE_ROWS, markers_table
    from mtbsync.plot import plot_alignment

    warp = _warps()[0]
    lo, hi = warp.ref_range
    times = np.random.default_rng(5).uniform(lo - 1, hi + 1, 20_000).tolist()
    out = transfer_markers([Marker(f"m{k}", t) for k, t in enumerate(times)], warp)
    png = plot_alignment(tmp_path / "alignment.png", pairs=[], warp=warp, markers=out)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    console = Console(record=True, width=100)
    console.print(markers_table(out))
    text = console.export_text()
    assert f"... and {len(out) - MARKERS_TABLE_ROWS:,} more markers, in the markers CSV" in text
    assert "m0 " in text and f"m{MARKERS_TABLE_ROWS} " not in text
