"""GET, POST and DELETE /api/session: the dashboard trades the printed URL's token for a cookie."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, HTTPException, Request, Response, status

from mtbsync.api.deps import UNAUTHORIZED, SecurityDep, can_write
from mtbsync.api.errors import error_responses
from mtbsync.api.schemas import SessionIn, SessionOut
from mtbsync.api.security import token_matches

router = APIRouter(prefix="/api/session", tags=["session"])


@router.get("")
def session(request: Request) -> SessionOut:
    """Whether this client may write: the page asks, to say how to get write access when it may not."""
    return SessionOut(write=can_write(request))


@router.post("", status_code=201, responses=error_responses(401, 413, 422))
def login(
    request: Request, response: Response, security: SecurityDep, body: SessionIn | None = None
) -> SessionOut:
    """Trade the write token (``Authorization: Bearer T`` or ``{"token": T}``) for a session cookie.

    The cookie is HttpOnly (page scripts cannot read it), SameSite=Strict (the browser does not send
    it with requests from other sites) and valid for the whole server (Path=/). It is not Secure: the
    service speaks plain HTTP on 127.0.0.1, where a Secure cookie would never be sent back.
    """
    sent = body is not None and secrets.compare_digest(body.token.encode(), security.token.encode())
    if not (sent or token_matches(request.headers.get("authorization"), security.token)):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail=UNAUTHORIZED,
            headers={"WWW-Authenticate": "Bearer"},
        )
    response.set_cookie(
        security.cookie_name,
        security.cookie_value,
        path="/",
        httponly=True,
        samesite="strict",
        secure=False,
    )
    response.headers["Cache-Control"] = "no-store"
    return SessionOut(write=True)


@router.delete("", status_code=204)
def logout(security: SecurityDep) -> Response:
    """Forget this browser's session cookie."""
    response = Response(status_code=204)
    response.delete_cookie(security.cookie_name, path="/", httponly=True, samesite="strict")
    return response
