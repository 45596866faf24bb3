"""Two runs of one trail through `mtbsync serve`: the second is aligned to the first and gets its markers.

The generated sample pair is copied into the library under GoPro names, one run after the other; the
reference markers are added to the first run (the trail's reference) through the catalog, as
``mtbsync trail`` would. Then the dashboard's edits (move a marker, pin an anchor) go through the
API and are checked in the catalog.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from test_serve_library import settled_runs, wait_for
from web_fixtures import open_run_page

TOKEN = "serve-align-token-1"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _sql(url: str, sql: str) -> list[list[Any]]:
    response = httpx.post(f"{url}/api/sql", json={"sql": sql})
    assert response.status_code == 200, response.text
    return response.json()["rows"]


@pytest.fixture(scope="module")
def trail(sample_pair, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The service after both runs were processed: url, ids and the service."""
    from mtbsync.markers import read_reference_markers
    from mtbsync.service import LibraryService
    from mtbsync.store.catalog import MarkerRow

    work = tmp_path_factory.mktemp("serve_alignment")
    library = work / "library"
    (library / "DCIM" / "100GOPRO").mkdir(parents=True)
    service = LibraryService(
        library, db=work / "catalog.duckdb", port=0, token=TOKEN, settle_s=0.3, telemetry_interval_s=0
    ).start()
    try:
        shutil.copy(sample_pair.reference, library / "DCIM" / "100GOPRO" / "GX010001.MP4")
        (ref,) = wait_for(lambda: settled_runs(service.url, 1), timeout=120, what="the reference run")
        assert ref["state"] == "ready" and ref["is_reference"], ref
        markers = read_reference_markers(sample_pair.reference_markers_csv)
        service.catalog.record_markers(
            int(ref["id"]),
            [MarkerRow(m.name, m.t_ref, colour=m.colour, comment=m.comment) for m in markers],
            source="manual",
        )
        shutil.copy(sample_pair.new, library / "DCIM" / "100GOPRO" / "GX010002.MP4")
        runs = wait_for(lambda: settled_runs(service.url, 2), timeout=240, what="the second run")
        new = next(r for r in runs if r["name"] == "GX010002")
        yield {"url": service.url, "ref": ref, "new": new, "markers": markers, "service": service}
    finally:
        service.stop()


def test_the_second_run_is_aligned_to_the_first_and_gets_its_markers(trail, sample_pair) -> None:
    url, ref, new = trail["url"], trail["ref"], trail["new"]
    assert new["trail"] == ref["trail"] and new["reference_id"] == ref["id"]
    assert new["state"] in {"ready", "needs review"}, new
    alignment = httpx.get(f"{url}/api/runs/{new['id']}/alignment").json()
    assert alignment["ok"] is True and alignment["coverage"] > 0.5
    # The warp agrees with the generated truth.
    with open(sample_pair.truth_csv, newline="") as fh:
        truth = np.array([(float(r["t_new"]), float(r["t_ref"])) for r in csv.DictReader(fh)])
    forward = alignment["forward"]
    inside = (truth[:, 0] >= forward["t_new"][0]) & (truth[:, 0] <= forward["t_new"][-1])
    predicted = np.interp(truth[inside, 0], forward["t_new"], forward["t_ref"])
    assert np.median(np.abs(predicted - truth[inside, 1])) < 0.1
    body = httpx.get(f"{url}/api/runs/{new['id']}/markers").json()
    names = [m.name for m in trail["markers"]]
    assert sorted(m["name"] for m in body["markers"]) == sorted(names)
    assert sum(m["t_new"] is not None for m in body["markers"]) >= len(names) - 1
    assert sorted(m["name"] for m in body["reference_markers"]) == sorted(names)
    assert body["splits"]
    stages = {s for (s,) in _sql(url, f"SELECT DISTINCT stage FROM stage_timings WHERE run_id = {new['id']}")}
    assert {"proxy", "match", "transfer"} <= stages or {"proxy", "transfer"} <= stages, stages


