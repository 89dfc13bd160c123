"""``GET /health``: liveness for anyone; version and schema revisions for authenticated callers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

import meter2cash
from meter2cash.api.deps import PlatformDep, is_authenticated
from meter2cash.api.limits import LimitedRoute
from meter2cash.api.schemas import Health, HealthDetail
from meter2cash.db import current_revision, head_revision

router = APIRouter(tags=["health"], route_class=LimitedRoute)


@router.get("/health", response_model=Health | HealthDetail)
def health(platform: PlatformDep, detailed: Annotated[bool, Depends(is_authenticated)]) -> Health:
    """``{"status": "ok"}`` while the server is up. With a valid ``X-API-Key`` (or on an API
    without keys) also the version, the database kind and its schema revision against the
    code's: ``status`` is then ``not_migrated`` when they differ. Nothing else is told to
    anonymous callers."""
    if not detailed:
        return Health(status="ok")
    revision, head = current_revision(platform.engine), head_revision()
    return HealthDetail(
        status="ok" if revision == head else "not_migrated",
        version=meter2cash.__version__,
        database=platform.engine.dialect.name,
        database_revision=revision,
        code_revision=head,
    )
