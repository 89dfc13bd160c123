"""The FastAPI application: ``create_app(platform)``; routes live in ``api/routers``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI

import meter2cash
from meter2cash.api.deps import require_api_key
from meter2cash.api.errors import install_error_handlers, responses
from meter2cash.api.routers import (
    accounts,
    agreements,
    bills,
    commands,
    events,
    health,
    hes,
    masterdata,
    meters,
    network,
    orders,
    payments,
    readings,
    service_points,
    usage,
    vee,
    wallets,
)
from meter2cash.api.schemas import tailor_openapi
from meter2cash.bootstrap import Platform, bootstrap
from meter2cash.config import Settings

PREFIX = "/api/v1"

log = logging.getLogger(__name__)


def start_warnings(settings: Settings) -> list[str]:
    """What a server started with ``settings`` should warn about (development only: anywhere
    else these settings are refused)."""
    return [f"WARNING (M2C_ENVIRONMENT=development): {p}" for p in settings.security_problems()]


DOCS_STATIC = "/static/docs"


def install_local_docs(app: FastAPI) -> None:
    """Serve the OpenAPI pages (/docs, /redoc) from packaged assets, not from a CDN.

    Utility networks are often closed; the API's documentation must work inside them. The
    Swagger UI and ReDoc bundles come with the ``fastapi-offline`` package.
    """
    from pathlib import Path

    import fastapi_offline
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles

    assets = Path(fastapi_offline.__file__).parent / "static"
    app.mount(DOCS_STATIC, StaticFiles(directory=assets), name="docs-static")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title="meter2cash API",
            swagger_js_url=f"{DOCS_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_STATIC}/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title="meter2cash API",
            redoc_js_url=f"{DOCS_STATIC}/redoc.standalone.js",
            redoc_favicon_url=f"{DOCS_STATIC}/favicon.png",
            with_google_fonts=False,
        )


def create_app(platform: Platform | None = None) -> FastAPI:
    """The API over ``platform``; without one, bootstrap from settings (refuses an unmigrated database).

    A platform created here is disposed when the application shuts down; a given one is not.
    """
    owned = platform is None
    platform = platform or bootstrap()
    try:
        platform.settings.check_safe()  # also settings changed with model_copy, which skips validation
    except Exception:
        if owned:
            platform.dispose()
        raise

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for warning in start_warnings(platform.settings):
            log.warning(warning)
        yield
        if owned:
            platform.dispose()

    app = FastAPI(
        title="meter2cash",
        version=meter2cash.__version__,
        description="Meter data management and billing: master data, readings, bills.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    install_local_docs(app)
    app.state.platform = platform
    install_error_handlers(app)
    app.include_router(health.router, prefix=PREFIX)
    protected = APIRouter(
        prefix=PREFIX, dependencies=[Depends(require_api_key)], responses=responses(401, 422)
    )
    for module in (
        accounts,
        service_points,
        meters,
        readings,
        bills,
        masterdata,
        payments,
        wallets,
        vee,
        commands,
        orders,
    ):
        protected.include_router(module.router)
    protected.include_router(agreements.router)
    protected.include_router(hes.router)
    protected.include_router(usage.router)
    protected.include_router(usage.upload_router)
    protected.include_router(events.router)
    protected.include_router(network.router)
    app.include_router(payments.public_router, prefix=PREFIX)
    app.include_router(protected)
    currency = platform.settings.currency

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = tailor_openapi(FastAPI.openapi(app), currency)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
