"""Run NREL SAM's utility-rate engine (PySAM.Utilityrate5) and ours on the same tariff and load.

A generated tariff is written in our TOML format; its SAM form is derived from our own TOU
mapping (the 12 × 24 weekday/weekend schedules are read off ``tou_period_index`` on SAM's
calendar: a non-leap year starting on a Monday, here 2018 in UTC). Loads are hourly kW with
3 decimals (our engine meters Wh and W), fed to both engines unchanged.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np

from meter2cash.cis.rating.rate import rate_arrays
from meter2cash.cis.rating.types import RatingInput
from meter2cash.cis.tariffs.definitions import TariffVersionDef
from meter2cash.cis.tariffs.loader import parse_tariff
from meter2cash.mdm.determinants import bill_determinants
from meter2cash.mdm.tou import tou_period_index

YEAR = 2018  # SAM's calendar: 365 days, 1 January a Monday
HOURS = 8760
START = int(datetime(YEAR, 1, 1, tzinfo=UTC).timestamp())
EPOCH = START + 3600 * np.arange(HOURS, dtype=np.int64)
MONTH = (EPOCH.astype("datetime64[s]").astype("datetime64[M]").astype(np.int64) % 12).astype(np.int64)
DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]


def _money(rng: np.random.Generator, lo: float, hi: float, places: int = 4) -> str:
    return f"{rng.uniform(lo, hi):.{places}f}"


def random_tariff_toml(rng: np.random.Generator) -> str:
    """A tariff SAM can also express: tiers, TOU energy (rates, adders or a period × tier rate
    table), TOU and flat demand, fixed and minimum charges."""
    n_tiers = int(rng.integers(1, 4))
    limits = np.sort(rng.choice(np.arange(5_000, 60_000, 500), n_tiers - 1, replace=False))
    style = rng.choice(["slab_rates", "adder", "rate", "flat"])
    n_periods = 0 if style == "flat" else int(rng.integers(1, 4))
    lines = ['code = "GEN"', 'currency = "USD"', "[rounding]", 'level = "bill"', "[[versions]]"]
    lines += ["effective_from = 2018-01-01", "[versions.fixed]", f'per_month = "{_money(rng, 0, 50, 2)}"']
    slab_rates = [_money(rng, 0.05, 0.2) for _ in range(n_tiers)]
    if style != "rate":
        lines += ["[versions.energy]", "slabs = ["]
        for k in range(n_tiers):
            upto = f'upto = "{limits[k]}", ' if k < n_tiers - 1 else ""
            lines.append(f'  {{ {upto}rate = "{slab_rates[k]}" }},')
        lines.append("]")
    periods = []
    for p in range(n_periods):
        start = int(rng.integers(0, 22))
        end = int(rng.integers(start + 1, 25))
        days = rng.choice(['["weekday"]', '["weekend"]', '["weekday", "weekend"]'])
        months = sorted(rng.choice(np.arange(1, 13), int(rng.integers(3, 13)), replace=False).tolist())
        if style == "slab_rates":
            price = f"slab_rates = [{', '.join(f'{_money(rng, 0.05, 0.35)!r}' for _ in range(n_tiers))}]"
            price = price.replace("'", '"')
        elif style == "adder":
            price = f'adder = "{_money(rng, -0.04, 0.15)}"'
        else:
            price = f'rate = "{_money(rng, 0.05, 0.35)}"'
        periods.append(
            f'  {{ name = "p{p + 1}", start = "{start:02d}:00", end = "{end:02d}:00", days = {days}, '
            f"months = {months}, {price} }},"
        )
    if periods:
        split = rng.choice(["proportional", "per_period"]) if style == "slab_rates" else "proportional"
        lines += ["[versions.tou]", f'tier_split = "{split}"']
        if style == "rate":
            lines.append(f'default_rate = "{_money(rng, 0.05, 0.2)}"')
        lines += ["periods = [", *periods, "]"]
    if rng.random() < 0.8:
        names = ["normal", *(f"p{p + 1}" for p in range(n_periods))] if n_periods else ["all"]
        by = ", ".join(f'{n} = "{_money(rng, 0, 15, 2)}"' for n in names if rng.random() < 0.7)
        lines += ["[versions.demand]", f'rate_per_kw = "{_money(rng, 0, 12, 2)}"', "interval_s = 3600"]
        lines.append(f"by_period = {{ {by} }}")
    if rng.random() < 0.5:
        lines += ["[versions.minimum]", f'per_month = "{_money(rng, 100, 12_000, 2)}"']
        lines.append('on = ["fixed", "energy", "tou", "demand"]')
    return "\n".join(lines) + "\n"


def sam_inputs(v: TariffVersionDef) -> dict[str, Any]:
    """The SAM ElectricityRates table for our tariff version."""
    pidx = tou_period_index(EPOCH, v.tou, "UTC")
    weekday = (np.arange(HOURS) // 24) % 7 < 5
    hour = np.arange(HOURS) % 24
    wd = np.zeros((12, 24), dtype=int)
    we = np.zeros((12, 24), dtype=int)
    wd[MONTH[weekday], hour[weekday]] = pidx[weekday] + 1
    we[MONTH[~weekday], hour[~weekday]] = pidx[~weekday] + 1
    names = v.period_names
    tiers: list[tuple[float, list[float]]] = []  # (max kWh, rate per period)
    if v.energy is not None:
        slabs = v.energy.slabs
        for k, s in enumerate(slabs):
            upto = 1e38 if s.upto is None else float(s.upto)
            if v.tou is None:
                rates = [float(s.rate)]
            elif v.tou.pricing == "slab_rates":
                rates = [float(s.rate)] + [float((p.slab_rates or [])[k]) for p in v.tou.periods]
            else:
                rates = [float(s.rate)] + [float(s.rate + (p.adder or 0)) for p in v.tou.periods]
            tiers.append((upto, rates))
    else:
        assert v.tou is not None
        tiers.append((1e38, [float(v.tou.default_rate or 0)] + [float(p.rate or 0) for p in v.tou.periods]))
    ec = [
        [p + 1, k + 1, upto, 0, rates[p], 0]
        for k, (upto, rates) in enumerate(tiers)
        for p in range(len(names))
    ]
    dm = v.demand
    dc_tou = [[p + 1, 1, 1e38, float(dm.by_period.get(n, 0)) if dm else 0.0] for p, n in enumerate(names)]
    flat = float(dm.rate_per_kw) if dm else 0.0
    return {
        "en_electricity_rates": 1,
        "ur_metering_option": 0,
        "rate_escalation": [0],
        "ur_monthly_fixed_charge": float(v.fixed.per_month),
        "ur_monthly_min_charge": float(v.minimum.per_month) if v.minimum else 0.0,
        "ur_annual_min_charge": 0,
        "ur_en_ts_sell_rate": 0,
        "ur_en_ts_buy_rate": 0,
        "ur_sell_eq_buy": 0,
        "ur_nm_yearend_sell_rate": 0,
        "ur_nm_credit_month": 0,
        "ur_nm_credit_rollover": 0,
        "ur_yearzero_usage_peaks": [0] * 12,
        "ur_ec_sched_weekday": wd.tolist(),
        "ur_ec_sched_weekend": we.tolist(),
        "ur_ec_tou_mat": ec,
        "ur_dc_enable": 1 if dm else 0,
        "ur_dc_sched_weekday": wd.tolist(),
        "ur_dc_sched_weekend": we.tolist(),
        "ur_dc_tou_mat": dc_tou,
        "ur_dc_flat_mat": [[m, 1, 1e38, flat] for m in range(12)],
    }


def sam_monthly_bills(v: TariffVersionDef, load_kw: np.ndarray) -> list[float]:
    """SAM's 12 monthly bills [currency] for an hourly load [kW] (no generation)."""
    import PySAM.Utilityrate5 as Utilityrate5

    m = Utilityrate5.new()
    m.Lifetime.system_use_lifetime_output = 0
    m.Lifetime.analysis_period = 1
    m.Lifetime.inflation_rate = 0
    m.SystemOutput.gen = [0.0] * HOURS
    m.SystemOutput.degradation = [0]
    m.Load.load = [float(x) for x in load_kw]
    m.Load.load_escalation = [0]
    for key, value in sam_inputs(v).items():
        setattr(m.ElectricityRates, key, value)
    m.execute(0)
    return [float(x) for x in m.Outputs.utility_bill_w_sys_ym[1]]


