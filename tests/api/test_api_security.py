"""Security over real HTTP: write token, Host check, traversal and symlinks, body size."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from mtbsync.api import EventBroker, PreviewSource, create_app
from mtbsync.api.source import confine
from mtbsync.errors import NotFoundError
from mtbsync.service import ApiServer


def test_writes_need_the_token(base_url: str) -> None:
    url = f"{base_url}/api/runs/new/markers/1"
    missing = httpx.patch(url, json={"reviewed": True})
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = httpx.patch(url, json={"reviewed": True}, headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401
    anchor = httpx.post(f"{base_url}/api/runs/new/anchors", json={"t_new": 5, "t_ref": 4})
    assert anchor.status_code == 401


def test_a_foreign_host_header_is_refused(base_url: str) -> None:
    # DNS rebinding: a page served as evil.example resolving to 127.0.0.1 must not read the token.
    response = httpx.get(f"{base_url}/", headers={"Host": "evil.example:8000"})
    assert response.status_code == 421
    assert "test-token" not in response.text
    assert httpx.get(f"{base_url}/api/health", headers={"Host": "localhost:1"}).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/api/media/..%2F..%2F..%2Fetc%2Fpasswd",
        "/api/media/%2e%2e",
        "/static/../../../../etc/passwd",
        "/static/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "/api/runs/new/exports/..%2F..%2Fwarp",
    ],
)
def test_traversal_is_refused(base_url: str, path: str) -> None:
    response = httpx.get(f"{base_url}{path}")
    assert response.status_code == 404
    assert "root:" not in response.text


def test_confine_refuses_a_symlink_out_of_the_root(tmp_path: Path) -> None:
    root = tmp_path / "library"
    root.mkdir()
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    (root / "ok.mp4").write_bytes(b"x")
    os.symlink(outside, root / "link.mp4")
    assert confine(root / "ok.mp4", [root]) == (root / "ok.mp4").resolve()
    with pytest.raises(NotFoundError):
        confine(root / "link.mp4", [root])
    with pytest.raises(NotFoundError):
        confine(root / ".." / "secret.txt", [root])


def test_oversized_bodies_are_refused(base_url: str, api_token: str) -> None:
    response = httpx.patch(
        f"{base_url}/api/runs/new/markers/1",
        content=b'{"reviewed": true, "pad": "' + b"x" * 100_000 + b'"}',
        headers={"Authorization": f"Bearer {api_token}", "Content-Type": "application/json"},
    )
    assert response.status_code == 413


def test_unknown_fields_are_refused(base_url: str, api_token: str) -> None:
    response = httpx.patch(
        f"{base_url}/api/runs/new/markers/1",
        json={"t_ref": 3.0},
        headers={"Authorization": f"Bearer {api_token}"},
    )
    assert response.status_code == 422


def test_a_server_bound_beyond_loopback_keeps_the_token_out_of_the_page(
    preview_server, tmp_path: Path
) -> None:
    # As `--host 0.0.0.0` would build it (served here on loopback so the test stays local).
    source = PreviewSource(replace(preview_server.source.files, out_dir=tmp_path / "lan"))
    app = create_app(
        source, token="lan-token-456", host="0.0.0.0", broker=EventBroker(telemetry_interval_s=0)
    )
    with ApiServer(app, host="127.0.0.1", port=0) as server:
        page = httpx.get(f"{server.url}/")
        assert page.status_code == 200
        assert "lan-token-456" not in page.text
        refused = httpx.patch(f"{server.url}/api/runs/new/markers/1", json={"reviewed": True})
        assert refused.status_code == 401
