"""Tariff definitions as validated pydantic models (parsed from TOML, see docs/tariffs.md).

Every amount and rate is a :class:`~decimal.Decimal` given as a TOML string or integer; a TOML
float is refused (binary floats cannot carry money exactly). Each decimal field's type states its
rule (:mod:`meter2cash.cis.tariffs.values`: places, digits, sign, range); a whole version is
checked by the validations of :mod:`meter2cash.cis.tariffs.checks`. Every fault carries a stable
code (``tariff.negative_amount``, ``tariff.bad_percent``, ``tariff.unknown_currency`` …).
"""

from __future__ import annotations

import itertools
from datetime import date
from decimal import Decimal
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from meter2cash.cis.parties.constants import CUSTOMER_CLASSES
from meter2cash.cis.tariffs.checks import check_version
from meter2cash.cis.tariffs.components import (
    Component,
    FuelAdjustment,
    MinimumCharge,
    NetMetering,
    PaymentTerms,
    PowerFactor,
)
from meter2cash.cis.tariffs.values import (
    KwhValue,
    MoneyValue,
    PercentValue,
    RateValue,
    SignedRateValue,
    problem,
)
from meter2cash.core.errors import M2CError
from meter2cash.core.money import check_currency
from meter2cash.core.timeutil import check_date

#: Bill-line components a tax may name in ``on``.
COMPONENTS: tuple[str, ...] = get_args(Component)
DAY_TYPES = ("weekday", "weekend", "holiday")
DayType = Literal["weekday", "weekend", "holiday"]


#: The error type of a version's failed :data:`~meter2cash.cis.tariffs.checks.VERSION_CHECKS`;
#: its ``ctx["problems"]`` lists them.
CHECKS_FAILED = "tariff.checks"


def iso_currency(v: str) -> str:
    """``v`` when it is an ISO 4217 code in upper case (``tariff.unknown_currency``)."""
    try:
        if check_currency(v) == v:
            return v
    except M2CError:
        pass
    raise problem(
        "tariff.unknown_currency", f"{v!r} is not an ISO 4217 currency code (such as INR, USD, JPY)"
    )


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Rounding(_Model):
    """How amounts round: each line to the currency's minor unit, or only the bill total."""

    mode: Literal["half_up", "half_even"] = "half_up"
    level: Literal["line", "bill"] = "line"


class FixedCharges(_Model):
    """Fixed charges [currency]: per month (money: the currency's minor unit), per day of supply,
    per kW of sanctioned load per month, per kVA of contract demand per month (rates). Monthly
    charges prorate by active days. None is negative."""

    per_month: MoneyValue = Decimal(0)
    per_day: RateValue = Decimal(0)
    per_kw_month: RateValue = Decimal(0)
    per_kva_month: RateValue = Decimal(0)


class Slab(_Model):
    """One energy slab: consumption up to ``upto`` kWh (``None``: no upper limit) at ``rate``."""

    upto: KwhValue | None = None
    rate: RateValue


def check_slabs(slabs: list[Slab]) -> list[Slab]:
    """Slab limits: increasing, only the last without ``upto``."""
    for i, s in enumerate(slabs[:-1]):
        if s.upto is None:
            raise problem("tariff.slab_order", f"slab {i + 1} has no upper limit but is not the last slab")
    if slabs[-1].upto is not None:
        raise problem("tariff.slab_order", "the last slab must have no upper limit (leave out `upto`)")
    limits = [s.upto for s in slabs[:-1] if s.upto is not None]
    if any(b <= a for a, b in zip([Decimal(0), *limits], limits, strict=False)):
        raise problem("tariff.slab_order", "slab limits `upto` must be positive and increasing")
    return slabs


class SlabTable(_Model):
    """A slab table used when the period's total consumption is at most ``upto`` kWh
    (inclusive; the last table has no limit)."""

    upto: KwhValue | None = None
    method: Literal["telescopic", "non_telescopic"] = "telescopic"
    slabs: list[Slab] = Field(min_length=1)

    @field_validator("slabs")
    @classmethod
    def _ordered(cls, slabs: list[Slab]) -> list[Slab]:
        return check_slabs(slabs)


