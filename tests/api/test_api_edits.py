"""Edits over real HTTP: moving and reviewing markers, anchors that refit the warp, persistence."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import pytest

from mtbsync.align.warp import load_warp
from mtbsync.api import PreviewSource
from mtbsync.markers import read_new_markers


def _auth(api_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token}"}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _placed(base_url: str) -> list[dict]:
    markers = httpx.get(f"{base_url}/api/runs/new/markers").json()["markers"]
    return [m for m in markers if m["t_new"] is not None and not m["moved"]]


def test_marker_move_persists_and_inputs_stay_untouched(
    base_url: str, api_token: str, preview_server, sample_pair
) -> None:
    inputs = [sample_pair.reference_markers_csv, preview_server.warp_path, sample_pair.new]
    before = [_digest(p) for p in inputs]
    marker = _placed(base_url)[0]
    target = round(marker["t_new"] + 0.2, 3)
    response = httpx.patch(
        f"{base_url}/api/runs/new/markers/{marker['id']}", json={"t_new": target}, headers=_auth(api_token)
    )
    assert response.status_code == 200, response.text
    moved = response.json()
    assert moved["t_new"] == pytest.approx(target)
    assert moved["moved"] and moved["reviewed"] and not moved["needs_review"]
    # Read back over HTTP, from the markers file and from the review state.
    again = httpx.get(f"{base_url}/api/runs/new/markers").json()["markers"][marker["id"]]
    assert again["t_new"] == pytest.approx(target)
    csv_markers = read_new_markers(preview_server.out_dir / "reviewed_markers.csv")
    assert csv_markers[marker["id"]].t_new == pytest.approx(target)
    state = json.loads((preview_server.out_dir / "review.json").read_text())
    assert state["markers"][marker["id"]]["t_new"] == pytest.approx(target)
    assert [_digest(p) for p in inputs] == before


def test_review_flag_round_trips(base_url: str, api_token: str) -> None:
    marker = httpx.get(f"{base_url}/api/runs/new/markers").json()["markers"][-1]
    url = f"{base_url}/api/runs/new/markers/{marker['id']}"
    assert httpx.patch(url, json={"reviewed": True}, headers=_auth(api_token)).json()["reviewed"] is True
    assert httpx.patch(url, json={"reviewed": False}, headers=_auth(api_token)).json()["reviewed"] is False


def test_anchor_pins_the_warp_and_retransfers(base_url: str, api_token: str, preview_server) -> None:
    source = preview_server.source
    moved_before = {
        m["id"]: m["t_new"]
        for m in httpx.get(f"{base_url}/api/runs/new/markers").json()["markers"]
        if m["moved"]
    }
    free = _placed(base_url)[-1]
    # Pin the warp 0.3 s off where it says this marker's place is: the marker must follow.
    t_new = float(free["t_new"]) + 0.3
    response = httpx.post(
        f"{base_url}/api/runs/new/anchors",
        json={"t_new": t_new, "t_ref": free["t_ref"]},
        headers=_auth(api_token),
    )
    assert response.status_code == 201, response.text  # an anchor added
    body = response.json()
    assert any(a["t_new"] == pytest.approx(t_new) for a in body["anchors"])
    assert float(source.warp.to_ref(t_new)[0]) == pytest.approx(free["t_ref"], abs=1e-6)
    after = httpx.get(f"{base_url}/api/runs/new/markers").json()["markers"]
    assert after[free["id"]]["t_new"] == pytest.approx(t_new, abs=2e-3)
    for marker_id, t in moved_before.items():  # placed by hand: kept where the user put it
        assert after[marker_id]["t_new"] == pytest.approx(t)
    saved = load_warp(preview_server.out_dir / "reviewed_warp.npz")
    assert float(saved.to_ref(t_new)[0]) == pytest.approx(free["t_ref"], abs=1e-6)
    assert np.all(np.diff(saved.t_ref) >= 0)


def test_a_new_session_resumes_the_review(preview_server, base_url: str) -> None:
    resumed = PreviewSource(preview_server.source.files)
    live = httpx.get(f"{base_url}/api/runs/new/markers").json()["markers"]
    assert [m.t_new for m in resumed.markers("new").markers] == [m["t_new"] for m in live]
    assert resumed.anchors == preview_server.source.anchors


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/api/runs/new/markers/999", {"reviewed": True}, 404),
        ("/api/runs/reference/markers/0", {"reviewed": True}, 409),
        ("/api/runs/new/markers/0", {"t_new": 99999.0}, 400),
        ("/api/runs/new/markers/0", {"t_new": -1.0}, 422),
        ("/api/runs/new/markers/0", {"t_new": "soon"}, 422),
    ],
)
def test_bad_edits_are_one_line_errors(
    base_url: str, api_token: str, path: str, body: dict, status: int
) -> None:
    response = httpx.patch(f"{base_url}{path}", json=body, headers=_auth(api_token))
    assert response.status_code == status
    assert response.json()["detail"] and "\n" not in response.json()["detail"]


def test_an_anchor_past_the_video_end_is_400(base_url: str, api_token: str) -> None:
    response = httpx.post(
        f"{base_url}/api/runs/new/anchors", json={"t_new": 5000, "t_ref": 1}, headers=_auth(api_token)
    )
    assert response.status_code == 400
    assert "past the end" in response.json()["detail"]


def test_output_folder_may_not_overwrite_an_input(preview_server, tmp_path: Path) -> None:
    from mtbsync.errors import ConfigError

    clash = tmp_path / "review.json"
    clash.write_text("{}")
    files = replace(preview_server.source.files, out_dir=tmp_path, new_markers=None, reference_markers=clash)
    with pytest.raises(ConfigError, match="overwrite"):
        PreviewSource(files)
