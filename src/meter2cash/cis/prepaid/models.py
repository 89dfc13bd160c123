"""Tables of prepaid: wallets (operational state, never a balance) and daily prepaid charges."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import JSON, BigInteger, Date, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from meter2cash.core.timeutil import utcnow
from meter2cash.db import Base, Money, UTCDateTime


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
