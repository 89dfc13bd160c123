"""Schemas of the REST API (the edge only; services return models and dicts).

Money travels as decimal strings both ways: in requests through :data:`Money` (``parse_money``:
no floats, no exponents, bounded digits, the currency's minor units), in responses in the
currency's minor units (``"532.73"``, :func:`money_text`). Quantities are decimal strings too
(:data:`Quantity`). Dates in requests lie in the platform's window (:data:`SaneDate`);
timestamps are ISO 8601 in UTC.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from meter2cash.core.errors import InvalidInput
from meter2cash.core.money import MAX_INTEGER_DIGITS, format_money, minor_exponent, parse_money
from meter2cash.core.timeutil import FIRST_DATE, LAST_DATE, check_date

T = TypeVar("T")

#: The platform's currency during a request (set by the route class, ``api/limits.py``).
REQUEST_CURRENCY: ContextVar[str] = ContextVar("request_currency", default="INR")


def positive_decimal_pattern(digits: int, places: int, *, trailing_zeros: bool = True) -> str:
    """The regular expression of a positive decimal in plain notation: at most ``digits`` before
    the point, at most ``places`` significant decimals (and, with ``trailing_zeros``, any zeros
    past them), no sign, no exponent."""
    integer = rf"0*[1-9][0-9]{{0,{digits - 1}}}"
    zeros = "0*" if trailing_zeros else ""
    if places == 0:
        return rf"^{integer}(\.{zeros})?$"
    fraction = "|".join(f"0{{{k}}}[1-9][0-9]{{0,{places - k - 1}}}" for k in range(places))
    return rf"^({integer}(\.[0-9]{{0,{places}}}{zeros})?|0*\.({fraction}){zeros})$"


def money_pattern(places: int) -> str:
    """A positive amount as :func:`parse_money` takes it, for a currency of ``places`` decimals."""
    return positive_decimal_pattern(MAX_INTEGER_DIGITS, places)


def _money_in(value: object, info: ValidationInfo) -> Decimal:
    currency = REQUEST_CURRENCY.get()
    field = info.field_name or "amount"
    if not isinstance(value, str):
        kind = "a JSON number" if isinstance(value, int | float) and not isinstance(value, bool) else None
        raise PydanticCustomError(
            "money",
            '{field}: give money as a decimal string such as "12.50", not {kind}',
            {"field": field, "kind": kind or type(value).__name__},
        )
    try:
        amount = parse_money(value, currency, field=field)
    except InvalidInput as exc:
        raise PydanticCustomError("money", "{reason}", {"reason": exc.message}) from None
    if not re.fullmatch(money_pattern(minor_exponent(currency)), value):
        raise PydanticCustomError(
            "money", "{field}: write the amount as plain digits such as 12.50", {"field": field}
        )
    return amount


#: An amount of money in a request: a positive decimal string (``"120.50"``); JSON numbers are
#: refused (a float is inexact), so are exponents, more than 12 integer digits and more decimals
#: than the currency's minor unit. ``x-money`` marks it for :func:`tailor_openapi`.
Money = Annotated[
    Decimal,
    BeforeValidator(_money_in),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": money_pattern(2),
            "maxLength": MAX_INTEGER_DIGITS + 20,
            "description": "a positive amount as a decimal string, at most 12 digits before the point "
            "and no more decimals than the currency's minor unit",
            "examples": ["120.50"],
            "x-money": True,
        },
        mode="validation",
    ),
]


def tailor_openapi(document: dict[str, Any], currency: str) -> dict[str, Any]:
    """Give every money schema of an OpenAPI ``document`` the pattern of ``currency``'s minor
    unit (0 places for JPY, 3 for KWD), so the schema says what this server accepts."""
    pattern = money_pattern(minor_exponent(currency))

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("x-money") is True:
                node["pattern"] = pattern
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(document)
    return document


def _sane_date(day: date, info: ValidationInfo) -> date:
    try:
        return check_date(day, info.field_name or "date")
    except InvalidInput as exc:
        raise PydanticCustomError("date_out_of_range", "{reason}", {"reason": exc.message}) from None


#: ``YYYY-MM-DD`` between 1970-01-01 and 2199-12-31 (:func:`meter2cash.core.timeutil.check_date`).
DATE_PATTERN = r"^(19[7-9][0-9]|2[01][0-9][0-9])-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
SaneDate = Annotated[
    date,
    AfterValidator(_sane_date),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date",
            "pattern": DATE_PATTERN,
            "description": f"a date from {FIRST_DATE} to {LAST_DATE}",
        },
        mode="validation",
    ),
]


#: Sanctioned load and contract demand: at most 999,999.999 kW (kVA), three places.
LOAD_PATTERN = positive_decimal_pattern(6, 3, trailing_zeros=False)


def _load_in(value: object, info: ValidationInfo) -> Decimal:
    field = info.field_name or "load"
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 999_999:
        return Decimal(value)
    if isinstance(value, str) and re.fullmatch(LOAD_PATTERN, value):
        return Decimal(value)
    raise PydanticCustomError(
        "load",
        "{field}: give a load as a positive decimal string with at most 3 places and 6 digits before "
        'the point ("7.5"), or a whole number; not {value}',
        {"field": field, "value": repr(value)[:40]},
    )


#: A load [kW or kVA] in a request: a decimal string (``"7.5"``) or a whole number.
Load = Annotated[
    Decimal,
    BeforeValidator(_load_in),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": LOAD_PATTERN, "maxLength": 40},
                {"type": "integer", "minimum": 1, "maximum": 999_999},
            ],
            "examples": ["7.5"],
        },
        mode="validation",
    ),
]


def money_text(amount: Decimal | None, currency: str) -> str | None:
    """An amount in the currency's minor units as text: ``532.73`` (stored ``532.7300``)."""
    return None if amount is None else format_money(Decimal(amount), currency)


