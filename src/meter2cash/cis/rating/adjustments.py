"""Rating kernel components that adjust the charges: fuel adjustment, power factor, prepaid
discount, minimum charge and taxes (each a bill line as arrays, see :mod:`rating_components`)."""

from __future__ import annotations

from decimal import Decimal

import numpy as np

from meter2cash.cis.rating.components import Ctx
from meter2cash.cis.rating.scaled import PCT_PLACES, QTY_PLACES, RATE_PLACES, scaled

PPM = 1_000_000


def fuel_adjustment(c: Ctx) -> None:
    """Per-kWh fuel/power-purchase adjustment of the billing month (none for a month not listed)."""
    fa = c.version.fuel_adjustment
    if fa is None or not c.inp.period:
        return
    rate = fa.per_kwh.get(c.inp.period[:7])
    if not rate:
        return
    q = c.billed
    c.add("fuel", c.unit, f"{fa.name} {c.inp.period[:7]}", rate, q, c.charge(q, rate))


def power_factor(c: Ctx) -> None:
    """Penalty per full step below the reference PF, incentive per full step above the
    incentive threshold; PF = kWh / kVAh of the period (no kVAh: no adjustment)."""
    pf, inp = c.version.power_factor, c.inp
    if pf is None or inp.kvah_vah is None:
        return
    wh = inp.wh_by_period.sum(axis=1)
    has = inp.kvah_vah > 0
    pf_ppm = np.where(has, (wh * PPM) // np.where(has, inp.kvah_vah, 1), PPM)
    pf_ppm = np.minimum(pf_ppm, PPM)
    step = int(pf.step * PPM)
    below = np.maximum(int(pf.reference * PPM) - pf_ppm, 0) // step
    above = np.maximum(pf_ppm - int(pf.incentive_above * PPM), 0) // step
    pen = scaled(pf.penalty_percent, PCT_PLACES)
    inc = scaled(pf.incentive_percent, PCT_PLACES)
    pct = np.minimum(below * pen, scaled(pf.max_penalty_percent, PCT_PLACES))
    if inc:
        pct = pct - np.minimum(above * inc, scaled(pf.max_incentive_percent, PCT_PLACES))
    base = c.component_sum(list(pf.on))
    amt = c.round(base * pct, 10 ** (PCT_PLACES + 2))
    levels = sorted(set(pct.tolist()))
    choice = np.searchsorted(np.asarray(levels, dtype=np.int64), pct)
    descs, rates = [], []
    for lv in levels:
        p = Decimal(abs(lv)).scaleb(-PCT_PLACES).normalize()
        kind = "penalty" if lv > 0 else "incentive"
        descs.append(f"Power factor {kind} {p:f}% on {', '.join(pf.on)}")
        rates.append(Decimal(lv).scaleb(-PCT_PLACES).normalize())
    c.add(
        "power_factor", "PF", "", None, pf_ppm // 1000, amt, pct != 0,
        descriptions=descs, rates=list(rates), choice=choice.astype(np.int64),
    )  # fmt: skip


def prepaid_discount(c: Ctx) -> None:
    d = c.version.prepaid_discount_per_kwh
    if not d:
        return
    q = c.billed
    c.add("prepaid_discount", c.unit, "Prepaid discount", -d, q.copy(), -c.charge(q, d), c.inp.prepaid)


def minimum_charge(c: Ctx) -> None:
    """Top up the named components to the minimum charge (per month × months, prorated by days)."""
    mc = c.version.minimum
    if mc is None:
        return
    minimum = c.month_share(scaled(mc.per_month, RATE_PLACES))
    base = c.component_sum(list(mc.on))
    top = np.maximum(minimum - base, 0)
    c.add("minimum", "", "Minimum charge top-up", mc.per_month, None, top, top > 0)


def taxes(c: Ctx) -> np.ndarray:
    """Tax lines on the named components; returns the tax total per bill."""
    total = np.zeros(c.inp.n, np.int64)
    for t in c.version.taxes:
        amt = c.round(c.component_sum(list(t.on)) * scaled(t.percent, PCT_PLACES), 10 ** (PCT_PLACES + 2))
        c.add("tax", "%", f"{t.name} {t.percent.normalize():f}% on {', '.join(t.on)}", t.percent, None, amt)
        total += amt
    return total


__all__ = ["QTY_PLACES", "fuel_adjustment", "minimum_charge", "power_factor", "prepaid_discount", "taxes"]
