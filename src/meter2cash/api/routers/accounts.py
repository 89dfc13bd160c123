"""``/accounts``: customer accounts with their person, agreements and receivable balance."""

from __future__ import annotations

from decimal import Decimal

from fastapi import APIRouter
from sqlalchemy import func, select

from meter2cash.api.deps import PlatformDep, SessionDep
from meter2cash.api.errors import get_by_key, responses
from meter2cash.api.limits import LimitedRoute
from meter2cash.api.routers.common import (
    AccountNumber,
    ClassFilter,
    Limit,
    Offset,
    StatusFilter,
    agreements,
    page,
)
from meter2cash.api.schemas import AccountDetail, AccountOut, Page, PersonOut, money_text
from meter2cash.cis.ledger.models import JournalLine
from meter2cash.cis.parties.models import Account, Person, ServiceAgreement

router = APIRouter(tags=["accounts"], route_class=LimitedRoute)

#: Ledger account of customer receivables.
RECEIVABLES = "1100"


@router.get("/accounts", response_model=Page[AccountOut])
def list_accounts(
    session: SessionDep,
    limit: Limit = 50,
    offset: Offset = 0,
    customer_class: ClassFilter = None,
    status: StatusFilter = None,
) -> Page[AccountOut]:
    """Accounts by number, optionally filtered by customer class and status."""
    stmt = select(Account, Person).join(Person, Person.id == Account.person_id).order_by(Account.number)
    if customer_class:
        stmt = stmt.where(Account.customer_class == customer_class)
    if status:
        stmt = stmt.where(Account.status == status)
    rows, total = page(session, stmt, limit, offset)
    items = [
        AccountOut(
            number=a.number,
            customer_class=a.customer_class,
            status=a.status,
            person_key=p.key,
            person_name=p.name,
        )
        for a, p in rows
    ]
    return Page[AccountOut](items=items, total=total, limit=limit, offset=offset)


def balance(session: SessionDep, account_id: int) -> Decimal | None:
    """Sum of the account's receivable journal lines; ``None`` when nothing was ever posted."""
    n, total = session.execute(
        select(func.count(JournalLine.id), func.sum(JournalLine.amount)).where(
            JournalLine.account_id == account_id, JournalLine.ledger_account == RECEIVABLES
        )
    ).one()
    return (total or Decimal(0)) if n else None


@router.get("/accounts/{number}", response_model=AccountDetail, responses=responses(404))
def get_account(number: AccountNumber, session: SessionDep, platform: PlatformDep) -> AccountDetail:
    """One account: person, service agreements and balance (error ``account.not_found``)."""
    acc: Account = get_by_key(session, Account.number, number, "account")
    return AccountDetail(
        number=acc.number,
        customer_class=acc.customer_class,
        status=acc.status,
        person=PersonOut.model_validate(acc.person),
        service_agreements=agreements(session, ServiceAgreement.account_id == acc.id),
        balance=money_text(balance(session, acc.id), platform.settings.currency),
        currency=platform.settings.currency,
    )
