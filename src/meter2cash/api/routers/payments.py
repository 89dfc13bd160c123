"""``/payments``: receipts, gateway orders, the signed gateway webhook, settlement reconciliation.

The webhook (``POST /payments/webhook``) is public: its HMAC signature is its authentication.
Everything else needs the API key like the rest of the API.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from meter2cash.api.deps import PlatformDep, RawBody, SessionDep
from meter2cash.api.errors import responses
from meter2cash.api.limits import LimitedRoute
from meter2cash.api.routers.common import AccountFilter, Limit, Offset, length, page
from meter2cash.api.schemas import Money, MoneyText, SaneDate, money_text
from meter2cash.cis.billing.models import Bill
from meter2cash.cis.parties.models import Account
from meter2cash.cis.payments.models import Payment
from meter2cash.core.errors import M2CError
from meter2cash.payment_gateway.signing import HEADER

router = APIRouter(tags=["payments"], route_class=LimitedRoute)
public_router = APIRouter(tags=["payments"], route_class=LimitedRoute)

#: Channels money is received through at an office or an agent (``adjustment`` is internal).
Channel = Literal["cash", "cheque", "agent", "online"]
AccountRef = Annotated[
    str, Field(min_length=1, max_length=length(Account.number), description="account number")
]


class PaymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    account: AccountRef
    amount: Money
    channel: Channel = "cash"
    purpose: Literal["payment", "recharge", "deposit"] = "payment"
    reference: str = Field("", max_length=length(Payment.reference))
    received_on: SaneDate | None = Field(None, description="default today; never after tomorrow")
    policy: Literal["oldest_first", "newest_first", "largest_first"] = Field(
        "oldest_first", description="the order in which open items are settled"
    )
    bills: list[Annotated[str, Field(min_length=1, max_length=length(Bill.number))]] = Field(
        default_factory=list, max_length=100, description="bill numbers to settle first"
    )


class PaymentOut(BaseModel):
    receipt_number: str
    account: str
    channel: str
    purpose: str
    amount: MoneyText
    currency: str
    received_on: date
    reference: str
    status: str


class PaymentPage(BaseModel):
    items: list[PaymentOut]
    total: int
    limit: int
    offset: int


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    account: AccountRef
    amount: Money
    purpose: Literal["payment", "recharge"] = "payment"


class OrderOut(BaseModel):
    order_id: str
    status: str
    amount: MoneyText
    currency: str
    purpose: str
    pay_url: str = ""


class WebhookOut(BaseModel):
    event: str
    outcome: str = Field(
        description="credited, duplicate, already_paid, failed, amount_mismatch, ignored or unknown_order"
    )


def _out(p: Payment, account: str) -> PaymentOut:
    return PaymentOut(
        receipt_number=p.receipt_number,
        account=account,
        channel=p.channel,
        purpose=p.purpose,
        amount=money_text(p.amount, p.currency) or "0",
        currency=p.currency,
        received_on=p.received_on,
        reference=p.reference,
        status=p.status,
    )


@router.post("/payments", response_model=PaymentOut, status_code=201, responses=responses(404, 409, 413))
def create_payment(body: PaymentIn, session: SessionDep, platform: PlatformDep) -> PaymentOut:
    """Record money received at an office (errors ``payment.*``, ``account.not_found``)."""
    from meter2cash.cis.payments.receipts import account_by_number, receive
    from meter2cash.cis.prepaid.wallet import recharge_account

    acct = account_by_number(session, body.account)
    s = platform.settings
    common: dict[str, Any] = dict(
        channel=body.channel, currency=s.currency, received_on=body.received_on, reference=body.reference
    )
    if body.purpose == "recharge":
        pay = recharge_account(session, acct.id, body.amount, tz=s.timezone, **common)
    else:
        pay = receive(
            session,
            acct.id,
            body.amount,
            purpose=body.purpose,
            policy=body.policy,
            bills=body.bills,
            **common,
        )
    return _out(pay, acct.number)


@router.get("/payments", response_model=PaymentPage)
def list_payments(
    session: SessionDep, limit: Limit = 50, offset: Offset = 0, account: AccountFilter = None
) -> PaymentPage:
    """Receipts, newest first, optionally of one account."""
    stmt = select(Payment, Account.number).join(Account, Account.id == Payment.account_id)
    if account:
        stmt = stmt.where(Account.number == account)
    rows, total = page(session, stmt.order_by(Payment.id.desc()), limit, offset)
    return PaymentPage(items=[_out(p, a) for p, a in rows], total=total, limit=limit, offset=offset)


@router.post("/payments/orders", response_model=OrderOut, status_code=201, responses=responses(404, 413, 502))
def create_order(body: OrderIn, session: SessionDep, platform: PlatformDep) -> OrderOut:
    """Create an order at the payment gateway; the payer completes it at ``pay_url``."""
    from meter2cash.cis.payments.online import start_order
    from meter2cash.cis.payments.receipts import account_by_number

    acct = account_by_number(session, body.account)
    gateway = platform.gateway
    order = start_order(
        session,
        gateway,
        acct.id,
        body.amount,
        currency=platform.settings.currency,
        purpose=body.purpose,
        reference=acct.number,
    )
    info = gateway.order(order.order_id)
    return OrderOut(
        order_id=order.order_id,
        status=order.status,
        amount=money_text(order.amount, order.currency) or "0",
        currency=order.currency,
        purpose=order.purpose,
        pay_url=info.pay_url,
    )


@router.post("/payments/reconcile", response_model=dict[str, Any], responses=responses(413, 502))
def reconcile_day(
    day: Annotated[SaneDate, Query(description="the settlement day")],
    session: SessionDep,
    platform: PlatformDep,
) -> dict[str, Any]:
    """Fetch the gateway's settlement report of ``day`` and match it with our receipts."""
    from meter2cash.cis.payments.online import reconcile

    report = platform.gateway.settlement_report(day)
    return reconcile(session, day, report, currency=platform.settings.currency).to_dict()


class WebhookOff(M2CError):
    code = "gateway.webhook_off"
    http_status = 503


WEBHOOK_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "the gateway's event, signed in the M2C-Gateway-Signature header",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


@public_router.post(
    "/payments/webhook",
    response_model=WebhookOut,
    responses=responses(400, 413, 422, 503),
    openapi_extra=WEBHOOK_BODY,
)
def webhook(
    body: RawBody,
    session: SessionDep,
    platform: PlatformDep,
    signature: Annotated[str | None, Header(alias=HEADER, max_length=1000)] = None,
) -> dict[str, Any]:
    """The gateway's signed event, checked with the configured ``M2C_GATEWAY_SECRET`` only
    (``gateway.no_signature``/``gateway.bad_signature``/``gateway.stale_signature`` → 400,
    nothing changes; ``gateway.webhook_off`` → 503 when no secret is configured). A replayed or
    out-of-order event is acknowledged and credits nothing."""
    from meter2cash.cis.payments.online import handle_webhook

    gateway = platform.gateway_settings
    if not gateway.secret:
        raise WebhookOff("online payments are switched off: M2C_GATEWAY_SECRET is empty")
    return handle_webhook(
        session, body, signature, secret=gateway.secret, tolerance_s=gateway.tolerance_s,
        tz=platform.settings.timezone,
    )  # fmt: skip
