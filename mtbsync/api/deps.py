"""`Annotated` dependency aliases the routers declare: the source, the event hub, write access."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from mtbsync.api.events import EventBroker
from mtbsync.api.security import Security, token_matches
from mtbsync.api.source import RunSource


def get_source(request: Request) -> RunSource:
    """The app's run source."""
    return request.app.state.source


def get_broker(request: Request) -> EventBroker:
    """The app's event hub."""
    return request.app.state.broker


def get_security(request: Request) -> Security:
    """The app's security settings."""
    return request.app.state.security


def require_token(request: Request) -> None:
    """Refuse a write without ``Authorization: Bearer <token>`` (401)."""
    security: Security = request.app.state.security
    if not token_matches(request.headers.get("authorization"), security.token):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="this is a write: send the token as 'Authorization: Bearer <token>' (printed by mtbsync)",
            headers={"WWW-Authenticate": "Bearer"},
        )


SourceDep = Annotated[RunSource, Depends(get_source)]
BrokerDep = Annotated[EventBroker, Depends(get_broker)]
SecurityDep = Annotated[Security, Depends(get_security)]
WriteAccess = Depends(require_token)
