"""The FastAPI application: ``create_app(platform)``; routes live in ``api/routers``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI

import meter2cash
from meter2cash.api.deps import require_api_key
from meter2cash.api.errors import install_error_handlers
from meter2cash.api.routers import accounts, bills, health, masterdata, meters, readings, service_points
from meter2cash.bootstrap import Platform, bootstrap

PREFIX = "/api/v1"


def create_app(platform: Platform | None = None) -> FastAPI:
    """The API over ``platform``; without one, bootstrap from settings (refuses an unmigrated database).

    A platform created here is disposed when the application shuts down; a given one is not.
    """
    owned = platform is None
    platform = platform or bootstrap()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if owned:
            platform.dispose()

    app = FastAPI(
        title="meter2cash",
        version=meter2cash.__version__,
        description="Meter data management and billing: master data, readings, bills.",
        lifespan=lifespan,
    )
    app.state.platform = platform
    install_error_handlers(app)
    app.include_router(health.router, prefix=PREFIX)
    protected = APIRouter(prefix=PREFIX, dependencies=[Depends(require_api_key)])
    for module in (accounts, service_points, meters, readings, bills, masterdata):
        protected.include_router(module.router)
    app.include_router(protected)
    return app
