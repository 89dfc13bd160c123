"""``/service-points``: where service is delivered, its network place, meter and agreements."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select

from meter2cash.api.deps import SessionDep
from meter2cash.api.errors import get_by_key, responses
from meter2cash.api.limits import LimitedRoute
from meter2cash.api.routers.common import (
    Limit,
    Offset,
    ServicePointCode,
    StatusFilter,
    TransformerFilter,
    agreements,
    page,
)
from meter2cash.api.schemas import (
    InstalledMeter,
    Page,
    PremiseOut,
    ServicePointDetail,
    ServicePointOut,
    TransformerOut,
)
from meter2cash.cis.parties.models import Premise, ServiceAgreement, ServicePoint
from meter2cash.mdm.models import DistributionTransformer, Feeder, Installation, Meter

router = APIRouter(tags=["service points"], route_class=LimitedRoute)


@router.get("/service-points", response_model=Page[ServicePointOut])
def list_service_points(
    session: SessionDep,
    limit: Limit = 50,
    offset: Offset = 0,
    transformer: TransformerFilter = None,
    status: StatusFilter = None,
) -> Page[ServicePointOut]:
    """Service points by code, optionally below one transformer or with one status."""
    stmt = (
        select(ServicePoint.code, Premise.code, DistributionTransformer.code, ServicePoint.status)
        .join(Premise, Premise.id == ServicePoint.premise_id)
        .outerjoin(DistributionTransformer, DistributionTransformer.id == ServicePoint.dt_id)
        .order_by(ServicePoint.code)
    )
    if transformer:
        stmt = stmt.where(DistributionTransformer.code == transformer)
    if status:
        stmt = stmt.where(ServicePoint.status == status)
    rows, total = page(session, stmt, limit, offset)
    items = [ServicePointOut(code=c, premise=p, transformer=t, status=s) for c, p, t, s in rows]
    return Page[ServicePointOut](items=items, total=total, limit=limit, offset=offset)


@router.get("/service-points/{code}", response_model=ServicePointDetail, responses=responses(404))
def get_service_point(code: ServicePointCode, session: SessionDep) -> ServicePointDetail:
    """One service point (error ``service_point.not_found``)."""
    sp: ServicePoint = get_by_key(session, ServicePoint.code, code, "service_point")
    dt = None
    if sp.dt_id is not None:
        row = session.execute(
            select(DistributionTransformer, Feeder.code)
            .outerjoin(Feeder, Feeder.id == DistributionTransformer.feeder_id)
            .where(DistributionTransformer.id == sp.dt_id)
        ).one()
        dt = TransformerOut(
            code=row[0].code, name=row[0].name, feeder=row[1], capacity_kva=row[0].capacity_kva
        )
    current = session.execute(
        select(Meter.serial, Installation.installed_at)
        .join(Meter, Meter.id == Installation.meter_id)
        .where(Installation.service_point_id == sp.id, Installation.removed_at.is_(None))
        .order_by(Installation.installed_at.desc())
        .limit(1)
    ).first()
    return ServicePointDetail(
        code=sp.code,
        service_type=sp.service_type,
        status=sp.status,
        premise=PremiseOut.model_validate(sp.premise),
        transformer=dt,
        meter=InstalledMeter(serial=current[0], installed_at=current[1]) if current else None,
        agreements=agreements(session, ServiceAgreement.service_point_id == sp.id),
    )
