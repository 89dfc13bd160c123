"""Rating: a tariff version turns bill determinants into bill lines, exactly.

:func:`rate_arrays` rates many service agreements of one tariff version at once in exact scaled
integers (NumPy int64): energy in Wh, demand and load in W, rates in micro-units (10⁻⁶), percentages
in 10⁻⁴ %. Each line amount is rounded once, to the currency's minor unit (``rounding.level =
"line"``) or to 10⁻⁴ with a rounding line on the total (``"bill"``). Decimals appear only at the
edge (:meth:`RatedArrays.bill`). :func:`rate_one` rates a single bill from a plain dict."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np

from meter2cash.cis.rating import adjustments as adjust
from meter2cash.cis.rating import components as comp
from meter2cash.cis.rating.scaled import div_round, scaled
from meter2cash.cis.rating.types import I64, RatedArrays, RatedBill, RatingInput
from meter2cash.cis.tariffs.definitions import TariffVersionDef
from meter2cash.core.money import minor_exponent


def rate_arrays(version: TariffVersionDef, inp: RatingInput) -> RatedArrays:
    """Rate ``inp.n`` agreements of one tariff version (vectorised, exact).

    Lines in order: fixed charges, net-metering set-off, energy (slabs, slab tables or TOU
    rates), TOU surcharges/rebates, demand, fuel adjustment, power factor, prepaid discount,
    minimum-charge top-up, export credits, taxes, and a rounding line for per-bill rounding.
    """
    rounding = version.rounding
    mode = rounding.mode if rounding else "half_up"
    minor = minor_exponent(version.currency)
    scale = minor if (rounding is None or rounding.level == "line") else 4
    c = comp.Ctx(version, inp, scale, mode)
    comp.fixed_charges(c)
    comp.net_metering(c)
    comp.energy_slabs(c)
    comp.tou_charges(c)
    comp.demand_charges(c)
    adjust.fuel_adjustment(c)
    adjust.power_factor(c)
    adjust.prepaid_discount(c)
    adjust.minimum_charge(c)
    comp.export_credits(c)
    subtotal = np.zeros(inp.n, np.int64)
    for ln in c.lines:
        subtotal += ln.amount
    tax_total = adjust.taxes(c)
    total = subtotal + tax_total
    if scale != minor:
        step = 10 ** (scale - minor)
        rounded = div_round(total, step, mode) * step
        diff = rounded - total
        c.add("rounding", "", "Rounding", None, None, diff, diff != 0)
        total = rounded
    return RatedArrays(version, scale, c.lines, subtotal, tax_total, total, inp, bank_wh=c.bank_out)


def _dec(value: Any, name: str) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"determinant {name}: expected a number, got {value!r}")
    return Decimal(str(value)).quantize(Decimal("0.001"))


def input_from_dict(version: TariffVersionDef, det: dict[str, Any]) -> RatingInput:
    """A one-bill :class:`RatingInput` from a plain dict (the JSON of ``m2c bill calc``).

    Keys: ``kwh_total`` or ``kwh_by_period`` ({period name: kWh}), ``max_demand_kw``,
    ``sanctioned_load_kw``, ``days_in_period`` (default 30), ``days_active`` (default all),
    ``prepaid`` (bool); optional ``kvah_total``, ``kwh_export``, ``banked_kwh``,
    ``max_demand_kw_by_period`` ({period: kW}), ``contract_demand_kva``, ``ratchet_demand_kw``,
    ``months`` (2 for bimonthly), ``period`` (``YYYY-MM``). Quantities round to 3 decimals.
    """
    names = version.period_names
    by_name = det.get("kwh_by_period")
    if by_name:
        unknown = set(by_name) - set(names)
        if unknown:
            raise ValueError(
                f"kwh_by_period names unknown TOU periods {sorted(unknown)}; the tariff has {names}"
            )
        wh = [scaled(_dec(by_name.get(p, 0), f"kwh_by_period.{p}"), 3) for p in names]
    else:
        wh = [scaled(_dec(det.get("kwh_total", 0), "kwh_total"), 3)] + [0] * (len(names) - 1)
    days = int(det.get("days_in_period", 30))

    def opt(key: str) -> I64 | None:
        if det.get(key) is None:
            return None
        return np.asarray([scaled(_dec(det[key], key), 3)], dtype=np.int64)

    md_by = det.get("max_demand_kw_by_period")
    if md_by is not None:
        unknown = set(md_by) - set(names)
        if unknown:
            raise ValueError(f"max_demand_kw_by_period names unknown TOU periods {sorted(unknown)}")
    return RatingInput(
        wh_by_period=np.asarray([wh], dtype=np.int64),
        demand_w=np.asarray([scaled(_dec(det.get("max_demand_kw", 0), "max_demand_kw"), 3)], dtype=np.int64),
        sanctioned_w=np.asarray(
            [scaled(_dec(det.get("sanctioned_load_kw", 0), "sanctioned_load_kw"), 3)], np.int64
        ),
        days_in_period=np.asarray([days], dtype=np.int64),
        days_active=np.asarray([int(det.get("days_active", days))], dtype=np.int64),
        prepaid=np.asarray([bool(det.get("prepaid", False))]),
        kvah_vah=opt("kvah_total"),
        export_wh=opt("kwh_export"),
        bank_wh=opt("banked_kwh"),
        demand_w_by_period=None
        if md_by is None
        else np.asarray([[scaled(_dec(md_by.get(p, 0), p), 3) for p in names]], dtype=np.int64),
        contract_va=opt("contract_demand_kva"),
        ratchet_w=opt("ratchet_demand_kw"),
        months=None if det.get("months") is None else np.asarray([int(det["months"])], dtype=np.int64),
        period=det.get("period"),
    )


def rate_one(version: TariffVersionDef, determinants: dict[str, Any]) -> RatedBill:
    """Rate a single bill from a determinants dict (see :func:`input_from_dict`)."""
    return rate_arrays(version, input_from_dict(version, determinants)).bill(0)
