"""``/wallets``: prepaid wallets by account number: balance, daily charges, recharge, emergency credit."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from meter2cash.api.deps import PlatformDep, SessionDep
from meter2cash.api.errors import responses
from meter2cash.api.limits import LimitedRoute
from meter2cash.api.routers.common import AccountNumber, Limit, length
from meter2cash.api.schemas import Money, money_text, quantity_text
from meter2cash.cis.payments.models import Payment
from meter2cash.cis.payments.receipts import account_by_number
from meter2cash.cis.prepaid.models import PrepaidCharge, Wallet
from meter2cash.cis.prepaid.policy import PrepaidPolicy
from meter2cash.cis.prepaid.wallet import (
    ensure_wallets,
    grant_emergency_credit,
    recharge_account,
    wallet_balance,
    wallet_for,
)
from meter2cash.core.errors import NotFound
from meter2cash.core.timeutil import utcnow
from meter2cash.mdm.commands.service import latest_command

router = APIRouter(tags=["wallets"], route_class=LimitedRoute)


class RechargeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: Money
    channel: Literal["cash", "cheque", "agent", "online"] = "cash"
    reference: str = Field("", max_length=length(Payment.reference))


def _wallet(session: Any, number: str) -> tuple[str, Wallet]:
    acct = account_by_number(session, number)
    try:
        return acct.number, wallet_for(session, account_id=acct.id)
    except NotFound:  # a prepaid agreement whose wallet the daily run has not created yet
        ensure_wallets(session, utcnow().date())
        return acct.number, wallet_for(session, account_id=acct.id)


def _view(session: Any, number: str, wallet: Wallet, currency: str) -> dict[str, Any]:
    last_cmd = latest_command(session, wallet.service_agreement_id)
    return {
        "account": number,
        "balance": money_text(wallet_balance(session, wallet), currency),
        "currency": currency,
        "supply": wallet.supply,
        "last_recharge": money_text(wallet.last_recharge, currency),
        "emergency_credit": money_text(wallet.emergency_credit, currency),
        "alert_level": wallet.alert_level,
        "grace_until": wallet.grace_until.isoformat() if wallet.grace_until else None,
        "last_charged_on": wallet.last_charged_on.isoformat() if wallet.last_charged_on else None,
        "last_command": None
        if last_cmd is None
        else {
            "action": last_cmd.kind,
            "status": last_cmd.status,
            "requested_at": last_cmd.requested_at.isoformat(),
        },
    }


@router.get("/wallets/{account}", response_model=dict[str, Any], responses=responses(404))
def get_wallet(account: AccountNumber, session: SessionDep, platform: PlatformDep) -> dict[str, Any]:
    """The prepaid wallet of an account: balance (from the ledger), supply state, alerts
    (errors ``account.not_found``, ``wallet.not_found``)."""
    number, wallet = _wallet(session, account)
    return _view(session, number, wallet, platform.settings.currency)


@router.get("/wallets/{account}/charges", response_model=list[dict[str, Any]], responses=responses(404))
def wallet_charges(
    account: AccountNumber, session: SessionDep, platform: PlatformDep, limit: Limit = 31
) -> list[dict[str, Any]]:
    """Daily charges, newest first: day, kWh and amount."""
    _, wallet = _wallet(session, account)
    rows = session.scalars(
        select(PrepaidCharge)
        .where(PrepaidCharge.wallet_id == wallet.id)
        .order_by(PrepaidCharge.day.desc())
        .limit(limit)
    )
    return [
        {
            "day": c.day.isoformat(),
            "kwh": quantity_text(Decimal(c.wh).scaleb(-3)),
            "amount": money_text(c.amount, platform.settings.currency),
            "tariff": c.tariff_code,
        }
        for c in rows
    ]


@router.post(
    "/wallets/{account}/recharge",
    response_model=dict[str, Any],
    status_code=201,
    responses=responses(404, 413),
)
def recharge(
    account: AccountNumber, body: RechargeIn, session: SessionDep, platform: PlatformDep
) -> dict[str, Any]:
    """Top up the wallet; reconnection is requested at once when the balance turns positive."""
    number, wallet = _wallet(session, account)
    s = platform.settings
    pay = recharge_account(
        session,
        wallet.account_id,
        body.amount,
        channel=body.channel,
        currency=s.currency,
        reference=body.reference,
        tz=s.timezone,
    )
    session.refresh(wallet)
    return {"receipt_number": pay.receipt_number, "wallet": _view(session, number, wallet, s.currency)}


@router.post(
    "/wallets/{account}/emergency-credit", response_model=dict[str, Any], responses=responses(404, 409)
)
def emergency_credit(account: AccountNumber, session: SessionDep, platform: PlatformDep) -> dict[str, Any]:
    """Grant emergency credit until the next recharge (``wallet.emergency_in_use`` if already granted)."""
    number, wallet = _wallet(session, account)
    grant_emergency_credit(session, wallet.id, PrepaidPolicy())
    return _view(session, number, wallet, platform.settings.currency)
