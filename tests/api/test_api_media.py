"""Videos over HTTP with Range requests (seeking in the browser)."""

from __future__ import annotations

import httpx


def test_full_download_is_the_file(base_url: str, sample_pair) -> None:
    response = httpx.get(f"{base_url}/api/media/new")
    assert response.status_code == 200
    assert response.headers["content-type"] == "video/mp4"
    assert response.headers["accept-ranges"] == "bytes"
    assert response.content == sample_pair.new.read_bytes()


def test_range_request_gives_partial_content(base_url: str, sample_pair) -> None:
    data = sample_pair.reference.read_bytes()
    response = httpx.get(f"{base_url}/api/media/reference", headers={"Range": "bytes=1000-1999"})
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes 1000-1999/{len(data)}"
    assert response.content == data[1000:2000]
    tail = httpx.get(f"{base_url}/api/media/reference", headers={"Range": "bytes=-500"})
    assert tail.status_code == 206
    assert tail.content == data[-500:]


def test_unsatisfiable_range_is_416(base_url: str, sample_pair) -> None:
    size = sample_pair.new.stat().st_size
    response = httpx.get(f"{base_url}/api/media/new", headers={"Range": f"bytes={size + 10}-{size + 20}"})
    assert response.status_code == 416


def test_unknown_media_is_404(base_url: str) -> None:
    response = httpx.get(f"{base_url}/api/media/secret")
    assert response.status_code == 404
    assert response.json()["error"] == "NotFoundError"
