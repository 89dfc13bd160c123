"""Tables of the ledger: accounts of the chart, journal entries and their lines."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Date, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from meter2cash.core.timeutil import utcnow
from meter2cash.db import Base, Money, UTCDateTime

# --- ledger ------------------------------------------------------------------------------------

LEDGER_TYPES = ("asset", "liability", "equity", "revenue", "expense")


class LedgerAccount(Base):
    __tablename__ = "ledger_account"
    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(16))


class JournalEntry(Base):
    """An immutable journal entry; corrections are new entries that reverse old ones."""

    __tablename__ = "journal_entry"
    id: Mapped[int] = mapped_column(primary_key=True)
    posted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    effective_date: Mapped[date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(32))
    reference: Mapped[str] = mapped_column(String(64), default="", index=True)
    memo: Mapped[str] = mapped_column(String(200), default="")
    #: Indexed: a reversal looks up whether the entry was already reversed.
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("journal_entry.id"), index=True)
    lines: Mapped[list[JournalLine]] = relationship(back_populates="entry")


class JournalLine(Base):
    """One leg of an entry: debit positive, credit negative; a customer account as sub-ledger."""

    __tablename__ = "journal_line"
    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("journal_entry.id"), index=True)
    ledger_account: Mapped[str] = mapped_column(ForeignKey("ledger_account.code"), index=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    entry: Mapped[JournalEntry] = relationship(back_populates="lines")
