"""Tables of billing: bill runs, bills, their lines and segments, bill cycles."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Boolean, Date, Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from meter2cash.cis.parties.models import Account, ServiceAgreement
from meter2cash.core.timeutil import utcnow
from meter2cash.db import Base, Money, Quantity, Rate, UTCDateTime


class BillRun(Base):
    __tablename__ = "bill_run"
    id: Mapped[int] = mapped_column(primary_key=True)
    period: Mapped[str] = mapped_column(String(7), index=True)
    period_start: Mapped[datetime] = mapped_column(UTCDateTime)
    period_end: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="running")
    bills: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class Bill(Base):
    __tablename__ = "bill"
    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    bill_run_id: Mapped[int | None] = mapped_column(ForeignKey("bill_run.id"), index=True)
    service_agreement_id: Mapped[int] = mapped_column(ForeignKey("service_agreement.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    #: ``postpaid`` (a bill to pay) or ``prepaid`` (a monthly statement; the prepaid engine
    #: charges the wallet daily, so a statement posts nothing to the ledger).
    kind: Mapped[str] = mapped_column(String(16), default="postpaid")
    #: ``issued``, ``statement`` (prepaid), ``cancelled`` (replaced by a rebill) or ``shadow``.
    status: Mapped[str] = mapped_column(String(16), default="issued")
    #: True when the period's data was incomplete or estimated (the bill is an estimate).
    estimated: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The bill this one replaces (cancel/rebill) and, on a cancelled bill, when and why.
    replaces_bill_id: Mapped[int | None] = mapped_column(ForeignKey("bill.id"), index=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_reason: Mapped[str] = mapped_column(String(200), default="")
    #: Adjustment for the cancelled bill this one replaces (minus its total) [currency]; the
    #: amount due is ``total + adjustment``. The ledger reversal of that bill posts it.
    adjustment: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    #: Bill cycle code (``monthly``, ``bimonthly-odd``…).
    cycle: Mapped[str] = mapped_column(String(32), default="monthly")
    period: Mapped[str] = mapped_column(String(7), index=True)
    period_start: Mapped[datetime] = mapped_column(UTCDateTime)
    period_end: Mapped[datetime] = mapped_column(UTCDateTime)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    due_date: Mapped[date | None] = mapped_column(Date)
    tariff_code: Mapped[str] = mapped_column(String(64))
    tariff_version_id: Mapped[int | None] = mapped_column(ForeignKey("tariff_version.id"))
    currency: Mapped[str] = mapped_column(String(3))
    total_kwh: Mapped[Decimal] = mapped_column(Quantity, default=Decimal(0))
    estimated_share: Mapped[float] = mapped_column(Float, default=0.0)
    subtotal: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    tax: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    total: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    determinants: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: The customer, premise and agreement as they were when the bill was issued (name,
    #: address, account and agreement numbers, sanctioned load…): an issued bill is a record,
    #: and its document shows them as issued whatever master data says later.
    issued_to: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: Indexed: open items and revenue reports join entries to their bills by it.
    journal_entry_id: Mapped[int | None] = mapped_column(ForeignKey("journal_entry.id"), index=True)
    lines: Mapped[list[BillLine]] = relationship(back_populates="bill", order_by="BillLine.seq")
    account: Mapped[Account] = relationship()
    service_agreement: Mapped[ServiceAgreement] = relationship()


class BillLine(Base):
    __tablename__ = "bill_line"
    id: Mapped[int] = mapped_column(primary_key=True)
    bill_id: Mapped[int] = mapped_column(ForeignKey("bill.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    #: ``fixed``, ``energy``, ``tou``, ``demand``, ``tax``, ``adjustment``…
    component: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[Decimal | None] = mapped_column(Quantity)
    unit: Mapped[str] = mapped_column(String(16), default="")
    rate: Mapped[Decimal | None] = mapped_column(Rate)
    amount: Mapped[Decimal] = mapped_column(Money)
    ledger_account: Mapped[str] = mapped_column(String(32))
    #: Segment of the bill the line belongs to (1 unless the period was split).
    segment: Mapped[int] = mapped_column(Integer, default=1)
    bill: Mapped[Bill] = relationship(back_populates="lines")


class BillSegment(Base):
    """A part of a bill's period rated under one tariff version (a version change inside the
    period splits it); fixed charges and (optionally) slab limits prorate by its days."""

    __tablename__ = "bill_segment"
    __table_args__ = (UniqueConstraint("bill_id", "seq"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    bill_id: Mapped[int] = mapped_column(ForeignKey("bill.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date] = mapped_column(Date)
    tariff_version_id: Mapped[int | None] = mapped_column(ForeignKey("tariff_version.id"))
    total_kwh: Mapped[Decimal] = mapped_column(Quantity, default=Decimal(0))
    total: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))


class BillCycle(Base):
    """A bill cycle: ``monthly`` or ``bimonthly`` periods (bimonthly ones start in odd or even
    months), billed on ``bill_day`` of the month after the period (date-driven) or by command."""

    __tablename__ = "bill_cycle"
    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    frequency: Mapped[str] = mapped_column(String(16), default="monthly")
    #: For bimonthly cycles: 1 = periods start in odd months (Jan–Feb, Mar–Apr…), 2 = even.
    start_month_parity: Mapped[int] = mapped_column(Integer, default=1)
    bill_day: Mapped[int] = mapped_column(Integer, default=1)


class BillCycleAssignment(Base):
    """Which bill cycle a service agreement is billed in (none: the monthly default)."""

    __tablename__ = "bill_cycle_assignment"
    service_agreement_id: Mapped[int] = mapped_column(ForeignKey("service_agreement.id"), primary_key=True)
    cycle_code: Mapped[str] = mapped_column(ForeignKey("bill_cycle.code"), index=True)