def quantity_text(value: Decimal | float | int | None) -> str | None:
    """A quantity as a plain decimal string without trailing zeros: ``123.5``, ``40``."""
    if value is None:
        return None
    d = value if isinstance(value, Decimal) else Decimal(str(value))
    text = f"{d.normalize():f}"
    return "0" if text in ("-0", "0") else text


#: Money in a response: a decimal string in the currency's minor units.
MoneyText = Annotated[str, Field(examples=["532.73"], description="decimal string, currency's minor units")]
#: A quantity in a response (kWh, kW, kVA, a multiplier): a decimal string.
Quantity = Annotated[
    Decimal,
    PlainSerializer(quantity_text, return_type=str, when_used="always"),
    WithJsonSchema({"type": "string", "examples": ["123.5"]}, mode="serialization"),
]


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class Health(BaseModel):
    """What anyone may know: the server is up."""

    status: str = Field(description="ok (with detail: not_migrated when the database is behind)")


class HealthDetail(Health):
    """What an authenticated caller also gets."""

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
    sanctioned_load_kw: Quantity
    contract_demand_kva: Quantity | None
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
    balance: MoneyText | None
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
    capacity_kva: Quantity | None


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
    multiplier: Quantity
    active: bool


class InstallationOut(BaseModel):
    service_point: str
    installed_at: datetime
    removed_at: datetime | None
    install_read_kwh: Quantity | None
    removal_read_kwh: Quantity | None


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
    #: Decimal strings, ``null`` where there is no value.
    values: list[str | None]
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
    total_kwh: Quantity
    subtotal: MoneyText
    tax: MoneyText
    total: MoneyText


class BillLineOut(BaseModel):
    seq: int
    component: str
    description: str
    quantity: Quantity | None
    unit: str
    rate: Quantity | None
    amount: MoneyText
    ledger_account: str


class BillDetail(BillOut):
    #: Share of the billed energy that was estimated, 0 to 1.
    estimated_share: Quantity
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
