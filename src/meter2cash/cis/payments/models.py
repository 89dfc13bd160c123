"""Tables of payments: payments, their allocations to open items, gateway orders and events.

Balances are never stored: the ledger (``journal_line``) is the only source of truth."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Date, ForeignKey, String
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
