"""Validations of a tariff version as a whole: a list of plain functions, all run.

Each function takes a version and returns the problems it finds, every one with a stable code and
the field's path inside the version (``energy.slabs[1].rate``); :func:`check_version` runs them
all and reports everything at once. They relate fields to each other (components to prices, money
to the currency); the rule on a single value (sign, range, digits) is declared by its type in
:mod:`meter2cash.cis.tariffs.values` and checked as the value is read.

The checks read a version's fields (:class:`~meter2cash.cis.tariffs.charges.TariffVersionBase`);
:class:`~meter2cash.cis.tariffs.definitions.TariffVersionDef` runs them whenever it is validated:
when a file is loaded and when a stored definition is read back, so a version that breaks them
never reaches rating.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel

from meter2cash.cis.tariffs.charges import TariffVersionBase
from meter2cash.cis.tariffs.values import ValueRule
from meter2cash.core.errors import M2CError, Problem
from meter2cash.core.money import minor_exponent

Check = Callable[[TariffVersionBase], list[Problem]]


def _at(path: str, name: str | int) -> str:
    if isinstance(name, int):
        return f"{path}[{name}]"
    return f"{path}.{name}" if path else name


def _rule_in(annotation: Any) -> ValueRule | None:
    if get_origin(annotation) is Annotated:
        return next((m for m in get_args(annotation)[1:] if isinstance(m, ValueRule)), None)
    return next((r for a in get_args(annotation) if (r := _rule_in(a)) is not None), None)


@functools.cache
def _rules(model: type[BaseModel]) -> dict[str, ValueRule | None]:
    out: dict[str, ValueRule | None] = {}
    for name, info in model.model_fields.items():
        rule = next((m for m in info.metadata if isinstance(m, ValueRule)), None)
        out[name] = rule or _rule_in(info.annotation)
    return out


def decimals(model: BaseModel, at: str = "") -> Iterator[tuple[str, Decimal, ValueRule]]:
    """Every decimal value of ``model`` and its sub-models with its path and rule."""

    def walk(value: Any, path: str, rule: ValueRule | None) -> Iterator[tuple[str, Decimal, ValueRule]]:
        if isinstance(value, BaseModel):
            yield from decimals(value, path)
        elif isinstance(value, Decimal):
            if rule is not None:
                yield path, value, rule
        elif isinstance(value, list | tuple):
            for i, item in enumerate(value):
                yield from walk(item, _at(path, i), rule)
        elif isinstance(value, dict):
            for key, item in value.items():
                yield from walk(item, _at(path, str(key)), rule)

    for name, rule in _rules(type(model)).items():
        yield from walk(getattr(model, name), _at(at, name), rule)


def money_in_minor_units(v: TariffVersionBase) -> list[Problem]:
    """An amount of money (a fixed or minimum charge per month) has no more decimal places than
    the currency's minor unit (ISO 4217): 50.505 INR a month is no price. Rates per unit may
    have up to 6 places."""
    try:
        places = minor_exponent(v.currency)
    except M2CError:
        return []  # no currency (a version inside a file being read) or an unknown one, reported apart
    quantum = Decimal(1).scaleb(-places)
    return [
        Problem(
            "tariff.too_many_places",
            f"{value} has more decimal places than {v.currency} allows ({places}) for an amount of money",
            field=path,
        )
        for path, value, rule in decimals(v)
        if rule.kind == "money" and value != value.quantize(quantum)
    ]


def _energy_prices(v: TariffVersionBase) -> list[Decimal]:
    prices = [s.rate for t in v.energy.all_tables for s in t.slabs] if v.energy else []
    if v.tou is not None:
        prices += [p.rate for p in v.tou.periods if p.rate is not None]
        prices += [r for p in v.tou.periods for r in p.slab_rates or []]
        if v.tou.default_rate is not None:
            prices.append(v.tou.default_rate)
    return prices


def credits_within_energy_rates(v: TariffVersionBase) -> list[Problem]:
    """A credit per kWh (a negative TOU adder, a negative fuel adjustment, the prepaid discount)
    is at most the lowest energy rate: a rebate never pays a customer for consuming."""
    prices = _energy_prices(v)
    if not prices:
        return []
    lowest = min(prices)
    credits: list[tuple[str, Decimal]] = []
    if v.tou is not None:
        credits += [(f"tou.periods[{i}].adder", -p.adder) for i, p in enumerate(v.tou.periods) if p.adder]
    if v.fuel_adjustment is not None:
        credits += [(f"fuel_adjustment.per_kwh.{m}", -r) for m, r in v.fuel_adjustment.per_kwh.items()]
    credits.append(("prepaid_discount_per_kwh", v.prepaid_discount_per_kwh))
    return [
        Problem(
            "tariff.credit_exceeds_rate",
            f"a credit of {credit} per kWh is more than the lowest energy rate {lowest}",
            field=path,
        )
        for path, credit in credits
        if credit > lowest
    ]


def priced_consistently(v: TariffVersionBase) -> list[Problem]:
    """The version prices energy one way (slabs, or TOU periods with their own rate), its tax
    codes are unique, TOU slab rates match the slabs, demand by period names known periods."""
    out: list[Problem] = []

    def bad(code: str, field: str, message: str) -> None:
        out.append(Problem(code, message, field=field))

    if v.effective_to is not None and v.effective_to < v.effective_from:
        bad("tariff.bad_period", "effective_to", "effective_to is before effective_from")
    by_rate = v.tou is not None and v.tou.priced_by_rate
    if v.energy is None and not by_rate:
        bad(
            "tariff.invalid", "energy", "a version needs [versions.energy] slabs or TOU periods with a `rate`"
        )
    if v.energy is not None and by_rate:
        bad(
            "tariff.invalid",
            "tou",
            "TOU periods with a `rate` replace the energy slabs; use `adder` with slabs",
        )
    codes = [t.code for t in v.taxes]
    for i, code in enumerate(codes):
        if code in codes[:i]:
            bad("tariff.duplicate_tax", f"taxes[{i}].code", f"tax code {code!r} appears twice")
    if v.tou is not None and v.tou.pricing == "slab_rates":
        tables = v.energy.all_tables if v.energy else []
        if len(tables) != 1 or tables[0].method != "telescopic":
            bad("tariff.invalid", "tou", "TOU `slab_rates` need one telescopic [versions.energy] slab table")
        else:
            n = len(tables[0].slabs)
            for i, p in enumerate(v.tou.periods):
                if len(p.slab_rates or []) != n:
                    bad(
                        "tariff.invalid",
                        f"tou.periods[{i}].slab_rates",
                        f"every period's `slab_rates` needs one rate per energy slab ({n})",
                    )
    if v.demand is not None:
        unknown = set(v.demand.by_period) - set(v.period_names)
        if unknown:
            bad(
                "tariff.invalid",
                "demand.by_period",
                f"demand.by_period names unknown TOU periods {sorted(unknown)}",
            )
    return out


#: The validations of a version, all run by :func:`check_version`.
VERSION_CHECKS: tuple[Check, ...] = (priced_consistently, money_in_minor_units, credits_within_energy_rates)


def check_version(v: TariffVersionBase) -> list[Problem]:
    """Every problem :data:`VERSION_CHECKS` find in ``v``."""
    return [p for check in VERSION_CHECKS for p in check(v)]