def our_monthly_bills(v: TariffVersionDef, loads_kw: np.ndarray) -> list[list[Decimal]]:
    """Our 12 monthly bills for each hourly load row (n, 8760) [kW], rated as arrays."""
    loads_kw = np.atleast_2d(loads_kw)
    pidx = tou_period_index(EPOCH, v.tou, "UTC")
    names = v.period_names
    out: list[list[Decimal]] = [[] for _ in range(loads_kw.shape[0])]
    for m in range(12):
        sel = m == MONTH
        values = loads_kw[:, sel]
        det = bill_determinants(values, np.zeros(values.shape, np.uint16), pidx[sel], len(names), 3600)
        inp = RatingInput.from_kwh(
            det.kwh_by_period,
            det.max_demand_kw,
            0,
            DAYS_IN_MONTH[m],
            kwh_total=det.kwh_total,
            max_demand_kw_by_period=det.max_demand_kw_by_period,
            period=f"{YEAR}-{m + 1:02d}",
        )
        totals = rate_arrays(v, inp).bills()
        for i, b in enumerate(totals):
            out[i].append(b.total)
    return out


def parse(text: str) -> TariffVersionDef:
    return parse_tariff(text, "<generated>").versions[0]


__all__ = ["RatingInput", "our_monthly_bills", "parse", "random_tariff_toml", "sam_monthly_bills"]
