"""Every API error is ``{"error": {"code", "message", "data"}}`` with a stable dotted code."""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute, Session
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from meter2cash.core.errors import M2CError, NotFound

log = logging.getLogger(__name__)

HTTP_CODES = {
    400: "api.bad_request",
    401: "api.unauthorized",
    404: "api.not_found",
    405: "api.method_not_allowed",
    413: "api.payload_too_large",
    415: "api.unsupported_media_type",
}


#: The JSON schema of every error answer (always JSON, also on routes that answer HTML or PDF).
ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "data"],
            "properties": {
                "code": {"type": "string", "description": "stable dotted code, e.g. account.not_found"},
                "message": {"type": "string"},
                "data": {"type": "object", "description": "what the code is about, JSON values"},
            },
        }
    },
}


#: What each error status means in the OpenAPI description.
ERROR_DESCRIPTIONS = {
    400: "a malformed request: a file that cannot be read as a whole (ingest.bad_file), a webhook "
    "without a valid signature (gateway.*)",
    401: "the X-API-Key header is missing or not valid (auth.missing_key, auth.invalid_key)",
    403: "the role may not do this (order.role_forbidden)",
    404: "the resource does not exist (<entity>.not_found)",
    409: "the request conflicts with stored data",
    413: "the body is larger than this route accepts (api.payload_too_large)",
    415: "the body's content type is not accepted (api.unsupported_media_type)",
    422: "the request fails validation (api.invalid_request with data.errors, input.too_deep, or a "
    "service's code)",
    502: "the payment gateway is unreachable or refused (gateway.*)",
    503: "a feature that is switched off or a database that is not migrated",
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` declaring the error answers ``statuses`` (JSON, :data:`ERROR_SCHEMA`)."""
    return {
        s: {
            "description": ERROR_DESCRIPTIONS[s],
            "content": {"application/json": {"schema": ERROR_SCHEMA}},
        }
        for s in statuses
    }


class Unauthorized(M2CError):
    code = "auth.invalid_key"
    http_status = 401


class UnsupportedMediaType(M2CError):
    code = "api.unsupported_media_type"
    http_status = 415


class PayloadTooLarge(M2CError):
    code = "api.payload_too_large"
    http_status = 413


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


def error_response(
    status: int,
    code: str,
    message: str,
    data: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    headers = {**(headers or {}), **({"WWW-Authenticate": "X-API-Key"} if status == 401 else {})}
    return JSONResponse(error_body(code, message, data), status_code=status, headers=headers or None)


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


def method_index(paths: dict[str, dict[str, Any]]) -> list[tuple[re.Pattern[str], frozenset[str]]]:
    """Each OpenAPI path template as a pattern with the methods declared on it."""
    return [(compile_path(path)[0], frozenset(m.upper() for m in item)) for path, item in paths.items()]


def allowed_methods(request: Request) -> str:
    """The methods of the resource at the request's path (FastAPI makes one route per method, so
    Starlette's ``Allow`` names only the one route it matched)."""
    index = getattr(request.app.state, "method_index", None)
    if index is None:
        index = request.app.state.method_index = method_index(request.app.openapi()["paths"])
    path = request.url.path
    return ", ".join(sorted({m for pattern, methods in index if pattern.match(path) for m in methods}))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = HTTP_CODES.get(exc.status_code, f"api.http_{exc.status_code}")
    # the headers carry meaning: ``Allow`` on a 405 lists the methods of the resource
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = allowed_methods(request) or headers.get("Allow", "")
    return error_response(exc.status_code, code, str(exc.detail), headers=headers)


async def _internal_error(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error in the API", exc_info=exc)
    return error_response(500, "api.internal_error", "internal error; see the server log")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(M2CError, _m2c_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)
