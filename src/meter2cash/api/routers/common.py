"""Query helpers shared by the routers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from meter2cash.api.schemas import AgreementOut
from meter2cash.cis.models import Account, ServiceAgreement, ServicePoint

Limit = Annotated[int, Query(ge=1, le=1000, description="page size")]
Offset = Annotated[int, Query(ge=0, description="records to skip")]


def page(session: Session, stmt: Any, limit: int, offset: int) -> tuple[list[Any], int]:
    """One page of ``stmt``'s rows and the total count of rows."""
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    rows = list(session.execute(stmt.limit(limit).offset(offset)))
    return rows, int(total)


def agreements(session: Session, *where: Any) -> list[AgreementOut]:
    stmt = (
        select(ServiceAgreement, Account.number, ServicePoint.code)
        .join(Account, Account.id == ServiceAgreement.account_id)
        .join(ServicePoint, ServicePoint.id == ServiceAgreement.service_point_id)
        .where(*where)
        .order_by(ServiceAgreement.start_date, ServiceAgreement.number)
    )
    return [
        AgreementOut(
            number=sa.number,
            account=acc,
            service_point=sp,
            tariff_code=sa.tariff_code,
            payment_mode=sa.payment_mode,
            sanctioned_load_kw=sa.sanctioned_load_kw,
            contract_demand_kva=sa.contract_demand_kva,
            start_date=sa.start_date,
            end_date=sa.end_date,
            status=sa.status,
        )
        for sa, acc, sp in session.execute(stmt)
    ]
