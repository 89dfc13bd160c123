"""Response schemas of the REST API (the edge only; services return models and dicts).

Money and quantities are ``Decimal`` and travel as JSON strings; timestamps are ISO 8601 in UTC.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class Health(BaseModel):
    status: str
    version: str
    database: str
    database_revision: str | None
    code_revision: str | None


class PersonOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    key: str | None
    name: str
    phone: str
    email: str


class AgreementOut(BaseModel):
    number: str
    account: str
    service_point: str
    tariff_code: str
    payment_mode: str
    sanctioned_load_kw: Decimal
    contract_demand_kva: Decimal | None
    start_date: date
    end_date: date | None
    status: str


class AccountOut(BaseModel):
    number: str
    customer_class: str
    status: str
    person_key: str | None
    person_name: str


class AccountDetail(BaseModel):
    number: str
    customer_class: str
    status: str
    person: PersonOut
    service_agreements: list[AgreementOut]
    #: Receivable balance (ledger account 1100), positive = the customer owes; ``None`` if never posted.
    balance: Decimal | None
    currency: str


class PremiseOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    code: str
    address: str
    city: str
    postcode: str


class TransformerOut(BaseModel):
    code: str
    name: str
    feeder: str | None
    capacity_kva: Decimal | None


class ServicePointOut(BaseModel):
    code: str
    premise: str
    transformer: str | None
    status: str


class InstalledMeter(BaseModel):
    serial: str
    installed_at: datetime


class ServicePointDetail(BaseModel):
    code: str
    service_type: str
    status: str
    premise: PremiseOut
    transformer: TransformerOut | None
    meter: InstalledMeter | None
    agreements: list[AgreementOut]


class MeterOut(BaseModel):
    serial: str
    manufacturer: str
    model: str
    phase: str
    status: str
    dcu: str | None


class ChannelOut(BaseModel):
    reading_type: str
    name: str
    unit: str
    obis: str
    interval_s: int | None
    multiplier: Decimal
    active: bool


class InstallationOut(BaseModel):
    service_point: str
    installed_at: datetime
    removed_at: datetime | None
    install_read_kwh: float | None
    removal_read_kwh: float | None


class StatusChangeOut(BaseModel):
    from_status: str | None
    to_status: str
    at: datetime
    reason: str


class MeterDetail(MeterOut):
    channels: list[ChannelOut]
    installations: list[InstallationOut]
    status_history: list[StatusChangeOut]


class Readings(BaseModel):
    """Interval data of one channel, column-wise: ``starts[i]`` has ``values[i]`` and ``flags[i]``."""

    meter: str
    channel: str
    unit: str
    interval_s: int
    start: datetime
    end: datetime
    starts: list[str]
    values: list[float | None]
    flags: list[int]
    quality: list[str]


class BillOut(BaseModel):
    number: str
    account: str
    service_agreement: str
    kind: str
    status: str
    period: str
    period_start: datetime
    period_end: datetime
    issued_at: datetime
    due_date: date | None
    tariff_code: str
    currency: str
    total_kwh: Decimal
    subtotal: Decimal
    tax: Decimal
    total: Decimal


class BillLineOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    seq: int
    component: str
    description: str
    quantity: Decimal | None
    unit: str
    rate: Decimal | None
    amount: Decimal
    ledger_account: str


class BillDetail(BillOut):
    estimated_share: float
    lines: list[BillLineOut]
    determinants: dict[str, Any]


class ProblemOut(BaseModel):
    code: str
    message: str
    line: int | None = None
    field: str | None = None
    source: str | None = None
    data: dict[str, Any] | None = None


class EntityCountsOut(BaseModel):
    created: int
    updated: int
    unchanged: int
    rejected: int


class MasterDataResult(BaseModel):
    created: int
    updated: int
    unchanged: int
    rejected: int
    entities: dict[str, EntityCountsOut]
    problems: list[ProblemOut]
