"""Every API error is ``{"error": {"code", "message", "data"}}`` with a stable dotted code."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute, Session
from starlette.exceptions import HTTPException as StarletteHTTPException

from meter2cash.core.errors import M2CError, NotFound

log = logging.getLogger(__name__)

HTTP_CODES = {
    401: "api.unauthorized",
    404: "api.not_found",
    405: "api.method_not_allowed",
    415: "api.unsupported_media_type",
}


class Unauthorized(M2CError):
    code = "auth.invalid_key"
    http_status = 401


class UnsupportedMediaType(M2CError):
    code = "api.unsupported_media_type"
    http_status = 415


def not_found(entity: str, key: str) -> NotFound:
    """``<entity>.not_found`` for a resource that does not exist."""
    return NotFound(f"no {entity.replace('_', ' ')} {key!r}", code=f"{entity}.not_found", key=key)


def get_by_key(session: Session, column: InstrumentedAttribute[Any], key: str, entity: str) -> Any:
    """The row whose natural-key ``column`` equals ``key``, or ``<entity>.not_found``."""
    row = session.scalar(select(column.class_).where(column == key))
    if row is None:
        raise not_found(entity, key)
    return row


def error_body(code: str, message: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "data": data or {}}}


def error_response(status: int, code: str, message: str, data: dict[str, Any] | None = None) -> JSONResponse:
    headers = {"WWW-Authenticate": "X-API-Key"} if status == 401 else None
    return JSONResponse(error_body(code, message, data), status_code=status, headers=headers)


async def _m2c_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, M2CError)
    return error_response(exc.http_status, exc.code, exc.message, exc.data)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": [str(p) for p in e.get("loc", ())], "message": str(e.get("msg", "")), "type": e.get("type")}
        for e in exc.errors()
    ]
    where = ", ".join(".".join(e["loc"]) for e in errors)
    return error_response(422, "api.invalid_request", f"invalid request: {where}", {"errors": errors})


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = HTTP_CODES.get(exc.status_code, f"api.http_{exc.status_code}")
    return error_response(exc.status_code, code, str(exc.detail))


async def _internal_error(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error in the API", exc_info=exc)
    return error_response(500, "api.internal_error", "internal error; see the server log")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(M2CError, _m2c_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)
