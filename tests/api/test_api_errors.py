"""Every error has one shape, ``{"error": code, "detail": one line}``, and openapi.json documents it.

Each kind of error is triggered over real HTTP (library errors, 401/403, 404 of routes and static
files, 405, 409, 413, 421, 422, 500) and the openapi.json of the app is walked: every operation lists
the error statuses it can answer, each with the `ErrorOut` schema; POSTs that create return 201.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import httpx

from mtbsync.api import EventBroker, PreviewSource, create_app
from mtbsync.service import ApiServer

ERROR_OUT = {"$ref": "#/components/schemas/ErrorOut"}
WRITES = {"post", "patch", "put", "delete"}


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _is_error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "detail"}, body
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["detail"], str) and body["detail"] and "\n" not in body["detail"]
    if code is not None:
        assert body["error"] == code, body
    return body


def test_openapi_documents_every_error_status_with_the_error_schema(base_url: str) -> None:
    spec = httpx.get(f"{base_url}/openapi.json").json()
    assert "HTTPValidationError" not in spec["components"]["schemas"]  # 422 is ErrorOut too
    operations = [(path, method, op) for path, ops in spec["paths"].items() for method, op in ops.items()]
    assert len(operations) >= 15
    for path, method, op in operations:
        where = f"{method.upper()} {path}"
        responses = op["responses"]
        expected = {"421"}  # the Host check answers every route
        if op.get("parameters") or op.get("requestBody"):
            expected.add("422")
        if "{" in path:
            expected.add("404")
        if op.get("requestBody"):
            expected.add("413")
        if op.get("security"):  # a write: the token or the session cookie
            expected |= {"401", "403", "413"}
        assert expected <= set(responses), (where, sorted(responses))
        errors = {status: r for status, r in responses.items() if int(status) >= 400}
        for status, response in errors.items():
            schema = response["content"]["application/json"]["schema"]
            assert schema == ERROR_OUT, (where, status)
            assert response["description"], (where, status)
    writes = {f"{m.upper()} {p}" for p, m, op in operations if op.get("security")}
    assert writes == {
        "POST /api/runs/{run_id}/anchors",
        "POST /api/runs/{run_id}/markers",
        "PATCH /api/runs/{run_id}/markers/{marker_id}",
    }
    # What creates something answers 201.
    created = {f"{m.upper()} {p}" for p, m, op in operations if "201" in op["responses"]}
    assert {
        "POST /api/runs/{run_id}/anchors",
        "POST /api/runs/{run_id}/markers",
        "POST /api/session",
    } <= created


def test_each_kind_of_error_has_the_one_shape(base_url: str, api_token: str) -> None:
    get, post, patch = httpx.get, httpx.post, httpx.patch
    auth = _auth(api_token)
    # Library errors: 404 (unknown id), 400 (a bad value), 409 (a conflicting edit).
    _is_error(get(f"{base_url}/api/runs/nope"), 404, "NotFoundError")
    _is_error(get(f"{base_url}/api/media/nope"), 404, "NotFoundError")
    _is_error(get(f"{base_url}/api/runs/new/exports/nope"), 404, "NotFoundError")
    _is_error(post(f"{base_url}/api/runs/new/anchors", json={"t_new": 5000, "t_ref": 1}, headers=auth), 400)
    conflict = post(f"{base_url}/api/runs/reference/markers", json={"name": "x", "t": 1.0}, headers=auth)
    _is_error(conflict, 409, "ConflictError")
    # HTTP errors: no route, no static file, wrong method (routes, static files, the SSE endpoint).
    assert "/api/nope" in _is_error(get(f"{base_url}/api/nope"), 404, "not found")["detail"]
    _is_error(get(f"{base_url}/static/nope.js"), 404, "not found")
    _is_error(httpx.delete(f"{base_url}/api/runs"), 405, "method not allowed")
    _is_error(post(f"{base_url}/static/app.js"), 405, "method not allowed")
    _is_error(post(f"{base_url}/api/events"), 405, "method not allowed")
    _is_error(httpx.get(f"{base_url}/api/events", headers={"Host": "evil.example"}), 421, "wrong host")
    # Auth: no token (401), the cookie from another site (403).
    _is_error(patch(f"{base_url}/api/runs/new/markers/1", json={"reviewed": True}), 401, "unauthorized")
    with httpx.Client(base_url=base_url) as browser:
        assert browser.post("/api/session", headers=auth).status_code == 201
        cross = browser.patch(
            "/api/runs/new/markers/1",
            json={"reviewed": True},
            headers={"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
        )
        _is_error(cross, 403, "forbidden")
    # Validation (422), body size (413, by header and by the bytes themselves), host (421).
    _is_error(get(f"{base_url}/api/runs/new/alignment", params={"samples": 1}), 422, "invalid request")
    _is_error(patch(f"{base_url}/api/runs/new/markers/x", json={}, headers=auth), 422, "invalid request")
    _is_error(patch(f"{base_url}/api/runs/new/markers/1", content=b"{", headers=auth), 422)
    _is_error(post(f"{base_url}/api/session", json={"token": ""}), 422)
    big = b'{"reviewed": true, "pad": "' + b"x" * 100_000 + b'"}'
    _is_error(patch(f"{base_url}/api/runs/new/markers/1", content=big, headers=auth), 413, "too large")

    def chunks():
        yield big

    streamed = patch(f"{base_url}/api/runs/new/markers/1", content=chunks(), headers=auth)
    _is_error(streamed, 413, "too large")
    _is_error(get(f"{base_url}/api/health", headers={"Host": "localhost:80@evil.com"}), 421, "wrong host")


def test_an_unexpected_failure_is_a_one_line_500(preview_server, tmp_path: Path) -> None:
    source = PreviewSource(replace(preview_server.source.files, out_dir=tmp_path / "boom"))
    app = create_app(source, token="t-500", broker=EventBroker(telemetry_interval_s=0))

    @app.get("/api/boom")
    def boom() -> None:
        raise RuntimeError("a bug with\na second line")

    with ApiServer(app, host="127.0.0.1", port=0) as server:
        body = _is_error(httpx.get(f"{server.url}/api/boom"), 500, "internal error")
    assert "RuntimeError" in body["detail"] and "second line" not in body["detail"]


def test_the_docs_load_their_assets_from_this_server(base_url: str) -> None:
    page = httpx.get(f"{base_url}/docs").text
    assets = re.findall(r"""(?:src|href)=["']([^"']+)""", page)
    assert assets and all(a.startswith("/static/swagger/") for a in assets), assets
    for asset in assets:
        assert httpx.get(f"{base_url}{asset}").status_code == 200, asset
    assert "cdn" not in page.lower()
