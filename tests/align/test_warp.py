from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mtbsync.align.warp import Warp, load_warp, save_warp, timewarp_document, write_timewarp_json
from mtbsync.errors import WarpFileError


@pytest.fixture
def warp() -> Warp:
    # New rider: 1x, then a stop (t_ref flat from 10 to 12 s of new time), then 2x.
    return Warp(
        t_new=[0.0, 5.0, 10.0, 12.0, 15.0],
        t_ref=[2.0, 7.0, 12.0, 12.0, 18.0],
        confidence=[1.0, 0.9, 0.8, 0.8, 0.4],
        metrics={"coverage_new": 1.0},
    )


def test_forward_and_inverse(warp: Warp) -> None:
    t_new = np.linspace(0, 15, 61)
    t_ref = warp.to_ref(t_new)
    assert np.all(np.diff(t_ref) >= -1e-12)
    back = warp.to_new(t_ref[t_new < 10])
    assert np.allclose(back, t_new[t_new < 10], atol=1e-6)


def test_inverse_gives_first_arrival_during_a_stop(warp: Warp) -> None:
    assert warp.to_new(12.0)[0] == pytest.approx(10.0, abs=1e-6)


def test_outside_coverage_is_nan(warp: Warp) -> None:
    assert np.isnan(warp.to_ref([-1.0, 16.0])).all()
    assert np.isnan(warp.to_new([1.0, 19.0])).all()
    assert warp.confidence_at(20.0)[0] == 0.0


def test_rejects_non_monotone_knots() -> None:
    with pytest.raises(ValueError):
        Warp([0, 1, 2], [0, 2, 1], [1, 1, 1])
    with pytest.raises(ValueError):
        Warp([0, 2, 1], [0, 1, 2], [1, 1, 1])


def test_round_trips(warp: Warp, tmp_path: Path) -> None:
    save_warp(warp, tmp_path / "warp.npz")
    loaded = load_warp(tmp_path / "warp.npz")
    assert np.array_equal(loaded.t_ref, warp.t_ref)
    assert loaded.metrics == warp.metrics
    write_timewarp_json(warp, tmp_path / "timewarp.json")
    doc = json.loads((tmp_path / "timewarp.json").read_text())
    assert doc["ok"] is True and doc["model"] == "monotone-pchip"
    assert doc["coverage"]["new"] == [0.0, 15.0]
    assert np.allclose(load_warp(tmp_path / "timewarp.json").to_ref(7.5), warp.to_ref(7.5), atol=1e-3)


def test_refuses_other_versions_and_garbage(warp: Warp, tmp_path: Path) -> None:
    doc = timewarp_document(warp)
    doc["schema_version"] = 99
    (tmp_path / "old.json").write_text(json.dumps(doc))
    with pytest.raises(WarpFileError, match="schema version 99"):
        load_warp(tmp_path / "old.json")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(WarpFileError, match="not a readable"):
        load_warp(tmp_path / "junk.npz")
    with pytest.raises(WarpFileError, match="not found"):
        load_warp(tmp_path / "missing.npz")
