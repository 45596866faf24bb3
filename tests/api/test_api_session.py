"""The write token over real HTTP: never in what is served without auth, traded for a cookie, CSRF.

The page gets no token from the server: ``mtbsync serve`` prints ``http://HOST:PORT/#token=T`` and the
page trades the fragment for an HttpOnly, SameSite=Strict session cookie (``POST /api/session``).
Writes take that cookie (from this origin only) or ``Authorization: Bearer T``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from web_fixtures import PreviewServer, start_preview_server

from mtbsync.api.app import DOCS_STATIC, dashboard_dir, docs_assets_dir
from mtbsync.api.security import Security, loopback_host

TOKEN = "Sess10nTok3n-9f3aQ"


@pytest.fixture(scope="module")
def server(sample_pair, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PreviewServer]:
    """A server of this module's own (its writes do not meet the other API tests')."""
    with start_preview_server(sample_pair, tmp_path_factory.mktemp("session"), token=TOKEN) as served:
        yield served


def _bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextmanager
def _logged_in(url: str) -> Iterator[httpx.Client]:
    """A client that traded the token for the session cookie (and sends only the cookie after)."""
    with httpx.Client(base_url=url, timeout=10) as client:
        response = client.post("/api/session", headers=_bearer())
        assert response.status_code == 201, response.text
        yield client


def _is_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail"} and body["detail"] and "\n" not in body["detail"]


def test_nothing_served_without_auth_contains_the_token(server: PreviewServer) -> None:
    paths = ["/", "/docs", "/openapi.json", "/api/session", "/api/health", "/api/runs"]
    paths += [f"/static/{p.name}" for p in sorted(dashboard_dir().iterdir()) if p.is_file()]
    paths += [f"{DOCS_STATIC}/{p.name}" for p in sorted(docs_assets_dir().iterdir()) if p.is_file()]
    assert "/static/app.js" in paths and f"{DOCS_STATIC}/swagger-ui-bundle.js" in paths
    secret = TOKEN.encode()
    for path in paths:
        response = httpx.get(f"{server.url}{path}", timeout=10)
        assert response.status_code == 200, path
        assert secret not in response.content, path
    # Not from a foreign "origin" either (a local process, or a page after DNS rebinding).
    foreign = httpx.get(f"{server.url}/", headers={"Host": "evil.example"})
    assert foreign.status_code == 421 and secret not in foreign.content


def test_the_token_is_traded_for_an_httponly_strict_session_cookie(server: PreviewServer) -> None:
    anonymous = httpx.get(f"{server.url}/api/session")
    assert anonymous.json() == {"write": False}
    _is_error(httpx.post(f"{server.url}/api/session", headers=_bearer("wrong")), 401)
    _is_error(httpx.post(f"{server.url}/api/session"), 401)

    response = httpx.post(f"{server.url}/api/session", headers=_bearer())
    assert response.status_code == 201 and response.json() == {"write": True}
    cookie = response.headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")}
    assert "httponly" in attributes and attributes["samesite"].lower() == "samesite=strict"
    assert attributes["path"] == "Path=/" and "secure" not in attributes  # plain http on 127.0.0.1
    assert TOKEN not in cookie  # the cookie's value is derived from the token, not the token
    name, value = cookie.split(";")[0].split("=", 1)
    assert name == Security(TOKEN).cookie_name and value == Security(TOKEN).cookie_value
    # The token as a JSON body works too.
    assert httpx.post(f"{server.url}/api/session", json={"token": TOKEN}).status_code == 201
    with _logged_in(server.url) as client:
        assert client.get("/api/session").json() == {"write": True}
        assert client.delete("/api/session").status_code == 204
        assert client.get("/api/session").json() == {"write": False}


def test_the_cookie_writes_only_from_this_origin(server: PreviewServer) -> None:
    origin = server.url
    path = "/api/runs/new/markers/1"
    with _logged_in(server.url) as client:
        same = client.patch(
            path, json={"reviewed": True}, headers={"Origin": origin, "Sec-Fetch-Site": "same-origin"}
        )
        assert same.status_code == 200, same.text
        assert client.patch(path, json={"reviewed": False}, headers={"Origin": origin}).status_code == 200
        for headers in (
            {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
            {"Sec-Fetch-Site": "same-site"},
            {"Origin": "http://evil.example"},
            {"Origin": "null"},
            {"Origin": origin.replace("127.0.0.1", "localhost")},  # another origin, same machine
            {},  # neither header: not a browser, so it must send the Bearer token
        ):
            _is_error(client.patch(path, json={"reviewed": True}, headers=headers), 403)
    # Programs: the Bearer token, no Origin needed; without either: 401.
    assert httpx.patch(f"{server.url}{path}", json={"reviewed": False}, headers=_bearer()).status_code == 200
    refused = httpx.patch(f"{server.url}{path}", json={"reviewed": True}, headers={"Origin": origin})
    _is_error(refused, 401)
    assert "#token=" in refused.json()["detail"]
    assert not server.source.markers("new").markers[1].reviewed


@pytest.mark.parametrize(
    "host",
    [
        "localhost:80@evil.com",
        "localhost@evil.com",
        "user:pw@localhost",
        "evil.com#localhost",
        "evil.com?localhost",
        "evil.com/localhost",
        "127.0.0.1.evil.com",
        "localhost.evil.com",
        "localhost.",
        "evil.com:127.0.0.1",
        "localhost:0",
        "localhost:65536",
        "localhost:",
        "localhost:80:80",
        "localhost:8o",
        "localhost :80",
        "[::1]evil",
        "::1",
        "127.0.0.2",
        "0x7f000001",
        "",
    ],
)
def test_a_host_that_is_not_exactly_a_loopback_name_is_refused(server: PreviewServer, host: str) -> None:
    assert loopback_host(host.encode()) is None
    response = httpx.get(f"{server.url}/api/health", headers={"Host": host})
    _is_error(response, 421)


@pytest.mark.parametrize(
    ("host", "name"),
    [
        ("localhost", "localhost"),
        ("LOCALHOST:8000", "localhost"),
        ("127.0.0.1:1", "127.0.0.1"),
        ("[::1]:65535", "[::1]"),
    ],
)
def test_loopback_hosts_are_accepted(server: PreviewServer, host: str, name: str) -> None:
    assert loopback_host(host) == name
    assert httpx.get(f"{server.url}/api/health", headers={"Host": host}).status_code == 200
