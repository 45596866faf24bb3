"""Who may do what: the write token, the browser's session cookie, loopback host checks, body limits.

- The server binds 127.0.0.1 unless told otherwise; binding another address needs a token (one is
  generated and printed when none is given).
- There is always a token, and every write endpoint requires it. Programs send it as
  ``Authorization: Bearer T`` (the CLI reads it from the service file).
- The browser gets it the way notebook servers hand theirs out: only in the URL that ``mtbsync
  serve`` / ``preview`` prints, ``http://HOST:PORT/#token=T``. The fragment never leaves the browser
  except in the page's one ``POST /api/session``, which trades it for an HttpOnly, SameSite=Strict
  cookie; the page then drops the fragment from the address bar and keeps no copy. Nothing served
  without auth (the page, its assets, /docs, /openapi.json) contains the token, so another local
  process or a foreign page reading ``GET /`` learns nothing.
- Cookies travel with cross-site requests, so a write authenticated by the cookie must also come
  from this origin: SameSite=Strict keeps the browser from sending it cross-site, and the server
  refuses such a write when ``Sec-Fetch-Site`` or ``Origin`` say it came from elsewhere (or when a
  browser sent neither).
- A loopback-bound server answers only requests whose Host header is exactly a loopback name with an
  optional port (`loopback_host`), which defeats DNS rebinding (a foreign page resolving its own
  name to 127.0.0.1 to talk to the service as if it were its own origin).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from mtbsync.api.errors import HTTP_ERROR_CODES

MAX_BODY_BYTES = 64 * 1024
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
# A Host header as a loopback-bound server accepts it: a loopback name, optionally ":" and a port of
# digits, and nothing else (no userinfo, path, fragment, trailing dot or extra labels).
_HOST_RE = re.compile(r"(?P<name>localhost|127\.0\.0\.1|\[::1\])(?::(?P<port>[0-9]{1,5}))?")


def new_token() -> str:
    """A fresh random token (URL-safe, 128 bits)."""
    return secrets.token_urlsafe(16)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is this machine's loopback interface."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_matches(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``token`` (constant-time comparison)."""
    if not header:
        return False
    scheme, _, value = header.partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(value.strip().encode(), token.encode())


def _derive(token: str, purpose: str) -> str:
    return hmac.new(token.encode(), f"mtbsync {purpose}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Security:
    """The app's security settings.

    Attributes:
        token: The write token.
        loopback_only: The server is bound to a loopback address (enables the Host check).
        max_body_bytes: Largest request body accepted.
    """

    token: str
    loopback_only: bool = True
    max_body_bytes: int = MAX_BODY_BYTES

    @property
    def cookie_name(self) -> str:
        """The session cookie's name.

        Cookies are per host, not per port: two services on 127.0.0.1 must not overwrite each
        other's cookie, so the name carries a tag derived from the token.
        """
        return f"mtbsync_session_{_derive(self.token, 'cookie name')[:10]}"

    @property
    def cookie_value(self) -> str:
        """The session cookie's value: derived from the token (not the token), valid as long as it is."""
        return _derive(self.token, "session")

    def cookie_matches(self, value: str | None) -> bool:
        """Whether a session cookie's value is this server's (constant-time comparison)."""
        return bool(value) and secrets.compare_digest(str(value).encode(), self.cookie_value.encode())


def loopback_host(raw: bytes | str) -> str | None:
    """The loopback name of a Host header value, or None when it is anything else.

    Strict on purpose: ``localhost:80@evil.com``, ``localhost@evil.com``, ``evil.com#localhost``,
    ``127.0.0.1.evil.com``, ``localhost.``, a bare ``::1`` and ports that are not 1-65535 are refused.

    Args:
        raw: The Host header as sent.

    Returns:
        ``localhost``, ``127.0.0.1`` or ``[::1]``; None when the header is not one of them.
    """
    text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    match = _HOST_RE.fullmatch(text.strip(" \t").lower())
    if match is None:
        return None
    port = match.group("port")
    if port is not None and not 0 < int(port) <= 65535:
        return None
    return match.group("name")


def same_origin(origin: str | None, host: str | None) -> bool:
    """Whether an ``Origin`` header names this server (``http://`` + the request's Host)."""
    if not origin or not host or origin == "null":
        return False
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host.strip().lower()


def cross_site_reason(headers: Any) -> str | None:
    """Why a cookie-authenticated write looks cross-site, or None when it came from this origin.

    Args:
        headers: The request's headers (a case-insensitive mapping).

    Returns:
        A one-line reason to refuse, or None.
    """
    fetch_site = headers.get("sec-fetch-site")
    origin = headers.get("origin")
    if fetch_site is not None and fetch_site.lower() not in ("same-origin", "none"):
        return f"a write from another site ({fetch_site}) is refused"
    if origin is not None and not same_origin(origin, headers.get("host")):
        return f"a write from another origin ({origin[:100]}) is refused"
    if fetch_site is None and origin is None:
        # Browsers send at least one of the two on a POST/PATCH; other clients use the Bearer token.
        return "a cookie-authenticated write must come from the dashboard page (or send the Bearer token)"
    return None


class GuardMiddleware:
    """Pure ASGI middleware: refuses foreign Host headers on a loopback server and oversized bodies."""

    def __init__(self, app: Any, security: Security) -> None:
        self.app = app
        self.security = security

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if self.security.loopback_only and loopback_host(headers.get(b"host", b"localhost")) is None:
            await _refuse(send, 421, "this server answers only on localhost / 127.0.0.1")
            return
        limit = self.security.max_body_bytes
        length = headers.get(b"content-length")
        if length is not None:
            # The server reads no more than Content-Length bytes: checking the header is enough.
            if not length.isdigit() or int(length) > limit:
                await _refuse(send, 413, f"request body over {limit} bytes")
                return
            await self.app(scope, receive, send)
            return
        # No length (a chunked body, or none): read it here, up to the limit, then hand it on. An
        # error raised while the app reads it would become FastAPI's 400 "error parsing the body".
        messages: list[dict[str, Any]] = []
        received = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            received += len(message.get("body", b""))
            if received > limit:
                await _refuse(send, 413, f"request body over {limit} bytes")
                return
            if not message.get("more_body", False):
                break
        buffered = iter(messages)

        async def replay() -> dict[str, Any]:
            # The buffered body first, then the connection's own messages (e.g. http.disconnect).
            return next(buffered, None) or await receive()

        await self.app(scope, replay, send)


async def _refuse(send: Any, status: int, message: str) -> None:
    # The same shape as every other error of the API: {"error": code, "detail": one line}.
    body = json.dumps({"error": HTTP_ERROR_CODES[status], "detail": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
