"""``POST /readings``: ingest a reading file (JSON or CSV reading format) sent as the request body."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from meter2cash.api.deps import SessionDep
from meter2cash.api.errors import UnsupportedMediaType, error_body

router = APIRouter(tags=["readings"])

FORMATS = {"application/json": "json", "text/csv": "csv"}
BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "a reading file in the JSON or the CSV reading format (docs/formats.md)",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "text/csv": {"schema": {"type": "string"}},
        },
    }
}


@router.post("/readings", openapi_extra=BODY_DOC)
async def post_readings(request: Request, session: SessionDep, filename: str = "") -> JSONResponse:
    """Store interval, register and event reads. 200 with the result (problems listed when some
    records were rejected); 422 ``ingest.rejected`` when none was accepted; 415 for other media types."""
    from meter2cash.mdm.ingest import ingest_bytes

    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    fmt = FORMATS.get(media)
    if fmt is None:
        raise UnsupportedMediaType(f"send application/json or text/csv, not {media or 'no content type'}")
    data = await request.body()
    source = f"api:{request.client.host}" if request.client else "api"
    result = await run_in_threadpool(ingest_bytes, session, data, filename=filename, source=source, fmt=fmt)
    out = result.to_dict()
    if result.rows_total and not result.rows_accepted and not result.duplicate_file:
        body = error_body("ingest.rejected", f"none of the {result.rows_total} records was accepted", out)
        return JSONResponse(body, status_code=422)
    return JSONResponse(out)
