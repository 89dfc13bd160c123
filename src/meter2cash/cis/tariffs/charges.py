"""The parts of a tariff version as validated pydantic models: rounding, fixed charges, energy
slabs, TOU prices, demand charges, taxes, and :class:`TariffVersionBase`, every field of a version.

Every amount and rate is a :class:`~decimal.Decimal` whose type states its rule
(:mod:`meter2cash.cis.tariffs.values`: places, digits, sign, range), checked as it is read. The
checks of a version as a whole (:mod:`meter2cash.cis.tariffs.checks`) take a
:class:`TariffVersionBase`; :class:`~meter2cash.cis.tariffs.definitions.TariffVersionDef` runs
them whenever a version is validated.
"""

from __future__ import annotations

import itertools
from datetime import date
from decimal import Decimal
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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
from meter2cash.mdm.tou import TouCalendar, TouPeriod

#: Bill-line components a tax may name in ``on``.
COMPONENTS: tuple[str, ...] = get_args(Component)


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


class TariffModel(BaseModel):
    """A part of a tariff file: unknown keys are refused, a parsed value never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Rounding(TariffModel):
    """How amounts round: each line to the currency's minor unit, or only the bill total."""

    mode: Literal["half_up", "half_even"] = "half_up"
    level: Literal["line", "bill"] = "line"


class FixedCharges(TariffModel):
    """Fixed charges [currency]: per month (money: the currency's minor unit), per day of supply,
    per kW of sanctioned load per month, per kVA of contract demand per month (rates). Monthly
    charges prorate by active days. None is negative."""

    per_month: MoneyValue = Decimal(0)
    per_day: RateValue = Decimal(0)
    per_kw_month: RateValue = Decimal(0)
    per_kva_month: RateValue = Decimal(0)


class Slab(TariffModel):
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


class SlabTable(TariffModel):
    """A slab table used when the period's total consumption is at most ``upto`` kWh
    (inclusive; the last table has no limit)."""

    upto: KwhValue | None = None
    method: Literal["telescopic", "non_telescopic"] = "telescopic"
    slabs: list[Slab] = Field(min_length=1)

    @field_validator("slabs")
    @classmethod
    def _ordered(cls, slabs: list[Slab]) -> list[Slab]:
        return check_slabs(slabs)


class EnergyCharge(TariffModel):
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


class PricedTouPeriod(TouPeriod):
    """A TOU period (:class:`~meter2cash.mdm.tou.TouPeriod`) with its price: exactly one of
    ``rate`` (energy in this period at its own rate), ``adder`` (surcharge, or rebate if
    negative, on top of the slab energy charge: the one TOU price that may be negative) or
    ``slab_rates`` [currency/kWh].
    """

    rate: RateValue | None = None
    adder: SignedRateValue | None = None
    #: The period's own rate for each energy slab (a period × slab rate table, as SAM's).
    slab_rates: list[RateValue] | None = None

    @model_validator(mode="after")
    def _one_price(self) -> PricedTouPeriod:
        if sum(x is not None for x in (self.rate, self.adder, self.slab_rates)) != 1:
            raise ValueError(f"period {self.name!r} needs exactly one of `rate`, `adder` or `slab_rates`")
        return self

    @property
    def pricing(self) -> str:
        """``rate``, ``adder`` or ``slab_rates``."""
        return "rate" if self.rate is not None else "adder" if self.adder is not None else "slab_rates"


class PricedTouCalendar(TouCalendar):
    """A TOU calendar (:class:`~meter2cash.mdm.tou.TouCalendar`) whose periods have prices, all
    of one kind; ``default_rate`` prices the default period when the periods have a ``rate``."""

    default_rate: RateValue | None = None
    #: With ``slab_rates``: ``proportional`` (slab limits apply to the month's total and each
    #: slab's kWh split across periods in proportion to their use, as NREL SAM does) or
    #: ``per_period`` (each period's kWh runs through the slab limits on its own).
    tier_split: Literal["proportional", "per_period"] = "proportional"
    periods: list[PricedTouPeriod] = Field(min_length=1)

    @model_validator(mode="after")
    def _priced(self) -> PricedTouCalendar:
        kinds = {p.pricing for p in self.periods}
        if len(kinds) > 1:
            raise ValueError("every period needs the same kind of price: `rate`, `adder` or `slab_rates`")
        by_rate = {p.rate is not None for p in self.periods}
        if by_rate == {True} and self.default_rate is None:
            raise ValueError("periods priced by `rate` need `default_rate` for the default period")
        if by_rate == {False} and self.default_rate is not None:
            raise ValueError("`default_rate` only applies when periods have a `rate`")
        return self

    @property
    def priced_by_rate(self) -> bool:
        return self.periods[0].rate is not None

    @property
    def pricing(self) -> str:
        return self.periods[0].pricing


class DemandCharge(TariffModel):
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


class Tax(TariffModel):
    """A duty or tax: ``percent`` of the sum of the named components."""

    code: str = Field(min_length=1, max_length=32)
    name: str
    percent: PercentValue
    on: list[Component] = Field(min_length=1)


class TariffVersionBase(TariffModel):
    """Every field of one version of a tariff, self-contained (code, currency and rounding copied
    from the file), each value checked by its type."""

    effective_from: date
    effective_to: date | None = None
    code: str = ""
    name: str = ""
    currency: str = ""
    customer_class: str = ""
    rounding: Rounding | None = None
    fixed: FixedCharges = FixedCharges()
    energy: EnergyCharge | None = None
    tou: PricedTouCalendar | None = None
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

    @property
    def period_names(self) -> list[str]:
        return self.tou.period_names if self.tou else ["all"]
