"""Typed dependencies: the platform, a session per request, the API-key check."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import APIKeyHeader
from sqlalchemy.orm import Session

from meter2cash.api.errors import Unauthorized
from meter2cash.bootstrap import Platform

MUTATIONS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key (when configured)")


def get_platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


PlatformDep = Annotated[Platform, Depends(get_platform)]


def get_session(request: Request, platform: PlatformDep) -> Iterator[Session]:
    """A session for this request; a mutation that returns normally is committed before responding."""
    with platform.sessions() as session:
        try:
            yield session
        except BaseException:
            session.rollback()
            raise
        if request.method in MUTATIONS:
            session.commit()


#: ``scope="function"``: the commit happens before the response leaves, so a failed commit is an error.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def require_api_key(platform: PlatformDep, key: Annotated[str | None, Depends(api_key_header)]) -> None:
    """When API keys are configured, the ``X-API-Key`` header must carry one of them (compared
    in constant time with every key, so the answer's timing tells nothing about the keys)."""
    settings = platform.settings
    if not settings.api_key_set:
        return
    if not key:
        raise Unauthorized("this API needs an X-API-Key header", code="auth.missing_key")
    if not settings.key_is_valid(key):
        raise Unauthorized("the X-API-Key is not valid", code="auth.invalid_key")


async def raw_body(request: Request) -> bytes:
    """The request's body as received (read bounded by the route class, ``api/limits.py``)."""
    return await request.body()


RawBody = Annotated[bytes, Depends(raw_body)]


def is_authenticated(
    platform: PlatformDep,
    key: Annotated[str | None, Header(alias="X-API-Key", description="an API key, for details")] = None,
) -> bool:
    """Whether the caller may see details: a valid key, or any caller of an API without keys
    (an optional header, not a security requirement: anyone may ask)."""
    settings = platform.settings
    return not settings.api_key_set or (bool(key) and settings.key_is_valid(key or ""))
