"""Tables of parties and contracts: people, accounts, premises, service points, service agreements,
contract terms.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Date, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from meter2cash.core.timeutil import utcnow
from meter2cash.db import Base, Quantity, UTCDateTime


class Person(Base):
    __tablename__ = "person"
    id: Mapped[int] = mapped_column(primary_key=True)
    #: Natural key from the source system (master-data bundles refer to a person by it).
    key: Mapped[str | None] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(32), default="")
    email: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Account(Base):
    __tablename__ = "account"
    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"), index=True)
    customer_class: Mapped[str] = mapped_column(String(16), default="residential")
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    person: Mapped[Person] = relationship()


class Premise(Base):
    __tablename__ = "premise"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    address: Mapped[str] = mapped_column(String(300), default="")
    city: Mapped[str] = mapped_column(String(100), default="")
    postcode: Mapped[str] = mapped_column(String(16), default="")


class ServicePoint(Base):
    """Where service is delivered and measured; hangs below a distribution transformer."""

    __tablename__ = "service_point"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    premise_id: Mapped[int] = mapped_column(ForeignKey("premise.id"), index=True)
    dt_id: Mapped[int | None] = mapped_column(ForeignKey("distribution_transformer.id"), index=True)
    service_type: Mapped[str] = mapped_column(String(16), default="electric")
    status: Mapped[str] = mapped_column(String(16), default="active")
    premise: Mapped[Premise] = relationship()


class ServiceAgreement(Base):
    """Account × service point × tariff, prepaid or postpaid, over a period."""

    __tablename__ = "service_agreement"
    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    service_point_id: Mapped[int] = mapped_column(ForeignKey("service_point.id"), index=True)
    tariff_code: Mapped[str] = mapped_column(String(64))
    payment_mode: Mapped[str] = mapped_column(String(16), default="postpaid")
    sanctioned_load_kw: Mapped[Decimal] = mapped_column(Quantity, default=Decimal(0))
    contract_demand_kva: Mapped[Decimal | None] = mapped_column(Quantity)
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="active")
    account: Mapped[Account] = relationship()
    service_point: Mapped[ServicePoint] = relationship()


class ContractTerm(Base):
    """The terms of a service agreement from a date on: contracted load, payment mode and
    tariff. A change inside a billing period splits the bill into segments, so charges per kW
    sanctioned or kVA contracted are prorated by the days under each term, each segment is rated
    on its own tariff, and only postpaid days are billed (prepaid days are charged by the prepaid
    engine); the agreement's own columns hold the latest term."""

    __tablename__ = "contract_term"
    __table_args__ = (UniqueConstraint("service_agreement_id", "effective_from"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    service_agreement_id: Mapped[int] = mapped_column(ForeignKey("service_agreement.id"), index=True)
    effective_from: Mapped[date] = mapped_column(Date)
    sanctioned_load_kw: Mapped[Decimal] = mapped_column(Quantity)
    contract_demand_kva: Mapped[Decimal | None] = mapped_column(Quantity)
    #: ``prepaid`` or ``postpaid`` from ``effective_from`` on.
    payment_mode: Mapped[str] = mapped_column(String(16))
    tariff_code: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100), default="")
