"""``/bills``: issued bills with their lines and determinants, and the printable HTML bill."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from meter2cash.api.deps import SessionDep
from meter2cash.api.errors import get_by_key, not_found, responses
from meter2cash.api.limits import LimitedRoute
from meter2cash.api.routers.common import AccountFilter, BillNumber, Limit, Offset, PeriodFilter, page
from meter2cash.api.schemas import BillDetail, BillLineOut, BillOut, Page, money_text
from meter2cash.cis.billing.models import Bill
from meter2cash.cis.parties.models import Account, ServiceAgreement

router = APIRouter(tags=["bills"], route_class=LimitedRoute)


def _bill_out(b: Bill, account: str, agreement: str) -> dict[str, object]:
    return {
        "number": b.number,
        "account": account,
        "service_agreement": agreement,
        "kind": b.kind,
        "status": b.status,
        "period": b.period,
        "period_start": b.period_start,
        "period_end": b.period_end,
        "issued_at": b.issued_at,
        "due_date": b.due_date,
        "tariff_code": b.tariff_code,
        "currency": b.currency,
        "total_kwh": b.total_kwh,
        "subtotal": money_text(b.subtotal, b.currency),
        "tax": money_text(b.tax, b.currency),
        "total": money_text(b.total, b.currency),
    }


def _line_out(line: Any, currency: str) -> BillLineOut:
    return BillLineOut(
        seq=line.seq,
        component=line.component,
        description=line.description,
        quantity=line.quantity,
        unit=line.unit,
        rate=line.rate,
        amount=money_text(line.amount, currency) or "0",
        ledger_account=line.ledger_account,
    )


def _bill_stmt() -> Any:
    return (
        select(Bill, Account.number, ServiceAgreement.number)
        .join(Account, Account.id == Bill.account_id)
        .join(ServiceAgreement, ServiceAgreement.id == Bill.service_agreement_id)
    )


def _bill(session: Session, number: str) -> Bill:
    bill: Bill = get_by_key(session, Bill.number, number, "bill")
    return bill


@router.get("/bills", response_model=Page[BillOut])
def list_bills(
    session: SessionDep,
    limit: Limit = 50,
    offset: Offset = 0,
    account: AccountFilter = None,
    period: PeriodFilter = None,
) -> Page[BillOut]:
    """Bills, newest period first, optionally for one account number and/or one period (YYYY-MM)."""
    stmt = _bill_stmt().order_by(Bill.period.desc(), Bill.number)
    if account:
        stmt = stmt.where(Account.number == account)
    if period:
        stmt = stmt.where(Bill.period == period)
    rows, total = page(session, stmt, limit, offset)
    items = [BillOut.model_validate(_bill_out(b, a, sa)) for b, a, sa in rows]
    return Page[BillOut](items=items, total=total, limit=limit, offset=offset)


@router.get("/bills/{number}.html", response_class=HTMLResponse, responses=responses(404))
def bill_html(number: BillNumber, session: SessionDep) -> HTMLResponse:
    """The printable bill as HTML, with the consumption history (error ``bill.not_found``)."""
    bill = _bill(session, number)
    from meter2cash.cis.billing.documents import render_bill_html
    from meter2cash.cis.billing.pdf import history_for

    return HTMLResponse(render_bill_html(bill, history=history_for(session, bill)))


@router.get(
    "/bills/{number}.pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}, **responses(404)},
)
def bill_pdf(number: BillNumber, session: SessionDep) -> Response:
    """The bill as a PDF document to download (error ``bill.not_found``)."""
    bill = _bill(session, number)
    from meter2cash.cis.billing.pdf import history_for, render_bill_pdf

    pdf = render_bill_pdf(bill, history=history_for(session, bill))
    headers = {"Content-Disposition": f'attachment; filename="{bill.number}.pdf"'}
    return Response(pdf, media_type="application/pdf", headers=headers)


@router.get("/bills/{number}", response_model=BillDetail, responses=responses(404))
def get_bill(number: BillNumber, session: SessionDep) -> BillDetail:
    """One bill with its lines and bill determinants (error ``bill.not_found``)."""
    row = session.execute(_bill_stmt().where(Bill.number == number)).first()
    if row is None:
        raise not_found("bill", number)
    b, acc, sa = row
    return BillDetail.model_validate(
        {
            **_bill_out(b, acc, sa),
            "estimated_share": b.estimated_share,
            "lines": [_line_out(line, b.currency) for line in b.lines],
            "determinants": b.determinants or {},
        }
    )
