"""Query helpers shared by the routers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query
from sqlalchemy import func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from meter2cash.api.schemas import AgreementOut
from meter2cash.cis.billing.models import Bill
from meter2cash.cis.parties.models import Account, ServiceAgreement, ServicePoint
from meter2cash.mdm.models import DCU, DistributionTransformer, Meter

#: The deepest page a list can be asked for (a larger ``offset`` is refused, not sent to SQL).
MAX_OFFSET = 1_000_000_000

Limit = Annotated[int, Query(ge=1, le=1000, description="page size")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="records to skip")]


def length(column: InstrumentedAttribute[Any]) -> int:
    """The declared length of a ``String(n)`` column: the longest value worth looking up."""
    n = getattr(column.type, "length", None)
    assert isinstance(n, int), f"{column} has no length"
    return n


def _key(column: InstrumentedAttribute[Any], what: str) -> Any:
    return Path(min_length=1, max_length=length(column), description=what)


def _filter(column: InstrumentedAttribute[Any], what: str) -> Any:
    return Query(min_length=1, max_length=length(column), description=what)


# Path keys and query filters, as long as the columns they are looked up in.
AccountNumber = Annotated[str, _key(Account.number, "account number")]
AgreementNumber = Annotated[str, _key(ServiceAgreement.number, "service agreement number")]
BillNumber = Annotated[str, _key(Bill.number, "bill number")]
MeterSerial = Annotated[str, _key(Meter.serial, "meter serial")]
ServicePointCode = Annotated[str, _key(ServicePoint.code, "service point code")]
AccountFilter = Annotated[str | None, _filter(Account.number, "an account number")]
MeterFilter = Annotated[str | None, _filter(Meter.serial, "a meter serial")]
StatusFilter = Annotated[str | None, _filter(Account.status, "a status")]
ClassFilter = Annotated[str | None, _filter(Account.customer_class, "a customer class")]
DcuFilter = Annotated[str | None, _filter(DCU.code, "a DCU code")]
TransformerFilter = Annotated[str | None, _filter(DistributionTransformer.code, "a transformer code")]
PeriodFilter = Annotated[
    str | None, Query(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$", description="a billing period YYYY-MM")
]


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
