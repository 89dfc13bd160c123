"""Tariff definitions as validated pydantic models (parsed from TOML, see docs/tariffs.md).

Every amount and rate is a :class:`~decimal.Decimal` given as a TOML string or integer; a TOML
float is refused (binary floats cannot carry money exactly). Slab limits are kWh with at most
3 decimals (Wh), rates have at most 6 decimals, percentages at most 4.
"""

from __future__ import annotations

import itertools
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from meter2cash.cis.models import CUSTOMER_CLASSES

#: Bill-line components a tax may name in ``on``.
COMPONENTS = ("fixed", "energy", "tou", "demand", "prepaid_discount")
DAY_TYPES = ("weekday", "weekend", "holiday")
DayType = Literal["weekday", "weekend", "holiday"]


def _decimal(places: int) -> Any:
    def parse(value: Any) -> Decimal:
        if isinstance(value, bool):
            raise ValueError(f"expected a number as a quoted string, got {value!r}")
        if isinstance(value, float):
            raise ValueError(
                f'{value!r} is a float; quote money and rates so they stay exact, e.g. "{value}"'
            )
        if isinstance(value, Decimal):
            d = value
        elif isinstance(value, (int, str)):
            try:
                d = Decimal(str(value).strip())
            except InvalidOperation:
                raise ValueError(f"{value!r} is not a decimal number") from None
        else:
            raise ValueError(f"expected a decimal number as a string, got {type(value).__name__}")
        if not d.is_finite():
            raise ValueError(f"{value!r} is not a finite number")
        if d != d.quantize(Decimal(1).scaleb(-places)):
            raise ValueError(f"{value!r} has more than {places} decimal places")
        return d

    return BeforeValidator(parse)


