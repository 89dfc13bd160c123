"""``POST /readings``: ingest a reading file (JSON or CSV reading format) sent as the request body.

The body is read as a stream into a spooled file (memory stays at the spool's size while it
arrives), bounded by ``M2C_MAX_UPLOAD_BYTES``; a JSON body is measured for depth on the way.
"""

from __future__ import annotations

from tempfile import SpooledTemporaryFile
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from meter2cash.api.deps import PlatformDep, SessionDep
from meter2cash.api.errors import UnsupportedMediaType, error_body, responses
from meter2cash.api.limits import UploadRoute, check_no_nul, read_upload
from meter2cash.api.routers.common import length
from meter2cash.mdm.models import RawBatch

router = APIRouter(tags=["readings"], route_class=UploadRoute)

FORMATS = {"application/json": "json", "text/csv": "csv"}
#: Bytes of an upload kept in memory while it arrives; the rest goes to a temporary file.
SPOOL_BYTES = 1024 * 1024
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


@router.post(
    "/readings",
    openapi_extra=BODY_DOC,
    response_model=dict[str, Any],
    responses=responses(400, 413, 415, 422),
)
async def post_readings(
    request: Request,
    session: SessionDep,
    platform: PlatformDep,
    filename: Annotated[str, Query(max_length=length(RawBatch.filename))] = "",
) -> JSONResponse:
    """Store interval, register and event reads. 200 with the result (problems listed when some
    records were rejected); 422 ``ingest.rejected`` when none was accepted; 415 for other media
    types; 413 past ``M2C_MAX_UPLOAD_BYTES``."""
    from meter2cash.mdm.ingest import ingest_bytes

    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    fmt = FORMATS.get(media)
    if fmt is None:
        raise UnsupportedMediaType(f"send application/json or text/csv, not {media or 'no content type'}")
    with SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        await read_upload(
            request, json=fmt == "json", max_depth=platform.settings.max_json_depth, spool=spool
        )
        spool.seek(0)
        data = spool.read()
    check_no_nul(request, data, json=fmt == "json")
    source = f"api:{request.client.host}" if request.client else "api"
    result = await run_in_threadpool(ingest_bytes, session, data, filename=filename, source=source, fmt=fmt)
    out = result.to_dict()
    if result.rows_total and not result.rows_accepted and not result.duplicate_file:
        body = error_body("ingest.rejected", f"none of the {result.rows_total} records was accepted", out)
        return JSONResponse(body, status_code=422)
    return JSONResponse(out)
