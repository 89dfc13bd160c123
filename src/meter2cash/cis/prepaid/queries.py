"""Read-only views of prepaid wallets that the CLI and the API share: balance, recent charges and
recharges, connection commands.

Each function takes a Session and returns plain named tuples or dataclasses; none writes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from meter2cash.cis.billing.queries import MAX_LIMIT
from meter2cash.cis.parties.models import Account, ServiceAgreement
from meter2cash.cis.payments.models import Payment
from meter2cash.cis.prepaid.models import PrepaidCharge, Wallet
from meter2cash.cis.prepaid.wallet import wallet_balance
from meter2cash.core.errors import NotFound
from meter2cash.mdm.commands.models import MeterCommand


class ChargeRow(NamedTuple):
    day: date
    kwh: Decimal
    amount: Decimal
    tariff: str


class RechargeRow(NamedTuple):
    receipt_number: str
    received_on: date
    channel: str
    amount: Decimal
    status: str


class CommandRow(NamedTuple):
    id: int
    service_agreement: str
    action: str
    reason: str
    status: str
    requested_at: datetime
    finished_at: datetime | None
    detail: str
    #: The relay state read back from the meter, once it was.
    relay: str | None = None


@dataclass(slots=True)
class WalletView:
    """A prepaid wallet as an operator sees it: balance from the ledger, supply state, alerts."""

    account: str
    service_agreement: str
    balance: Decimal
    supply: str
    alert_level: int
    last_recharge: Decimal
    emergency_credit: Decimal
    grace_until: datetime | None
    last_charged_on: date | None
    charges: list[ChargeRow] = field(default_factory=list)
    recharges: list[RechargeRow] = field(default_factory=list)
    commands: list[CommandRow] = field(default_factory=list)


def wallet_view(session: Session, key: str, *, charges: int = 7, recharges: int = 5) -> WalletView:
    """The wallet of service agreement ``key`` or, failing that, of account ``key``, with its
    last ``charges`` daily charges, last ``recharges`` recharges and last connection commands
    (``wallet.not_found`` when neither has a wallet)."""
    row = session.execute(
        select(Wallet, Account.number, ServiceAgreement.number)
        .join(Account, Account.id == Wallet.account_id)
        .join(ServiceAgreement, ServiceAgreement.id == Wallet.service_agreement_id)
        .where((ServiceAgreement.number == key) | (Account.number == key))
        .order_by((ServiceAgreement.number == key).desc(), Wallet.id)
    ).first()
    if row is None:
        raise NotFound(
            f"no prepaid wallet for agreement or account {key} (the daily charge run creates it)",
            code="wallet.not_found",
            key=key,
        )
    wallet, account, agreement = row
    view = WalletView(
        account=account,
        service_agreement=agreement,
        balance=wallet_balance(session, wallet),
        supply=wallet.supply,
        alert_level=wallet.alert_level,
        last_recharge=wallet.last_recharge,
        emergency_credit=wallet.emergency_credit,
        grace_until=wallet.grace_until,
        last_charged_on=wallet.last_charged_on,
    )
    view.charges = [
        ChargeRow(c.day, Decimal(c.wh).scaleb(-3), c.amount, c.tariff_code)
        for c in session.scalars(
            select(PrepaidCharge)
            .where(PrepaidCharge.wallet_id == wallet.id)
            .order_by(PrepaidCharge.day.desc())
            .limit(charges)
        )
    ]
    view.recharges = [
        RechargeRow(p.receipt_number, p.received_on, p.channel, p.amount, p.status)
        for p in session.scalars(
            select(Payment)
            .where(Payment.account_id == wallet.account_id, Payment.purpose == "recharge")
            .order_by(Payment.received_at.desc(), Payment.id.desc())
            .limit(recharges)
        )
    ]
    view.commands = connection_commands(session, agreement_id=wallet.service_agreement_id, limit=3)
    return view


def connection_commands(
    session: Session,
    *,
    ids: Sequence[int] | None = None,
    agreement_id: int | None = None,
    limit: int = 50,
) -> list[CommandRow]:
    """Supply (connect and disconnect) commands, newest first: given ``ids``, or of one agreement."""
    stmt = (
        select(MeterCommand, ServiceAgreement.number)
        .join(ServiceAgreement, ServiceAgreement.id == MeterCommand.service_agreement_id)
        .where(MeterCommand.kind.in_(("connect", "disconnect")))
    )
    if ids is not None:
        if not ids:
            return []
        stmt = stmt.where(MeterCommand.id.in_(list(ids)))
    if agreement_id is not None:
        stmt = stmt.where(MeterCommand.service_agreement_id == agreement_id)
    rows = session.execute(stmt.order_by(MeterCommand.id.desc()).limit(max(1, min(limit, MAX_LIMIT))))
    return [
        CommandRow(
            c.id, sa, c.kind, c.reason, c.status, c.requested_at, c.finished_at, c.detail, c.relay_state
        )
        for c, sa in rows
    ]