#: A money amount or unit rate [currency or currency/unit], at most 6 decimals.
RateValue = Annotated[Decimal, _decimal(6)]
#: An energy quantity [kWh], at most 3 decimals.
KwhValue = Annotated[Decimal, _decimal(3)]
#: A percentage [%], at most 4 decimals.
PercentValue = Annotated[Decimal, _decimal(4)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Rounding(_Model):
    """How amounts round: each line to the currency's minor unit, or only the bill total."""

    mode: Literal["half_up", "half_even"] = "half_up"
    level: Literal["line", "bill"] = "line"


class FixedCharges(_Model):
    """Fixed charges per month [currency] and per kW of sanctioned load per month."""

    per_month: RateValue = Decimal(0)
    per_kw_month: RateValue = Decimal(0)


class Slab(_Model):
    """One energy slab: consumption up to ``upto`` kWh (``None``: no upper limit) at ``rate``."""

    upto: KwhValue | None = None
    rate: RateValue


class EnergyCharge(_Model):
    """Energy charge by slabs; ``telescopic``: each slab at its rate; ``non_telescopic``: the
    whole consumption at the rate of the slab reached."""

    method: Literal["telescopic", "non_telescopic"] = "telescopic"
    slabs: list[Slab] = Field(min_length=1)

    @field_validator("slabs")
    @classmethod
    def _ordered(cls, slabs: list[Slab]) -> list[Slab]:
        for i, s in enumerate(slabs[:-1]):
            if s.upto is None:
                raise ValueError(f"slab {i + 1} has no upper limit but is not the last slab")
        if slabs[-1].upto is not None:
            raise ValueError("the last slab must have no upper limit (leave out `upto`)")
        limits = [s.upto for s in slabs[:-1] if s.upto is not None]
        if any(b <= a for a, b in zip([Decimal(0), *limits], limits, strict=False)):
            raise ValueError("slab limits `upto` must be positive and increasing")
        return slabs


def _minute(text: str) -> int:
    try:
        hh, mm = text.split(":")
        h, m = int(hh), int(mm)
    except ValueError:
        raise ValueError(f"time {text!r} is not HH:MM") from None
    if not (0 <= h <= 24 and 0 <= m < 60) or (h == 24 and m):
        raise ValueError(f"time {text!r} is out of range 00:00..24:00")
    return h * 60 + m


def _all_day_types() -> list[DayType]:
    return ["weekday", "weekend", "holiday"]


class TouPeriod(_Model):
    """A time-of-use period: local ``start``–``end`` (wraps midnight when end ≤ start) on day types.

    Exactly one of ``rate`` (energy in this period at its own rate) or ``adder`` (surcharge, or
    rebate if negative, on top of the slab energy charge) [currency/kWh].
    """

    name: str = Field(min_length=1, max_length=32)
    start: str
    end: str
    days: list[DayType] = Field(default_factory=_all_day_types)
    months: list[int] | None = None
    rate: RateValue | None = None
    adder: RateValue | None = None

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        _minute(v)
        return v

    @field_validator("months")
    @classmethod
    def _months(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and any(not 1 <= m <= 12 for m in v):
            raise ValueError("months must be 1..12")
        return v

    @model_validator(mode="after")
    def _one_price(self) -> TouPeriod:
        if (self.rate is None) == (self.adder is None):
            raise ValueError(f"period {self.name!r} needs exactly one of `rate` or `adder`")
        return self

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
    periods: list[TouPeriod] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> TouCalendar:
        names = [self.default_period, *(p.name for p in self.periods)]
        if len(set(names)) != len(names):
            raise ValueError(f"period names must be unique: {names}")
        by_rate = {p.rate is not None for p in self.periods}
        if len(by_rate) > 1:
            raise ValueError("either every period has a `rate` or every period has an `adder`")
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
    def period_names(self) -> list[str]:
        return [self.default_period, *(p.name for p in self.periods)]


class DemandCharge(_Model):
    """Demand charge per kW of maximum demand over ``interval_s`` blocks (900 or 1800 s).

    Billing demand = max(maximum demand, ``floor_percent`` % of sanctioned load).
    """

    rate_per_kw: RateValue
    interval_s: Literal[900, 1800] = 900
    floor_percent: PercentValue = Decimal(0)


class Tax(_Model):
    """A duty or tax: ``percent`` of the sum of the named components."""

    code: str = Field(min_length=1, max_length=32)
    name: str
    percent: PercentValue
    on: list[Literal["fixed", "energy", "tou", "demand", "prepaid_discount"]] = Field(min_length=1)


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
    #: Discount for prepaid agreements [currency/kWh], shown as a negative line.
    prepaid_discount_per_kwh: RateValue = Decimal(0)

    @model_validator(mode="after")
    def _priced(self) -> TariffVersionDef:
        if self.effective_to is not None and self.effective_to < self.effective_from:
            raise ValueError("effective_to is before effective_from")
        by_rate = self.tou is not None and self.tou.priced_by_rate
        if self.energy is None and not by_rate:
            raise ValueError("a version needs [versions.energy] slabs or TOU periods with a `rate`")
        if self.energy is not None and by_rate:
            raise ValueError("TOU periods with a `rate` replace the energy slabs; use `adder` with slabs")
        if len({t.code for t in self.taxes}) != len(self.taxes):
            raise ValueError("tax codes must be unique")
        return self

    @property
    def period_names(self) -> list[str]:
        return self.tou.period_names if self.tou else ["all"]


class TariffDefinition(_Model):
    """A tariff file: identity, currency, rounding and its versions over time."""

    code: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    name: str = ""
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    customer_class: str = "residential"
    rounding: Rounding = Rounding()
    versions: list[TariffVersionDef] = Field(min_length=1)

    @field_validator("customer_class")
    @classmethod
    def _class(cls, v: str) -> str:
        if v not in CUSTOMER_CLASSES:
            raise ValueError(f"customer_class must be one of {', '.join(CUSTOMER_CLASSES)}")
        return v

    @field_validator("versions")
    @classmethod
    def _no_overlap(cls, versions: list[TariffVersionDef]) -> list[TariffVersionDef]:
        vs = sorted(versions, key=lambda v: v.effective_from)
        for a, b in itertools.pairwise(vs):
            if a.effective_from == b.effective_from:
                raise ValueError(f"two versions start on {a.effective_from}")
            if a.effective_to is None or a.effective_to >= b.effective_from:
                raise ValueError(
                    f"version from {a.effective_from} overlaps the one from {b.effective_from}; "
                    "give it an effective_to before the next version starts"
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
