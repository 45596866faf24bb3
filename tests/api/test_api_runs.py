"""Reading endpoints over real HTTP: health, runs, alignment, OpenAPI, SQL in preview mode."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from mtbsync.align.warp import load_warp


def test_health_says_preview_mode(base_url: str) -> None:
    body = httpx.get(f"{base_url}/api/health").json()
    assert body["status"] == "ok"
    assert body["mode"] == "preview"
    assert body["runs"] == 2


def test_runs_lists_the_new_run_with_its_reference(base_url: str) -> None:
    runs = httpx.get(f"{base_url}/api/runs").json()
    new, ref = runs
    assert new["id"] == "new" and new["reference_id"] == "reference"
    assert ref["is_reference"] is True
    assert new["state"] in {"ready", "needs review"}
    assert new["media"]["codec"] == "h264"
    assert new["media"]["fps"] == pytest.approx(25.0)
    assert 0.5 < new["coverage"] <= 1.0


def test_unknown_run_is_a_one_line_404(base_url: str) -> None:
    response = httpx.get(f"{base_url}/api/runs/nope")
    assert response.status_code == 404
    body = response.json()
    assert body["error"] == "NotFoundError"
    assert "nope" in body["detail"] and "\n" not in body["detail"]


def test_alignment_samples_follow_the_warp_both_ways(base_url: str, preview_server) -> None:
    body = httpx.get(f"{base_url}/api/runs/new/alignment", params={"samples": 300}).json()
    warp = preview_server.source.warp
    t_new = np.array(body["forward"]["t_new"])
    assert len(t_new) >= 300
    assert np.allclose(body["forward"]["t_ref"], warp.to_ref(t_new), atol=2e-4)
    inv_ref = np.array(body["inverse"]["t_ref"])
    expected = warp.to_new(inv_ref)
    inside = np.isfinite(expected)  # the ends, rounded to 0.1 ms, may fall just outside the coverage
    assert inside.sum() >= len(inv_ref) - 2
    assert np.allclose(np.array(body["inverse"]["t_new"])[inside], expected[inside], atol=2e-4)
    assert np.allclose(body["forward"]["delta"], t_new - np.array(body["forward"]["t_ref"]), atol=3e-4)
    assert sum(body["histogram"]["counts"]) == len(warp.confidence)
    assert body["residuals_ms"]["p90"] == pytest.approx(31.0)
    # The truth-built warp is unsure between 6.0 and 7.5 s on purpose: that stretch is shaded.
    assert any(s <= 6.3 and e >= 7.2 for s, e in body["low_confidence"])


def test_the_source_reads_the_warp_file_it_was_given(preview_server) -> None:
    saved = load_warp(preview_server.warp_path)
    assert np.array_equal(preview_server.source.base_warp.t_new, saved.t_new)
    assert np.array_equal(preview_server.source.base_warp.t_ref, saved.t_ref)


def test_alignment_samples_are_bounded(base_url: str) -> None:
    response = httpx.get(f"{base_url}/api/runs/new/alignment", params={"samples": 10**7})
    assert response.status_code == 422
    assert "samples" in response.json()["detail"]


def test_reference_run_has_no_alignment(base_url: str) -> None:
    assert httpx.get(f"{base_url}/api/runs/reference/alignment").status_code == 404


def test_markers_list_and_splits(base_url: str) -> None:
    body = httpx.get(f"{base_url}/api/runs/new/markers").json()
    markers = body["markers"]
    assert len(markers) == len(body["reference_markers"]) >= 3
    placed = sorted((m for m in markers if m["t_new"] is not None), key=lambda m: m["t_new"])
    assert len(body["splits"]) == len(placed) - 1
    first = body["splits"][0]
    assert first["new_s"] == pytest.approx(placed[1]["t_new"] - placed[0]["t_new"], abs=2e-3)
    assert first["delta_s"] == pytest.approx(first["new_s"] - first["ref_s"], abs=2e-3)


def test_openapi_docs_are_served(base_url: str) -> None:
    assert httpx.get(f"{base_url}/docs").status_code == 200
    paths = httpx.get(f"{base_url}/openapi.json").json()["paths"]
    for path in (
        "/api/runs",
        "/api/runs/{run_id}/alignment",
        "/api/runs/{run_id}/markers/{marker_id}",
        "/api/sql",
    ):
        assert path in paths


def test_sql_in_preview_mode_is_404(base_url: str) -> None:
    response = httpx.post(f"{base_url}/api/sql", json={"sql": "SELECT 1", "max_rows": 5})
    assert response.status_code == 404
    assert "no catalog in preview mode" in response.json()["detail"]


def test_sql_is_bounded(base_url: str) -> None:
    too_long = httpx.post(f"{base_url}/api/sql", json={"sql": "SELECT 1 " + " " * 20_000})
    assert too_long.status_code == 422
    too_many = httpx.post(f"{base_url}/api/sql", json={"sql": "SELECT 1", "max_rows": 10**6})
    assert too_many.status_code == 422


def test_dashboard_page_carries_no_token(base_url: str, api_token: str) -> None:
    page = httpx.get(f"{base_url}/")
    assert page.status_code == 200
    assert api_token not in page.text and "mtbsync-token" not in page.text
    assert httpx.get(f"{base_url}/static/app.js").status_code == 200
