"""`Annotated` dependency aliases the routers declare: the source, the event hub, write access."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mtbsync.api.events import EventBroker
from mtbsync.api.security import Security, cross_site_reason, token_matches
from mtbsync.api.source import RunSource

# Declared so that openapi.json (and the docs' "Authorize" button) show how programs authenticate;
# the check itself is `require_write`, which also takes the dashboard's session cookie.
_bearer = HTTPBearer(auto_error=False, description="The write token that mtbsync prints at start.")

UNAUTHORIZED = (
    "this is a write: open the URL that mtbsync printed (http://HOST:PORT/#token=...) in the browser, "
    "or send the token as 'Authorization: Bearer <token>'"
)


def get_source(request: Request) -> RunSource:
    """The app's run source."""
    return request.app.state.source


def get_broker(request: Request) -> EventBroker:
    """The app's event hub."""
    return request.app.state.broker


def get_security(request: Request) -> Security:
    """The app's security settings."""
    return request.app.state.security


def can_write(request: Request) -> bool:
    """Whether the request carries the token or this server's session cookie (origin not checked)."""
    security: Security = request.app.state.security
    if token_matches(request.headers.get("authorization"), security.token):
        return True
    return security.cookie_matches(request.cookies.get(security.cookie_name))


def require_write(
    request: Request, _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """Refuse a write without the token (401), or one authorized by the cookie from another site (403).

    Programs send ``Authorization: Bearer <token>``; the dashboard sends its session cookie, which
    only counts when the request came from this origin (CSRF: cookies travel with cross-site
    requests; SameSite=Strict and this check both stop that).
    """
    security: Security = request.app.state.security
    if token_matches(request.headers.get("authorization"), security.token):
        return
    if not security.cookie_matches(request.cookies.get(security.cookie_name)):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail=UNAUTHORIZED,
            headers={"WWW-Authenticate": "Bearer"},
        )
    reason = cross_site_reason(request.headers)
    if reason is not None:
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail=reason)


SourceDep = Annotated[RunSource, Depends(get_source)]
BrokerDep = Annotated[EventBroker, Depends(get_broker)]
SecurityDep = Annotated[Security, Depends(get_security)]
WriteAccess = Depends(require_write)
