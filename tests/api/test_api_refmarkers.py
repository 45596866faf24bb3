"""POST /api/runs/{id}/markers: a marker added to a trail's reference reaches the trail's aligned runs.

A `CatalogSource` over the known catalog of tests/store (runs aligned through linear knots 0..30 s new
-> 0..31 s reference) is served on uvicorn; the preview refuses the edit with a 409.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "store"))
from store_cases import REFERENCE, build_known_catalog

TOKEN = "refmarkers-token-1"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[dict[str, Any]]:
    from mtbsync.api.app import create_app
    from mtbsync.api.catalog_source import CatalogSource
    from mtbsync.service import ApiServer
    from mtbsync.store.catalog import Catalog

    catalog = Catalog.open(tmp_path / "known.duckdb")
    ids = build_known_catalog(catalog)
    source = CatalogSource(catalog, tmp_path, cache_dir=tmp_path / "cache")
    app = create_app(source, token=TOKEN)
    server = ApiServer(app, host="127.0.0.1", port=0).start()
    # The app hands the source its publisher on start: record what it publishes from then on.
    events: list[tuple[str, dict]] = []
    publish = source._publish

    def recording(event: str, data: dict) -> None:
        events.append((event, data))
        publish(event, data)

    source.set_publisher(recording)
    try:
        yield {"url": server.url, "ids": {k: str(v) for k, v in ids.items()}, "events": events}
    finally:
        server.stop()
        catalog.close()


def test_api_refmarkers_a_marker_added_on_the_reference_reaches_the_aligned_runs(served) -> None:
    url, ids = served["url"], served["ids"]
    refused = httpx.post(f"{url}/api/runs/{ids['REF']}/markers", json={"name": "drop", "t": 20.0})
    assert refused.status_code == 401

    added = httpx.post(f"{url}/api/runs/{ids['REF']}/markers", json={"name": "drop", "t": 20.0}, headers=AUTH)
    assert added.status_code == 201, added.text
    own = {m["name"]: m["t_new"] for m in added.json()["markers"]}
    assert own == {**REFERENCE, "drop": 20.0}

    body = httpx.get(f"{url}/api/runs/{ids['RUN_A']}/markers").json()
    placed = {m["name"]: m["t_new"] for m in body["markers"]}
    assert placed["drop"] == pytest.approx(20.0 * 30 / 31, abs=1e-4)
    assert placed["gap jump"] == pytest.approx(10.0 * 30 / 31, abs=1e-4)  # re-transferred through the warp
    assert "drop" in {m["name"] for m in body["reference_markers"]}
    not_aligned = httpx.get(f"{url}/api/runs/{ids['RUN_D']}/markers").json()
    assert {m["name"]: m["t_new"] for m in not_aligned["markers"]}["drop"] is None

    notified = {data["run_id"] for event, data in served["events"] if event == "markers"}
    assert {ids["REF"], ids["RUN_A"], ids["RUN_B"], ids["RUN_C"]} <= notified


def test_api_refmarkers_bad_requests_are_refused(served) -> None:
    url, ids = served["url"], served["ids"]
    aligned = httpx.post(f"{url}/api/runs/{ids['RUN_A']}/markers", json={"name": "x", "t": 1.0}, headers=AUTH)
    assert aligned.status_code == 409 and "reference" in aligned.json()["detail"]
    for body in (
        {"name": "", "t": 1.0},
        {"name": "x", "t": -1.0},
        {"name": "x"},
        {"name": "x", "t": 1, "y": 2},
    ):
        bad = httpx.post(f"{url}/api/runs/{ids['REF']}/markers", json=body, headers=AUTH)
        assert bad.status_code == 422, (body, bad.text)
    missing = httpx.post(f"{url}/api/runs/999/markers", json={"name": "x", "t": 1.0}, headers=AUTH)
    assert missing.status_code == 404


def test_api_refmarkers_the_preview_points_to_the_reference_csv(base_url: str, api_token: str) -> None:
    response = httpx.post(
        f"{base_url}/api/runs/reference/markers",
        json={"name": "drop", "t": 1.0},
        headers={"Authorization": f"Bearer {api_token}"},
    )
    assert response.status_code == 409 and "reference CSV" in response.json()["detail"]
