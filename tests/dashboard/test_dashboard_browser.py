"""The dashboard in a real headless Chromium: loads clean, shows runs, live events, synced players, edits."""

from __future__ import annotations

import csv
import io

import pytest
from web_fixtures import open_run_page

pytestmark = pytest.mark.browser


def test_runs_page_loads_without_console_errors_and_shows_the_run(dashboard_page, dashboard_server) -> None:
    dashboard_page.goto(f"{dashboard_server.url}/")
    dashboard_page.wait_for_selector("#runs-table tbody tr[data-run='new']")
    row = dashboard_page.inner_text("#runs-table tbody tr[data-run='new']")
    assert "new.mp4" in row
    assert any(state in row for state in ("ready", "needs review"))
    # Live events: telemetry arrives at 2 Hz in the tests; the indicator turns live.
    dashboard_page.wait_for_function("window.mtbsync.events.telemetry >= 2", timeout=10000)
    assert dashboard_page.get_attribute("#live", "data-state") == "live"
    assert dashboard_page.console_errors == []


def test_seeking_one_player_moves_the_other_through_the_warp(dashboard_page, dashboard_server) -> None:
    open_run_page(dashboard_page, dashboard_server.url, "new")
    warp = dashboard_server.source.warp
    new_frame, ref_frame = 1 / 25, 1 / 30

    dashboard_page.evaluate("document.getElementById('video-new').currentTime = 12.5")
    dashboard_page.wait_for_function(
        "Math.abs(document.getElementById('video-ref').currentTime - window.mtbsync.toRef(12.5)) < 1e-3"
    )
    t_ref = dashboard_page.evaluate("document.getElementById('video-ref').currentTime")
    assert abs(t_ref - float(warp.to_ref(12.5)[0])) < ref_frame

    dashboard_page.evaluate("document.getElementById('video-ref').currentTime = 9.0")
    dashboard_page.wait_for_function(
        "Math.abs(document.getElementById('video-new').currentTime - window.mtbsync.toNew(9.0)) < 1e-3"
    )
    t_new = dashboard_page.evaluate("document.getElementById('video-new').currentTime")
    assert abs(t_new - float(warp.to_new(9.0)[0])) < new_frame
    assert dashboard_page.console_errors == []


def test_a_marker_nudge_persists_after_reload(dashboard_page, dashboard_server) -> None:
    # Opened as the printed URL (/#token=...): the page may write, and still may after a reload.
    open_run_page(dashboard_page, dashboard_server.url, "new", token=dashboard_server.token)
    source = dashboard_server.source
    marker = next(m for m in source.markers("new").markers if m.t_new is not None)
    dashboard_page.evaluate(f"document.getElementById('video-new').currentTime = {marker.t_new}")
    button = dashboard_page.locator(f"li[data-marker='{marker.id}'] [data-nudge='1']")
    button.wait_for(timeout=10000)
    button.click()
    expected = marker.t_new + 1 / 25
    dashboard_page.wait_for_function(
        f"window.mtbsync.markers.markers[{marker.id}].t_new > {marker.t_new + 1e-3}", timeout=10000
    )
    dashboard_page.reload()
    dashboard_page.wait_for_function("window.mtbsync && window.mtbsync.ready === true", timeout=15000)
    after = dashboard_page.evaluate(f"window.mtbsync.markers.markers[{marker.id}]")
    assert after["t_new"] == pytest.approx(expected, abs=1e-3)
    assert after["moved"] is True
    assert source.markers("new").markers[marker.id].t_new == pytest.approx(expected, abs=1e-3)
    assert dashboard_page.console_errors == []


def test_an_export_downloads(dashboard_page, dashboard_server) -> None:
    open_run_page(dashboard_page, dashboard_server.url, "new")
    with dashboard_page.expect_download() as info:
        dashboard_page.click("#exports a[data-fmt='csv']")
    download = info.value
    assert download.suggested_filename.endswith(".csv")
    rows = list(csv.DictReader(io.StringIO(download.path().read_text(encoding="utf-8"))))
    placed = [m for m in dashboard_server.source.markers("new").markers if m.t_new is not None]
    assert len(rows) == len(placed)
    assert dashboard_page.console_errors == []


def test_a_run_state_change_arrives_live_in_the_runs_table(dashboard_page, dashboard_server) -> None:
    import httpx

    dashboard_page.goto(f"{dashboard_server.url}/")
    row = "#runs-table tbody tr[data-run='new']"
    dashboard_page.wait_for_selector(row)
    dashboard_page.wait_for_function("document.getElementById('live').dataset.state === 'live'")
    open_reviews = [
        m for m in dashboard_server.source.markers("new").markers if m.needs_review and not m.reviewed
    ]
    assert open_reviews, "the sample's preview should start with a marker to review"
    assert "needs review" in dashboard_page.inner_text(row)
    for marker in open_reviews:  # as another reviewer (or the CLI) would, not through this page
        response = httpx.patch(
            f"{dashboard_server.url}/api/runs/new/markers/{marker.id}",
            json={"reviewed": True},
            headers={"Authorization": f"Bearer {dashboard_server.token}"},
        )
        assert response.status_code == 200
    dashboard_page.wait_for_function(
        f"document.querySelector(\"{row} .state\").dataset.state === 'ready'", timeout=10000
    )
    assert dashboard_page.evaluate("window.mtbsync.events.run") >= 1
    assert dashboard_page.console_errors == []
