"""In headless Chromium: write access from the printed URL only, players in step on load, offline docs."""

from __future__ import annotations

import pytest
from web_fixtures import log_in, open_run_page

pytestmark = pytest.mark.browser

READ_ONLY = "open the URL that mtbsync printed"


def test_the_printed_url_gives_write_access_and_the_token_does_not_stay(
    dashboard_page, dashboard_server
) -> None:
    page, token = dashboard_page, dashboard_server.token
    log_in(page, dashboard_server.url, token)
    # The fragment is gone from the address bar; the page keeps no copy a script could read.
    assert page.evaluate("location.hash") == "#/"
    assert token not in page.url
    kept = page.evaluate(
        "JSON.stringify([document.cookie, {...localStorage}, {...sessionStorage},"
        " document.documentElement.outerHTML, window.mtbsync.session])"
    )
    assert token not in kept
    assert page.evaluate("document.cookie") == ""  # the session cookie is HttpOnly
    assert page.is_hidden("#auth-note")

    # An edit from the page goes with the cookie alone (no Authorization header).
    open_run_page(page, dashboard_server.url, "new")
    marker = next(m for m in dashboard_server.source.markers("new").markers if m.t_new is not None)
    page.evaluate(f"document.getElementById('video-new').currentTime = {marker.t_new}")
    button = page.locator(f"li[data-marker='{marker.id}'] button[title='mark as checked']")
    button.wait_for(timeout=10000)
    was = marker.reviewed
    with (
        page.expect_request(lambda r: r.method == "PATCH") as request,
        page.expect_response(lambda r: r.request.method == "PATCH") as response,
    ):
        button.click()
    assert response.value.status == 200
    assert "authorization" not in request.value.all_headers()
    assert dashboard_server.source.markers("new").markers[marker.id].reviewed is (not was)
    # Undo it (the other tests of this server count the markers left to review).
    page.wait_for_function(f"window.mtbsync.markers.markers[{marker.id}].reviewed === {str(not was).lower()}")
    with page.expect_response(lambda r: r.request.method == "PATCH") as undo:
        button.click()
    assert undo.value.status == 200
    assert dashboard_server.source.markers("new").markers[marker.id].reviewed is was
    assert page.console_errors == []


def test_a_page_opened_without_the_token_cannot_write_and_says_so(dashboard_page, dashboard_server) -> None:
    page = dashboard_page
    open_run_page(page, dashboard_server.url, "new")
    note = page.locator("#auth-note")
    note.wait_for(state="visible", timeout=10000)
    assert READ_ONLY in note.inner_text() and "#token=" in note.inner_text()
    source = dashboard_server.source
    marker = next(m for m in source.markers("new").markers if m.t_new is not None)
    before = marker.t_new
    page.evaluate(f"document.getElementById('video-new').currentTime = {marker.t_new}")
    button = page.locator(f"li[data-marker='{marker.id}'] [data-nudge='1']")
    button.wait_for(timeout=10000)
    with page.expect_response(lambda r: r.request.method == "PATCH") as response:
        button.click()
    assert response.value.status == 401
    page.wait_for_function("document.getElementById('toast').textContent.includes('401')")
    assert "#token=" in page.inner_text("#toast")
    assert source.markers("new").markers[marker.id].t_new == before
    # A wrong token in the address: the page says it was not accepted.
    page.goto(f"{dashboard_server.url}/#token=not-the-token")
    page.wait_for_function("document.getElementById('auth-note').textContent.includes('not accepted')")
    assert page.evaluate("location.hash") == "#/" and not page.evaluate("window.mtbsync.session.write")


def test_the_players_are_in_step_when_the_run_page_opens(dashboard_page, dashboard_server) -> None:
    page = dashboard_page
    warp = dashboard_server.source.warp
    ref_frame = 1 / 30
    # The covered part starts 1 s into the new run, 1.5 s into the reference: the page opens there,
    # in step (before, both players sat at 0 s).
    start = float(warp.t_new[0])
    assert start > 0 and float(warp.t_ref[0]) > start + 10 * ref_frame
    open_run_page(page, dashboard_server.url, "new")
    page.wait_for_function("document.getElementById('video-ref').currentTime > 0", timeout=10000)
    page.wait_for_function(
        "!document.getElementById('video-ref').seeking && !document.getElementById('video-new').seeking",
        timeout=10000,
    )
    t_new, t_ref = page.evaluate(
        "[document.getElementById('video-new').currentTime, document.getElementById('video-ref').currentTime]"
    )
    assert t_new == pytest.approx(start, abs=1e-3)
    assert abs(t_ref - float(warp.to_ref(t_new)[0])) < ref_frame
    assert page.is_hidden("#ref-outside") and page.is_hidden("#new-outside")
    assert page.console_errors == []


def test_the_api_docs_render_with_the_network_off(dashboard_page, dashboard_server) -> None:
    page = dashboard_page
    blocked: list[str] = []

    def offline(route) -> None:
        if route.request.url.startswith(dashboard_server.url):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page.route("**/*", offline)
    page.goto(f"{dashboard_server.url}/docs")
    title = page.locator(".swagger-ui .info")
    title.wait_for(state="visible", timeout=15000)
    assert "mtbsync" in title.inner_text()
    page.locator(".opblock").first.wait_for(timeout=10000)
    assert page.locator(".opblock").count() >= 10
    assert blocked == []
    assert page.console_errors == []
