"""Read-only views of bills that the CLI and the API share: lists, one bill, what replaced it.

Each function takes a Session and returns plain named tuples or dataclasses; none writes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from meter2cash.cis.billing.models import Bill
from meter2cash.cis.parties.models import Account, ServiceAgreement
from meter2cash.core.errors import NotFound

#: The most rows a list returns.
MAX_LIMIT = 1000


class BillSummary(NamedTuple):
    number: str
    account: str
    service_agreement: str
    period: str
    kind: str
    status: str
    estimated: bool
    issued_at: datetime
    due_date: date | None
    currency: str
    total_kwh: Decimal
    total: Decimal

    def to_dict(self) -> dict[str, Any]:
        return self._asdict()


@dataclass(frozen=True, slots=True)
class BillPage:
    """Bills matching a filter, newest first; ``total`` counts all that match."""

    items: list[BillSummary]
    total: int


def list_bills(
    session: Session,
    *,
    account: str | None = None,
    period: str | None = None,
    status: str | None = None,
    kind: str | None = None,
    estimated: bool | None = None,
    limit: int = 50,
) -> BillPage:
    """Bills of an account number, a period ``YYYY-MM``, a status (``issued``, ``statement``,
    ``cancelled``), a kind (``postpaid``, ``prepaid``), estimated or not; newest issued first."""
    stmt = (
        select(
            Bill.number,
            Account.number,
            ServiceAgreement.number,
            Bill.period,
            Bill.kind,
            Bill.status,
            Bill.estimated,
            Bill.issued_at,
            Bill.due_date,
            Bill.currency,
            Bill.total_kwh,
            Bill.total,
        )
        .join(Account, Account.id == Bill.account_id)
        .join(ServiceAgreement, ServiceAgreement.id == Bill.service_agreement_id)
    )
    if account:
        stmt = stmt.where(Account.number == account)
    if period:
        stmt = stmt.where(Bill.period == period)
    if status:
        stmt = stmt.where(Bill.status == status)
    if kind:
        stmt = stmt.where(Bill.kind == kind)
    if estimated is not None:
        stmt = stmt.where(Bill.estimated.is_(estimated))
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.execute(
        stmt.order_by(Bill.issued_at.desc(), Bill.id.desc()).limit(max(1, min(limit, MAX_LIMIT)))
    ).all()
    return BillPage([BillSummary._make(r) for r in rows], total)


def find_bill(session: Session, number: str) -> Bill:
    """The bill numbered ``number`` (``bill.not_found`` otherwise)."""
    bill = session.scalars(select(Bill).where(Bill.number == number)).first()
    if bill is None:
        raise NotFound(f"no bill {number}", code="bill.not_found", key=number)
    return bill


def bill_numbers(session: Session, bill_ids: Sequence[int]) -> list[str]:
    """The numbers of bills given by id, in the order of ``bill_ids``."""
    if not bill_ids:
        return []
    found = dict(session.execute(select(Bill.id, Bill.number).where(Bill.id.in_(list(bill_ids)))).all())
    return [found[i] for i in bill_ids if i in found]


class BillLineage(NamedTuple):
    """What a bill replaced and what replaced it (cancel/rebill)."""

    replaces: str | None
    replaced_by: list[str]


def bill_lineage(session: Session, bill: Bill) -> BillLineage:
    replaces = None
    if bill.replaces_bill_id is not None:
        replaces = session.scalar(select(Bill.number).where(Bill.id == bill.replaces_bill_id))
    replaced_by = session.scalars(
        select(Bill.number).where(Bill.replaces_bill_id == bill.id).order_by(Bill.id)
    ).all()
    return BillLineage(replaces, list(replaced_by))
