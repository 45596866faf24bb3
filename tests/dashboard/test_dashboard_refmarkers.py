"""The reference player's "Add marker here": asks for a name and posts the reference frame's time."""

from __future__ import annotations

import pytest
from web_fixtures import log_in

pytestmark = pytest.mark.browser


def test_dashboard_refmarkers_add_marker_here_posts_the_reference_time(
    dashboard_page, dashboard_server
) -> None:
    page = dashboard_page
    log_in(page, dashboard_server.url, dashboard_server.token)
    page.goto(f"{dashboard_server.url}/#/run/new")
    page.wait_for_function("window.mtbsync && window.mtbsync.ready === true", timeout=15000)
    page.wait_for_function("document.getElementById('video-ref').readyState >= 1", timeout=15000)
    page.evaluate("document.getElementById('video-ref').currentTime = 4.0")
    page.wait_for_function("Math.abs(document.getElementById('video-ref').currentTime - 4.0) < 0.05")
    prompts: list[str] = []

    def answer(dialog) -> None:
        prompts.append(dialog.message)
        dialog.accept("rock garden")

    page.on("dialog", answer)

    def is_post(request) -> bool:
        return request.method == "POST" and request.url.endswith("/api/runs/reference/markers")

    with page.expect_request(is_post) as req:
        page.click("#btn-add-marker")
    body = req.value.post_data_json
    assert body["name"] == "rock garden" and abs(body["t"] - 4.0) < 0.05
    assert prompts and "reference" in prompts[0]
    # The preview's reference markers are its CSV: the answer says so in the toast.
    page.wait_for_function("document.getElementById('toast').textContent.includes('reference CSV')")
    assert page.get_attribute("#toast", "class") == "toast error"
