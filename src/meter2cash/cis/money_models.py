"""Money-in tables: payments, wallets, gateway orders, collections, notifications.

Balances are never stored here: the ledger (``journal_line``) is the only source of truth. These
tables record the documents behind ledger entries (payments, allocations, daily prepaid charges)
and the operational state around them (alerts fired, connection commands, dunning steps).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from meter2cash.core.timeutil import utcnow
from meter2cash.db import Base, Money, UTCDateTime

PAYMENT_CHANNELS = ("cash", "cheque", "agent", "online", "adjustment")


class Payment(Base):
    """A receipt: money received (or refunded, ``amount`` < 0) for a customer account."""

    __tablename__ = "payment"
    id: Mapped[int] = mapped_column(primary_key=True)
    receipt_number: Mapped[str] = mapped_column(String(32), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    #: ``cash``, ``cheque``, ``agent``, ``online``.
    channel: Mapped[str] = mapped_column(String(16), index=True)
    #: ``payment`` (against receivables), ``recharge`` (prepaid wallet), ``deposit``, ``refund``;
    #: documents without money received: ``write_off``, ``rebate`` (prompt payment),
    #: ``migration`` (a balance moved between wallet and receivables).
    purpose: Mapped[str] = mapped_column(String(16), default="payment")
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    received_on: Mapped[date] = mapped_column(Date, index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Cheque number, agent batch line, gateway order id…
    reference: Mapped[str] = mapped_column(String(100), default="")
    #: Unique key from outside (gateway order, agent transaction): a payment is recorded once.
    external_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    #: ``posted``, ``returned`` (a cheque that bounced), ``refunded``.
    status: Mapped[str] = mapped_column(String(16), default="posted")
    journal_entry_id: Mapped[int | None] = mapped_column(ForeignKey("journal_entry.id"))
    office: Mapped[str] = mapped_column(String(64), default="")


class PaymentAllocation(Base):
    """The part of a payment applied to one open item: a receivable debit (a bill, a surcharge, a
    fee), named by its journal entry. ``item_entry_id`` None is unapplied credit. A reversal
    (returned cheque) adds the negated allocations, so the items open again."""

    __tablename__ = "payment_allocation"
    id: Mapped[int] = mapped_column(primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payment.id"), index=True)
    item_entry_id: Mapped[int | None] = mapped_column(ForeignKey("journal_entry.id"), index=True)
    bill_id: Mapped[int | None] = mapped_column(ForeignKey("bill.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(Money)


class Wallet(Base):
    """The prepaid wallet of a service agreement; its balance is the 2100 sub-ledger of the account."""

    __tablename__ = "wallet"
    id: Mapped[int] = mapped_column(primary_key=True)
    service_agreement_id: Mapped[int] = mapped_column(ForeignKey("service_agreement.id"), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    #: ``connected``, ``disconnect_pending``, ``disconnected``, ``reconnect_pending``.
    supply: Mapped[str] = mapped_column(String(24), default="connected")
    last_recharge: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    #: Index of the deepest balance alert already fired since the last recharge (-1: none).
    alert_level: Mapped[int] = mapped_column(Integer, default=-1)
    emergency_credit: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    #: Set when the balance first reaches zero or less; disconnection waits until it passes.
    grace_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_charged_on: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PrepaidCharge(Base):
    """One day's charge of a wallet, with the month-to-date determinants after it."""

    __tablename__ = "prepaid_charge"
    #: The unique (wallet, day) index serves every lookup; no other index (100,000 rows a day).
    __table_args__ = (UniqueConstraint("wallet_id", "day"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    wallet_id: Mapped[int] = mapped_column(ForeignKey("wallet.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    day: Mapped[date] = mapped_column(Date)
    tariff_code: Mapped[str] = mapped_column(String(64))
    #: Energy of the day [Wh] and month to date after the day, per TOU period [Wh].
    wh: Mapped[int] = mapped_column(BigInteger, default=0)
    mtd_wh: Mapped[list[int]] = mapped_column(JSON, default=list)
    mtd_demand_w: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Days charged in the local month, this one included.
    mtd_days: Mapped[int] = mapped_column(Integer, default=1)
    amount: Mapped[Decimal] = mapped_column(Money)
    journal_entry_id: Mapped[int | None] = mapped_column(ForeignKey("journal_entry.id"))


class ConnectionCommand(Base):
    """A disconnect or reconnect request: requested → sent → acknowledged → executed | failed | timed_out."""

    __tablename__ = "connection_command"
    id: Mapped[int] = mapped_column(primary_key=True)
    service_agreement_id: Mapped[int] = mapped_column(ForeignKey("service_agreement.id"), index=True)
    #: ``disconnect`` or ``reconnect``.
    action: Mapped[str] = mapped_column(String(16))
    #: ``prepaid.no_credit``, ``collections.non_payment``, ``prepaid.recharged``, ``manual``.
    reason: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16), default="requested", index=True)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    detail: Mapped[str] = mapped_column(String(200), default="")


class GatewayOrder(Base):
    """An order created at a payment gateway; paid once, whatever the webhooks say."""

    __tablename__ = "gateway_order"
    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[str] = mapped_column(String(64), unique=True)
    gateway: Mapped[str] = mapped_column(String(32), default="sandbox")
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(16), default="payment")
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    #: ``created``, ``paid``, ``failed``.
    status: Mapped[str] = mapped_column(String(16), default="created")
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payment.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class GatewayEvent(Base):
    """A webhook event already processed (its id), so a replay changes nothing."""

    __tablename__ = "gateway_event"
    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(40))
    order_id: Mapped[str] = mapped_column(String(64), index=True)
    outcome: Mapped[str] = mapped_column(String(40))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DunningStep(Base):
    """A collections action taken for an account: ``reminder``, ``notice``, ``disconnect``, ``surcharge``."""

    __tablename__ = "dunning_step"
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    step: Mapped[str] = mapped_column(String(16))
    taken_on: Mapped[date] = mapped_column(Date)
    debt: Mapped[Decimal] = mapped_column(Money)
    oldest_due: Mapped[date | None] = mapped_column(Date)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class PromiseToPay(Base):
    """A customer's promise to pay ``amount`` by ``due_on``; dunning waits while it is open."""

    __tablename__ = "promise_to_pay"
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(Money)
    due_on: Mapped[date] = mapped_column(Date)
    #: ``open``, ``kept``, ``broken``.
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Notification(Base):
    """An SMS or e-mail to send (the outbox of the notification sender)."""

    __tablename__ = "notification"
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id"), index=True)
    #: ``sms`` or ``email``.
    channel: Mapped[str] = mapped_column(String(8))
    recipient: Mapped[str] = mapped_column(String(200))
    template: Mapped[str] = mapped_column(String(64))
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: ``pending``, ``sent``, ``failed``.
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
