"""``/payments``: receipts, gateway orders, the signed gateway webhook, settlement reconciliation.

The webhook (``POST /payments/webhook``) is public: its HMAC signature is its authentication.
Everything else needs the API key like the rest of the API.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel, Field
from sqlalchemy import select

from meter2cash.api.deps import PlatformDep, SessionDep
from meter2cash.api.routers.common import Limit, Offset, page
from meter2cash.cis.models import Account
from meter2cash.cis.money_models import Payment
from meter2cash.integration.gateway.adapter import GatewaySettings, gateway_from_settings
from meter2cash.integration.gateway.signing import HEADER

router = APIRouter(tags=["payments"])
public_router = APIRouter(tags=["payments"])


class PaymentIn(BaseModel):
    account: str = Field(description="account number")
    amount: Decimal = Field(gt=0, description="amount received, as a decimal string")
    channel: str = Field("cash", description="cash, cheque, agent or online")
    purpose: str = Field("payment", description="payment, recharge or deposit")
    reference: str = ""
    received_on: date | None = None
    policy: str = Field("oldest_first", description="allocation: oldest_first, newest_first, largest_first")
    bills: list[str] = Field(default_factory=list, description="bill numbers to settle first")


class PaymentOut(BaseModel):
    receipt_number: str
    account: str
    channel: str
    purpose: str
    amount: Decimal
    currency: str
    received_on: date
    reference: str
    status: str


class OrderIn(BaseModel):
    account: str
    amount: Decimal = Field(gt=0)
    purpose: str = Field("payment", description="payment or recharge")


class OrderOut(BaseModel):
    order_id: str
    status: str
    amount: Decimal
    currency: str
    purpose: str
    pay_url: str = ""


def _out(p: Payment, account: str) -> PaymentOut:
    return PaymentOut(
        receipt_number=p.receipt_number,
        account=account,
        channel=p.channel,
        purpose=p.purpose,
        amount=p.amount,
        currency=p.currency,
        received_on=p.received_on,
        reference=p.reference,
        status=p.status,
    )


@router.post("/payments", response_model=PaymentOut, status_code=201)
def create_payment(body: PaymentIn, session: SessionDep, platform: PlatformDep) -> PaymentOut:
    """Record money received at an office (errors ``payment.*``, ``account.not_found``)."""
    from meter2cash.cis.payments import account_by_number, receive
    from meter2cash.cis.prepaid_wallet import recharge_account

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


@router.get("/payments", response_model=dict[str, Any])
def list_payments(
    session: SessionDep, limit: Limit = 50, offset: Offset = 0, account: str | None = None
) -> dict[str, Any]:
    """Receipts, newest first, optionally of one account."""
    stmt = select(Payment, Account.number).join(Account, Account.id == Payment.account_id)
    if account:
        stmt = stmt.where(Account.number == account)
    rows, total = page(session, stmt.order_by(Payment.id.desc()), limit, offset)
    items = [_out(p, a).model_dump(mode="json") for p, a in rows]
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.post("/payments/orders", response_model=OrderOut, status_code=201)
def create_order(body: OrderIn, session: SessionDep, platform: PlatformDep) -> OrderOut:
    """Create an order at the payment gateway; the payer completes it at ``pay_url``."""
    from meter2cash.cis.online_payments import start_order
    from meter2cash.cis.payments import account_by_number

    acct = account_by_number(session, body.account)
    gateway = gateway_from_settings()
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
        amount=order.amount,
        currency=order.currency,
        purpose=order.purpose,
        pay_url=info.pay_url,
    )


@router.post("/payments/reconcile", response_model=dict[str, Any])
def reconcile_day(day: date, session: SessionDep, platform: PlatformDep) -> dict[str, Any]:
    """Fetch the gateway's settlement report of ``day`` and match it with our receipts."""
    from meter2cash.cis.online_payments import reconcile

    report = gateway_from_settings().settlement_report(day)
    return reconcile(session, day, report, currency=platform.settings.currency).to_dict()


@public_router.post("/payments/webhook", response_model=dict[str, Any])
async def webhook(
    request: Request,
    session: SessionDep,
    platform: PlatformDep,
    signature: Annotated[str | None, Header(alias=HEADER)] = None,
) -> dict[str, Any]:
    """The gateway's signed event (``gateway.bad_signature``/``gateway.stale_signature`` → 400,
    nothing changes). A replayed or out-of-order event is acknowledged and credits nothing."""
    from meter2cash.cis.online_payments import handle_webhook

    body = await request.body()
    gs = GatewaySettings()
    return handle_webhook(
        session, body, signature, secret=gs.secret, tolerance_s=gs.tolerance_s, tz=platform.settings.timezone
    )