class EnergyCharge(_Model):
    """Energy charge by slabs; ``telescopic``: each slab at its rate; ``non_telescopic``: the
    whole consumption at the rate of the slab reached."""

    method: Literal["telescopic", "non_telescopic"] = "telescopic"
    slabs: list[Slab] = Field(default_factory=list)
    #: ``kwh`` (default) or ``kvah``: the energy quantity billed (kVAh billing).
    basis: Literal["kwh", "kvah"] = "kwh"
    #: Slab tables chosen by the period's total consumption (instead of ``slabs``).
    tables: list[SlabTable] = Field(default_factory=list)
    #: Scale slab limits by active days / days in the period (partial periods, segments).
    prorate_slabs: bool = False

    @model_validator(mode="after")
    def _slabs_or_tables(self) -> EnergyCharge:
        if bool(self.slabs) == bool(self.tables):
            raise ValueError("give either `slabs` or `tables` (slab tables chosen by total consumption)")
        if self.tables:
            limits = [t.upto for t in self.tables[:-1]]
            if any(u is None for u in limits) or self.tables[-1].upto is not None:
                raise problem("tariff.slab_order", "every table but the last needs `upto`; the last has none")
            if any(b <= a for a, b in itertools.pairwise([Decimal(0), *limits])):  # type: ignore[operator]
                raise problem("tariff.slab_order", "table limits `upto` must be positive and increasing")
        return self

    @property
    def all_tables(self) -> list[SlabTable]:
        """The slab tables, the plain ``slabs`` being one table for all consumption."""
        return self.tables or [SlabTable(method=self.method, slabs=self.slabs)]

    @field_validator("slabs")
    @classmethod
    def _ordered(cls, slabs: list[Slab]) -> list[Slab]:
        if not slabs:
            return slabs
        return check_slabs(slabs)


def _minute(text: str) -> int:
    try:
        hh, mm = text.split(":")
        h, m = int(hh), int(mm)
    except ValueError:
        raise problem("tariff.bad_time", f"time {text!r} is not HH:MM") from None
    if not (0 <= h <= 24 and 0 <= m < 60) or (h == 24 and m):
        raise problem("tariff.bad_time", f"time {text!r} is out of range 00:00..24:00")
    return h * 60 + m


def _all_day_types() -> list[DayType]:
    return ["weekday", "weekend", "holiday"]


