"""Determinants across the MDM–CIS boundary (docs/formats.md#determinants).

``GET /service-points/{code}/determinants`` and ``POST /service-points/determinants`` give an
external CIS our MDM's determinants; ``POST /usage/determinants`` takes an external MDM's.
"""

from __future__ import annotations

from datetime import date
from tempfile import SpooledTemporaryFile
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from meter2cash.api.deps import PlatformDep, SessionDep
from meter2cash.api.errors import UnsupportedMediaType, error_body, error_response, responses
from meter2cash.api.limits import LimitedRoute, UploadRoute, check_no_nul, read_upload
from meter2cash.api.routers.common import ServicePointCode, length
from meter2cash.api.schemas import SaneDate
from meter2cash.cis.parties.models import ServicePoint
from meter2cash.cis.tariffs.models import TariffVersion
from meter2cash.integration.determinants import MAX_SERVICE_POINTS, export_determinants
from meter2cash.mdm.usage.format import FORMAT, DeterminantRecord
from meter2cash.mdm.usage.port import UsageSource

router = APIRouter(tags=["usage"], route_class=LimitedRoute)
upload_router = APIRouter(tags=["usage"], route_class=UploadRoute)

#: Bytes of a delivery kept in memory while it arrives; the rest goes to a temporary file.
SPOOL_BYTES = 1024 * 1024
Code = Annotated[str, Field(min_length=1, max_length=length(ServicePoint.code))]
TariffCode = Annotated[str, Field(min_length=1, max_length=length(TariffVersion.code))]


def local_usage(session: SessionDep) -> UsageSource:
    """This platform's MDM: the measurement store, whatever source billing reads."""
    from meter2cash.mdm.usage.local import LocalUsage

    return LocalUsage(session)


LocalSource = Annotated[UsageSource, Depends(local_usage)]


class ExportProblem(BaseModel):
    service_point: str
    code: str = Field(description="service_point.not_found, usage.no_meter, usage.interval_mismatch")
    message: str


class DeterminantsDocument(BaseModel):
    """A determinants document (docs/formats.md#determinants) with the service points asked for
    that have no record."""

    format: str = Field(FORMAT, description=f"always {FORMAT}")
    source: str
    timezone: str = Field(description="IANA zone of the records' local days")
    determinants: list[DeterminantRecord]
    problems: list[ExportProblem] = Field(default_factory=list)


class ExportIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    service_points: list[Code] = Field(min_length=1, max_length=MAX_SERVICE_POINTS)
    from_: SaneDate = Field(alias="from", description="first local day")
    to: SaneDate = Field(description="last local day (inclusive)")
    tariff: TariffCode | None = Field(
        None, description="the tariff whose TOU calendar and demand interval apply"
    )


def _export(
    session: Session,
    source: UsageSource,
    codes: list[str],
    first: date,
    last: date,
    tz: str,
    tariff: str | None,
) -> dict[str, Any]:
    return export_determinants(session, source, codes, first, last, tz=tz, tariff=tariff).to_dict()


@router.get(
    "/service-points/{code}/determinants",
    response_model=DeterminantsDocument,
    responses=responses(404),
)
async def get_determinants(
    code: ServicePointCode,
    session: SessionDep,
    platform: PlatformDep,
    source: LocalSource,
    from_: Annotated[SaneDate, Query(alias="from", description="first local day")],
    to: Annotated[SaneDate, Query(description="last local day (inclusive)")],
    tariff: Annotated[
        str | None, Query(min_length=1, max_length=length(TariffVersion.code), description="a tariff code")
    ] = None,
) -> Any:
    """Our MDM's determinants of one service point over local days (one record). 404
    ``service_point.not_found`` or ``tariff.not_found``; 422 ``usage.bad_days`` or the reason
    the service point has none (``usage.no_meter``, ``usage.interval_mismatch``)."""
    tz = platform.settings.timezone
    out = await run_in_threadpool(_export, session, source, [code], from_, to, tz, tariff)
    if out["problems"]:
        p = out["problems"][0]
        status = 404 if p["code"].endswith(".not_found") else 422
        return error_response(status, p["code"], p["message"], {"service_point": code})
    return out


@router.post(
    "/service-points/determinants",
    response_model=DeterminantsDocument,
    responses=responses(404),
)
async def post_determinants_export(
    body: ExportIn, session: SessionDep, platform: PlatformDep, source: LocalSource
) -> Any:
    """Our MDM's determinants of up to 1,000 service points over the same local days: one
    record per service point, and in ``problems`` each service point without one. 404
    ``tariff.not_found``; 422 ``usage.bad_days``, or a list longer than 1,000 (ask in pages)."""
    tz = platform.settings.timezone
    return await run_in_threadpool(
        _export, session, source, body.service_points, body.from_, body.to, tz, body.tariff
    )


BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "a determinants document (docs/formats.md#determinants)",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


class DeliveryOut(BaseModel):
    source: str
    records: int
    accepted: int
    refused: int
    outcomes: dict[str, int] = Field(
        description="accepted records by outcome: new, replaced, unchanged, restored"
    )
    results: list[dict[str, Any]] = Field(
        description="each accepted record: index, service_point, days, outcome"
    )
    problems: list[dict[str, Any]] = Field(
        description="each refused record: code, message, line (index), field"
    )


@upload_router.post(
    "/usage/determinants",
    openapi_extra=BODY_DOC,
    response_model=DeliveryOut,
    responses=responses(413, 415),
)
async def post_delivery(request: Request, session: SessionDep, platform: PlatformDep) -> Any:
    """An external MDM delivers determinants. 200 with what was accepted and what was refused
    per record; 422 ``usage.rejected`` when no record was accepted, ``usage.bad_document`` when
    the body is no determinants document; 413 past ``M2C_MAX_UPLOAD_BYTES``."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        raise UnsupportedMediaType(f"send application/json, not {media or 'no content type'}")
    with SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        await read_upload(request, json=True, max_depth=platform.settings.max_json_depth, spool=spool)
        spool.seek(0)
        data = spool.read()
    check_no_nul(request, data, json=True)
    by = f"api:{request.client.host}" if request.client else "api"
    out = await run_in_threadpool(_deliver, session, data, platform.settings.max_json_depth, by)
    if out["records"] and not out["accepted"]:
        body = error_body("usage.rejected", f"none of the {out['records']} records was accepted", out)
        return JSONResponse(body, status_code=422)
    return out


def _deliver(session: Session, data: bytes, max_depth: int, by: str) -> dict[str, Any]:
    from meter2cash.integration.determinants import deliver
    from meter2cash.mdm.usage.format import parse_determinants

    return deliver(session, parse_determinants(data, max_depth=max_depth), received_by=by).to_dict()
