"""``GET /health``: liveness, version and the database's schema revision (no API key needed)."""

from __future__ import annotations

from fastapi import APIRouter

import meter2cash
from meter2cash.api.deps import PlatformDep
from meter2cash.api.schemas import Health
from meter2cash.db import current_revision, head_revision

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
def health(platform: PlatformDep) -> Health:
    """Service status: ``ok`` when the database is at the code's newest migration."""
    revision, head = current_revision(platform.engine), head_revision()
    return Health(
        status="ok" if revision == head else "not_migrated",
        version=meter2cash.__version__,
        database=platform.engine.dialect.name,
        database_revision=revision,
        code_revision=head,
    )
