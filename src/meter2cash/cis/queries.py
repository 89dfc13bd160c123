"""Read-only views that the CLI and the API share: bills (list, one bill and what replaced it),
prepaid wallets with their recent charges and recharges, connection commands.

Each function takes a Session and returns plain named tuples or dataclasses; none writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from meter2cash.cis.models import Account, Bill, ServiceAgreement
from meter2cash.cis.money_models import ConnectionCommand, Payment, PrepaidCharge, Wallet
from meter2cash.cis.prepaid_wallet import wallet_balance
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
    """Connection commands, newest first: given ``ids``, or of one agreement."""
    stmt = select(ConnectionCommand, ServiceAgreement.number).join(
        ServiceAgreement, ServiceAgreement.id == ConnectionCommand.service_agreement_id
    )
    if ids is not None:
        if not ids:
            return []
        stmt = stmt.where(ConnectionCommand.id.in_(list(ids)))
    if agreement_id is not None:
        stmt = stmt.where(ConnectionCommand.service_agreement_id == agreement_id)
    rows = session.execute(stmt.order_by(ConnectionCommand.id.desc()).limit(max(1, min(limit, MAX_LIMIT))))
    return [
        CommandRow(c.id, sa, c.action, c.reason, c.status, c.requested_at, c.finished_at, c.detail)
        for c, sa in rows
    ]