class TouPeriod(_Model):
    """A time-of-use period: local ``start``–``end`` (wraps midnight when end ≤ start) on day types.

    Exactly one of ``rate`` (energy in this period at its own rate), ``adder`` (surcharge, or
    rebate if negative, on top of the slab energy charge: the one TOU price that may be
    negative) or ``slab_rates`` [currency/kWh].
    """

    name: str = Field(min_length=1, max_length=32)
    start: str
    end: str
    days: list[DayType] = Field(default_factory=_all_day_types)
    months: list[int] | None = None
    rate: RateValue | None = None
    adder: SignedRateValue | None = None
    #: The period's own rate for each energy slab (a period × slab rate table, as SAM's).
    slab_rates: list[RateValue] | None = None

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        _minute(v)
        return v

    @field_validator("months")
    @classmethod
    def _months(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and any(not 1 <= m <= 12 for m in v):
            raise problem("tariff.out_of_range", "months must be 1..12")
        return v

    @model_validator(mode="after")
    def _one_price(self) -> TouPeriod:
        if sum(x is not None for x in (self.rate, self.adder, self.slab_rates)) != 1:
            raise ValueError(f"period {self.name!r} needs exactly one of `rate`, `adder` or `slab_rates`")
        return self

    @property
    def pricing(self) -> str:
        """``rate``, ``adder`` or ``slab_rates``."""
        return "rate" if self.rate is not None else "adder" if self.adder is not None else "slab_rates"

    @property
    def start_minute(self) -> int:
        return _minute(self.start)

    @property
    def end_minute(self) -> int:
        return _minute(self.end)


class TouCalendar(_Model):
    """TOU periods; every moment outside them belongs to ``default_period`` (index 0)."""

    default_period: str = "normal"
    default_rate: RateValue | None = None
    #: ISO country code for public holidays (the ``holidays`` package), e.g. ``IN``; optional.
    holidays: str | None = None
    holidays_subdiv: str | None = None
    #: Local weekdays that are weekend days (Monday = 0).
    weekend_days: list[int] = Field(default_factory=lambda: [5, 6])
    #: The utility's own holiday list (added to the country's).
    holiday_dates: list[date] = Field(default_factory=list)
    #: With ``slab_rates``: ``proportional`` (slab limits apply to the month's total and each
    #: slab's kWh split across periods in proportion to their use, as NREL SAM does) or
    #: ``per_period`` (each period's kWh runs through the slab limits on its own).
    tier_split: Literal["proportional", "per_period"] = "proportional"
    periods: list[TouPeriod] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> TouCalendar:
        names = [self.default_period, *(p.name for p in self.periods)]
        if len(set(names)) != len(names):
            raise ValueError(f"period names must be unique: {names}")
        kinds = {p.pricing for p in self.periods}
        if len(kinds) > 1:
            raise ValueError("every period needs the same kind of price: `rate`, `adder` or `slab_rates`")
        by_rate = {p.rate is not None for p in self.periods}
        if by_rate == {True} and self.default_rate is None:
            raise ValueError("periods priced by `rate` need `default_rate` for the default period")
        if by_rate == {False} and self.default_rate is not None:
            raise ValueError("`default_rate` only applies when periods have a `rate`")
        if any(not 0 <= d <= 6 for d in self.weekend_days):
            raise ValueError("weekend_days are weekdays 0 (Monday) .. 6 (Sunday)")
        if self.holidays:
            import holidays

            if self.holidays.upper() not in holidays.list_supported_countries():
                raise ValueError(f"no holiday calendar for country {self.holidays!r}")
        return self

    @property
    def priced_by_rate(self) -> bool:
        return self.periods[0].rate is not None

    @property
    def pricing(self) -> str:
        return self.periods[0].pricing

    @property
    def period_names(self) -> list[str]:
        return [self.default_period, *(p.name for p in self.periods)]


class DemandCharge(_Model):
    """Demand charges on maximum demand over ``interval_s`` blocks (900, 1800 or 3600 s).

    ``rate_per_kw`` applies to the billing demand = max(maximum demand, ``floor_percent`` % of
    sanctioned load, ``contract_percent`` % of contract demand, ``ratchet_percent`` % of the
    highest maximum demand of the previous ``ratchet_months`` bills). ``by_period`` charges the
    maximum demand inside each named TOU period at its own rate per kW.
    """

    rate_per_kw: RateValue = Decimal(0)
    interval_s: Literal[900, 1800, 3600] = 900
    floor_percent: PercentValue = Decimal(0)
    contract_percent: PercentValue = Decimal(0)
    ratchet_percent: PercentValue = Decimal(0)
    ratchet_months: int = Field(default=11, ge=0, le=36)
    by_period: dict[str, RateValue] = Field(default_factory=dict)


class Tax(_Model):
    """A duty or tax: ``percent`` of the sum of the named components."""

    code: str = Field(min_length=1, max_length=32)
    name: str
    percent: PercentValue
    on: list[Component] = Field(min_length=1)


class TariffVersionDef(_Model):
    """One version of a tariff, self-contained (code, currency and rounding copied from the file)."""

    effective_from: date
    effective_to: date | None = None
    code: str = ""
    name: str = ""
    currency: str = ""
    customer_class: str = ""
    rounding: Rounding | None = None
    fixed: FixedCharges = FixedCharges()
    energy: EnergyCharge | None = None
    tou: TouCalendar | None = None
    demand: DemandCharge | None = None
    taxes: list[Tax] = Field(default_factory=list)
    #: Discount for prepaid agreements [currency/kWh], given as a positive rate and shown as a
    #: negative line.
    prepaid_discount_per_kwh: RateValue = Decimal(0)
    power_factor: PowerFactor | None = None
    minimum: MinimumCharge | None = None
    fuel_adjustment: FuelAdjustment | None = None
    payment_terms: PaymentTerms = PaymentTerms()
    net_metering: NetMetering | None = None

    @field_validator("currency")
    @classmethod
    def _currency(cls, v: str) -> str:
        return v and iso_currency(v)

    @field_validator("effective_from", "effective_to")
    @classmethod
    def _sane_date(cls, v: date | None) -> date | None:
        try:
            return v if v is None else check_date(v, "date")
        except M2CError as exc:
            raise problem("tariff.bad_date", exc.message) from None

    @model_validator(mode="after")
    def _checked(self) -> TariffVersionDef:
        """Run every version validation; all their problems travel in one error (``ctx``)."""
        problems = check_version(self)
        if problems:
            listed = "; ".join(f"{p.field}: {p.message} ({p.code})" for p in problems)
            raise PydanticCustomError(
                CHECKS_FAILED, "{message}", {"message": listed, "problems": [p.to_dict() for p in problems]}
            )
        return self

    @property
    def period_names(self) -> list[str]:
        return self.tou.period_names if self.tou else ["all"]


class TariffDefinition(_Model):
    """A tariff file: identity, currency, rounding and its versions over time."""

    code: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    name: str = ""
    currency: str
    customer_class: str = "residential"
    rounding: Rounding = Rounding()
    versions: list[TariffVersionDef] = Field(min_length=1)

    @field_validator("currency")
    @classmethod
    def _currency(cls, v: str) -> str:
        return iso_currency(v)

    @field_validator("customer_class")
    @classmethod
    def _class(cls, v: str) -> str:
        if v not in CUSTOMER_CLASSES:
            raise problem("tariff.bad_choice", f"customer_class must be one of {', '.join(CUSTOMER_CLASSES)}")
        return v

    @field_validator("versions", mode="before")
    @classmethod
    def _in_currency(cls, versions: Any, info: ValidationInfo) -> Any:
        """Each version is checked in the file's currency (money in its minor unit)."""
        currency = info.data.get("currency")
        if not currency or not isinstance(versions, list):
            return versions
        return [{**v, "currency": currency} if isinstance(v, dict) else v for v in versions]

    @field_validator("versions")
    @classmethod
    def _no_overlap(cls, versions: list[TariffVersionDef]) -> list[TariffVersionDef]:
        vs = sorted(versions, key=lambda v: v.effective_from)
        for a, b in itertools.pairwise(vs):
            if a.effective_from == b.effective_from:
                raise problem("tariff.version_overlap", f"two versions start on {a.effective_from}")
            if a.effective_to is None or a.effective_to >= b.effective_from:
                raise problem(
                    "tariff.version_overlap",
                    f"version from {a.effective_from} overlaps the one from {b.effective_from}; "
                    "give it an effective_to before the next version starts",
                )
        return vs

    @model_validator(mode="after")
    def _fill_versions(self) -> TariffDefinition:
        filled = [
            v.model_copy(
                update={
                    "code": self.code,
                    "name": v.name or self.name,
                    "currency": self.currency,
                    "customer_class": self.customer_class,
                    "rounding": v.rounding or self.rounding,
                }
            )
            for v in self.versions
        ]
        object.__setattr__(self, "versions", filled)
        return self

    def version_on(self, on: date) -> TariffVersionDef | None:
        for v in reversed(self.versions):
            if v.effective_from <= on and (v.effective_to is None or on <= v.effective_to):
                return v
        return None
