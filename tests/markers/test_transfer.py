from __future__ import annotations

import numpy as np
import pytest

from mtbsync.align.warp import Warp
from mtbsync.errors import ConfigError
from mtbsync.markers import Marker, TransferSummary, transfer_markers


@pytest.fixture
def warp() -> Warp:
    return Warp(t_new=[0, 10, 20], t_ref=[5, 15, 35], confidence=[1, 0.9, 0.3])


@pytest.fixture
def stop_warp() -> Warp:
    # The new rider stops from 10 to 12 s: the reference stands still at 12 s.
    return Warp(t_new=[0, 5, 10, 12, 15], t_ref=[2, 7, 12, 12, 18], confidence=[1, 1, 1, 1, 1])


def test_placed_times_are_the_inverse_of_the_warp(warp: Warp) -> None:
    markers = [Marker(f"m{k}", t) for k, t in enumerate([5.0, 7.5, 15.0, 22.2, 35.0])]
    out = transfer_markers(markers, warp)
    for m in out:
        assert m.placed and m.t_new is not None
        assert warp.to_ref(m.t_new)[0] == pytest.approx(m.t_ref, abs=1e-6)
    assert out[0].t_new == pytest.approx(0.0, abs=1e-6)
    assert out[2].t_new == pytest.approx(10.0, abs=1e-6)
    assert out[-1].t_new == pytest.approx(20.0, abs=1e-6)


def test_confidence_is_the_warps_at_the_placed_time(warp: Warp) -> None:
    (m,) = transfer_markers([Marker("a", 25.0)], warp)
    assert m.t_new is not None
    assert m.confidence == pytest.approx(float(warp.confidence_at(m.t_new)[0]))


def test_outside_coverage_is_not_placed_with_a_reason(warp: Warp) -> None:
    before, after = transfer_markers(
        [Marker("start gate", 3.0, "red", "posts"), Marker("finish", 40.0)], warp
    )
    assert before.t_new is None and before.confidence == 0.0 and before.needs_review
    assert before.comment == "posts | not placed: before the new run's covered part (ref 5.0–35.0 s)"
    assert before.colour == "red"
    assert after.t_new is None and after.needs_review
    assert after.comment == "not placed: after the new run's covered part (ref 5.0–35.0 s)"


def test_a_stop_gives_the_first_arrival(stop_warp: Warp) -> None:
    (m,) = transfer_markers([Marker("stop sign", 12.0)], stop_warp)
    assert m.t_new == pytest.approx(10.0, abs=1e-6)
    assert not m.needs_review


def test_review_flag_follows_the_threshold(warp: Warp) -> None:
    markers = [Marker("early", 6.0, comment="keep me"), Marker("late", 33.0)]
    default = transfer_markers(markers, warp)
    assert [m.needs_review for m in default] == [False, True]
    assert default[0].comment == "keep me"
    assert default[1].comment.startswith("low confidence (0.")
    assert all(m.placed for m in default)
    assert [m.needs_review for m in transfer_markers(markers, warp, review_threshold=0.0)] == [False, False]
    assert [m.needs_review for m in transfer_markers(markers, warp, review_threshold=1.0)] == [True, True]
    # At exactly the threshold a marker does not need review (needs review means "under").
    conf = default[0].confidence
    assert not transfer_markers(markers[:1], warp, review_threshold=conf)[0].needs_review


def test_a_warp_that_is_not_ok_places_nothing(warp: Warp) -> None:
    warp.ok, warp.reason = False, "coverage 12% < 50%"
    out = transfer_markers([Marker("a", 10.0, comment="note"), Marker("b", 100.0)], warp)
    assert all(m.t_new is None and m.needs_review and m.confidence == 0.0 for m in out)
    assert out[0].comment == "note | not placed: runs not aligned (coverage 12% < 50%)"
    assert out[1].comment == "not placed: runs not aligned (coverage 12% < 50%)"


def test_an_empty_warp_places_nothing() -> None:
    (m,) = transfer_markers([Marker("a", 1.0)], Warp([], [], [], ok=False, reason="no verified pairs"))
    assert m.t_new is None and m.comment == "not placed: runs not aligned (no verified pairs)"


def test_input_order_and_duplicates_are_kept(warp: Warp) -> None:
    markers = [Marker("b", 30.0), Marker("a", 3.0), Marker("b", 6.0), Marker("c", 20.0)]
    out = transfer_markers(markers, warp)
    assert [(m.name, m.t_ref) for m in out] == [(m.name, m.t_ref) for m in markers]
    placed = [m.t_new for m in out if m.t_new is not None]
    assert np.all(np.isfinite(placed))


def test_no_markers(warp: Warp) -> None:
    assert transfer_markers([], warp) == []


def test_threshold_out_of_range(warp: Warp) -> None:
    with pytest.raises(ConfigError):
        transfer_markers([Marker("a", 6.0)], warp, review_threshold=1.5)


def test_summary(warp: Warp) -> None:
    out = transfer_markers([Marker("a", 6.0), Marker("b", 33.0), Marker("c", 1.0)], warp)
    summary = TransferSummary.of(out)
    assert summary == TransferSummary(total=3, placed=2, not_placed=1, needs_review=2)
    assert str(summary) == "placed 2 of 3 markers (2 need review)"
