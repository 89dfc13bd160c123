"""Tariff components beyond fixed, slab, TOU and demand charges (see docs/tariffs.md).

Power factor, minimum charge, fuel/power-purchase adjustment, payment terms (prompt-payment
rebate, late-payment surcharge) and net metering. All amounts are exact decimals whose type
states their rule (:mod:`meter2cash.cis.tariffs.values`): only the fuel adjustment may be
negative (a credit); the rebates and credits here are given as positive rates or percentages.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from meter2cash.cis.tariffs.values import (
    KwhValue,
    MoneyValue,
    PercentValue,
    RateValue,
    SignedRateValue,
    TermsPercentValue,
    problem,
)

#: Bill-line components a tax, minimum charge or power-factor adjustment may name in ``on``.
Component = Literal[
    "fixed",
    "energy",
    "tou",
    "demand",
    "prepaid_discount",
    "fuel",
    "power_factor",
    "minimum",
    "export_credit",
]


def _components(*names: Component) -> list[Component]:
    return list(names)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PowerFactor(_Model):
    """Power-factor penalty and incentive on the period's average PF = kWh / kVAh.

    For every full ``step`` the PF is below ``reference``, ``penalty_percent`` % of the named
    components is added; for every full ``step`` above ``incentive_above``,
    ``incentive_percent`` % is credited (up to ``max_incentive_percent``). Needs kVAh.
    """

    reference: Decimal = Field(default=Decimal("0.90"), ge=0, le=1, decimal_places=4)
    step: Decimal = Field(default=Decimal("0.01"), gt=0, le=1, decimal_places=4)
    penalty_percent: PercentValue = Decimal(1)
    incentive_above: Decimal = Field(default=Decimal("0.95"), ge=0, le=1, decimal_places=4)
    incentive_percent: PercentValue = Decimal(0)
    max_incentive_percent: PercentValue = Decimal(5)
    max_penalty_percent: PercentValue = Decimal(30)
    on: list[Component] = Field(default_factory=lambda: _components("energy", "tou"), min_length=1)

    @field_validator("reference", "step", "incentive_above", mode="before")
    @classmethod
    def _no_float(cls, v: object) -> object:
        if isinstance(v, float):
            raise problem("tariff.float", f'{v!r} is a float; quote it, e.g. "{v}"')
        return v


class MinimumCharge(_Model):
    """Minimum charge per month [currency, in its minor unit]: when the named components sum to
    less, a top-up line makes up the difference (prorated by active days)."""

    per_month: MoneyValue
    on: list[Component] = Field(
        default_factory=lambda: _components("fixed", "energy", "tou", "demand"), min_length=1
    )


_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


class FuelAdjustment(_Model):
    """Fuel and power-purchase cost adjustment: a per-kWh rate by billing month (``YYYY-MM``).

    A month without an entry has no adjustment; a negative rate is a credit (at most the lowest
    energy rate).
    """

    name: str = "Fuel and power purchase cost adjustment"
    per_kwh: dict[str, SignedRateValue] = Field(default_factory=dict)

    @field_validator("per_kwh")
    @classmethod
    def _months(cls, v: dict[str, Decimal]) -> dict[str, Decimal]:
        bad = [k for k in v if not _MONTH.match(k)]
        if bad:
            raise problem("tariff.bad_month", f"months must be YYYY-MM, got {bad}")
        return v


class PaymentTerms(_Model):
    """Prompt-payment rebate and late-payment surcharge, recorded on the bill as its terms.

    They are not bill lines: the rebate (``prompt_percent`` % of the total) is earned when the
    bill is paid within ``prompt_days`` of issue; the surcharge (``late_percent`` % of what is
    still open, once a month, from ``late_grace_days`` days after the due date) is levied by
    collections from the bill's record (:mod:`meter2cash.cis.rating.payment_terms`). A field left out
    takes the utility's default; ``0`` states "none".
    """

    prompt_days: int | None = Field(default=None, ge=0, le=60)
    prompt_percent: TermsPercentValue | None = None
    late_percent: TermsPercentValue | None = None
    late_grace_days: int | None = Field(default=None, ge=0, le=90)


class NetMetering(_Model):
    """Net metering of exported energy.

    ``net_energy``: exports offset imports kWh for kWh in the month; a surplus is banked and
    rolls over to later months; in ``true_up_month`` (1–12) the bank is paid out at
    ``export_rate`` and emptied. ``net_billing``: imports bill in full, every exported kWh is
    credited at ``export_rate``. ``bank_expiry``: ``lapse`` drops the bank at true-up instead
    of paying it.
    """

    mode: Literal["net_energy", "net_billing"] = "net_energy"
    #: A credit per exported kWh, given as a positive rate.
    export_rate: RateValue = Decimal(0)
    true_up_month: int = Field(default=3, ge=1, le=12)
    bank_expiry: Literal["pay", "lapse"] = "pay"
    max_bank_kwh: KwhValue | None = None
