"""Tables of collections: dunning steps taken and promises to pay."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from meter2cash.core.timeutil import utcnow
from meter2cash.db import Base, Money, UTCDateTime


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