def test_a_moved_marker_is_persisted_and_survives_an_anchor(trail) -> None:
    url, new = trail["url"], trail["new"]
    markers = httpx.get(f"{url}/api/runs/{new['id']}/markers").json()["markers"]
    moved = next(m for m in markers if m["t_new"] is not None)
    target = round(moved["t_new"] + 0.2, 4)
    response = httpx.patch(
        f"{url}/api/runs/{new['id']}/markers/{moved['id']}", json={"t_new": target}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    assert response.json()["moved"] is True
    rows = _sql(url, f"SELECT t, moved_by_user, review_state FROM markers WHERE marker_id = {moved['id']}")
    assert rows == [[pytest.approx(target), True, "reviewed"]]

    before = httpx.get(f"{url}/api/runs/{new['id']}/alignment").json()
    t_new = 5.0
    t_ref = float(np.interp(t_new, before["forward"]["t_new"], before["forward"]["t_ref"])) + 0.15
    pinned = httpx.post(
        f"{url}/api/runs/{new['id']}/anchors", json={"t_new": t_new, "t_ref": t_ref}, headers=AUTH
    )
    assert pinned.status_code == 201, pinned.text  # an anchor added
    body = pinned.json()
    assert body["anchors"] == [{"t_new": t_new, "t_ref": pytest.approx(t_ref)}]
    assert float(np.interp(t_new, body["forward"]["t_new"], body["forward"]["t_ref"])) == pytest.approx(
        t_ref, abs=0.01
    )
    # Recorded as the run's newest alignment, with the anchor in its parameters and its own warp file.
    (params, warp_path), *_ = _sql(
        url,
        f"SELECT params, warp_path FROM alignments WHERE new_run_id = {new['id']} ORDER BY alignment_id DESC",
    )
    assert "anchors" in params and warp_path.endswith("pinned_warp.npz")
    after = {m["name"]: m for m in httpx.get(f"{url}/api/runs/{new['id']}/markers").json()["markers"]}
    assert after[moved["name"]]["t_new"] == pytest.approx(target)  # hand-moved: kept where the user put it
    assert after[moved["name"]]["moved"] is True


def test_edits_need_the_token_and_the_reference_cannot_be_pinned(trail) -> None:
    url, ref, new = trail["url"], trail["ref"], trail["new"]
    marker = httpx.get(f"{url}/api/runs/{new['id']}/markers").json()["markers"][0]
    anonymous = httpx.patch(f"{url}/api/runs/{new['id']}/markers/{marker['id']}", json={"reviewed": True})
    assert anonymous.status_code == 401
    refused = httpx.post(f"{url}/api/runs/{ref['id']}/anchors", json={"t_new": 1, "t_ref": 1}, headers=AUTH)
    assert refused.status_code == 409
    export = httpx.get(f"{url}/api/runs/{new['id']}/exports/edl")
    assert export.status_code == 200 and export.text.count("LOC:") >= 3


@pytest.mark.browser
def test_the_dashboard_shows_the_library_and_keeps_the_players_in_step(trail, chromium) -> None:
    url, ref, new = trail["url"], trail["ref"], trail["new"]
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"{url}/")
        page.wait_for_selector(f"#runs-table tbody tr[data-run='{new['id']}']")
        row = page.inner_text(f"#runs-table tbody tr[data-run='{new['id']}']")
        assert "GX010002" in row and any(s in row for s in ("ready", "needs review"))
        assert "GX010001" in page.inner_text(f"#runs-table tbody tr[data-run='{ref['id']}']")
        open_run_page(page, url, new["id"])
        page.evaluate("document.getElementById('video-new').currentTime = 8.0")
        page.wait_for_function(
            "Math.abs(document.getElementById('video-ref').currentTime - window.mtbsync.toRef(8.0)) < 1e-3"
        )
        alignment = httpx.get(f"{url}/api/runs/{new['id']}/alignment").json()
        expected = float(np.interp(8.0, alignment["forward"]["t_new"], alignment["forward"]["t_ref"]))
        assert abs(page.evaluate("document.getElementById('video-ref').currentTime") - expected) < 1 / 30
        assert errors == []
    finally:
        context.close()
