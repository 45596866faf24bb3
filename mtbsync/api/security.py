"""Who may do what: the write token, loopback host checks and request-size limits.

- The server binds 127.0.0.1 unless told otherwise; binding another address needs a token (one is
  generated and printed when none is given).
- There is always a token, and every write endpoint requires it (``Authorization: Bearer T``), so a
  web page from elsewhere cannot edit markers through the user's browser (cross-site requests carry
  no such header).
- The dashboard gets the token from its own page: `index.html` embeds it only for a client on the
  loopback interface of a loopback-bound server (the user's own browser). Others open the printed
  URL ``http://HOST:PORT/#token=T``: the fragment never leaves the browser, which keeps it in
  localStorage.
- A loopback-bound server answers only requests whose Host header is a loopback name, which defeats
  DNS rebinding (a foreign page resolving its own name to 127.0.0.1 to read the token).
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass
from typing import Any

MAX_BODY_BYTES = 64 * 1024
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


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


@dataclass(frozen=True)
class Security:
    """The app's security settings.

    Attributes:
        token: The write token.
        loopback_only: The server is bound to a loopback address (enables the Host check and
            embedding the token in the page for local clients).
        max_body_bytes: Largest request body accepted.
    """

    token: str
    loopback_only: bool = True
    max_body_bytes: int = MAX_BODY_BYTES


def _host_name(raw: bytes) -> str:
    host = raw.decode("latin-1").strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


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
        if self.security.loopback_only:
            host = _host_name(headers.get(b"host", b"localhost"))
            if host not in _LOOPBACK_NAMES:
                await _refuse(send, 421, "this server answers only on localhost / 127.0.0.1")
                return
        limit = self.security.max_body_bytes
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await _refuse(send, 413, f"request body over {limit} bytes")
            return
        received = 0

        async def bounded_receive() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, bounded_receive, send)
        except _TooLarge:
            await _refuse(send, 413, f"request body over {limit} bytes")


class _TooLarge(Exception):
    pass


async def _refuse(send: Any, status: int, message: str) -> None:
    import json

    body = json.dumps({"error": "refused", "detail": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
