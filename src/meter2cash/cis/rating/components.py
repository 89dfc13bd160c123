"""Rating kernel components: each adds bill lines (as arrays across ``n`` bills) to a context.

Every function here is pure NumPy over exact scaled integers (see :mod:`meter2cash.cis.rating.scaled`):
energy in Wh (VAh for kVAh), demand in W, rates in 10⁻⁶, percentages in 10⁻⁴ %, amounts in
10^-scale currency. Each line amount is rounded exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from meter2cash.cis.rating.scaled import (
    BIG,
    I64,
    PCT_PLACES,
    QTY_PLACES,
    RATE_PLACES,
    div_round,
    div_round_obj,
    scaled,
)
from meter2cash.cis.rating.types import LineArray, RatingInput
from meter2cash.cis.tariffs.charges import SlabTable
from meter2cash.cis.tariffs.definitions import TariffVersionDef


def allocate(total: I64, weights: I64) -> I64:
    """Share integer ``total`` (n,) over columns in proportion to ``weights`` (n, P), exactly
    (largest remainder); rows with zero weight put everything in column 0."""
    w = np.asarray(weights, dtype=np.int64)
    wsum = w.sum(axis=1)
    safe = np.where(wsum == 0, 1, wsum)
    w = np.where((wsum == 0)[:, None] & (np.arange(w.shape[1]) == 0)[None, :], 1, w)
    safe = np.where(wsum == 0, 1, safe)
    prod = total[:, None] * w
    base, rem = np.divmod(prod, safe[:, None])
    deficit = total - base.sum(axis=1)
    order = np.argsort(-rem, axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(w.shape[1]), w.shape).copy(), axis=1)
    return (base + (rank < deficit[:, None])).astype(np.int64)


def _kwh(milli: int) -> str:
    return f"{Decimal(milli).scaleb(-3).normalize():f}"


@dataclass(slots=True)
class Ctx:
    """What the components share while rating one tariff version over ``n`` bills."""

    version: TariffVersionDef
    inp: RatingInput
    scale: int
    mode: str
    lines: list[LineArray] = field(default_factory=list)
    #: Energy billed [Wh or VAh] (after net metering) and its split by TOU period.
    billed: I64 = field(default_factory=lambda: np.zeros(0, np.int64))
    billed_by_period: I64 = field(default_factory=lambda: np.zeros((0, 0), np.int64))
    bank_out: I64 = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def to_amount(self) -> int:
        """(10⁻³ unit × 10⁻⁶ rate) → 10^-scale currency."""
        return 10 ** (RATE_PLACES + QTY_PLACES - self.scale)

    @property
    def unit(self) -> str:
        return "kVAh" if self.version.energy is not None and self.version.energy.basis == "kvah" else "kWh"

    def round(self, numer: npt.ArrayLike, denom: npt.ArrayLike) -> I64:
        return div_round(numer, denom, self.mode)

    def charge(self, qty: I64, rate: Decimal) -> I64:
        return div_round(qty * scaled(rate, RATE_PLACES), self.to_amount, self.mode)

    def add(
        self,
        component: str,
        unit: str,
        desc: str,
        rate: Decimal | None,
        qty: I64 | None,
        amount: I64,
        present: npt.NDArray[np.bool_] | None = None,
        *,
        prorated: bool = False,
        descriptions: list[str] | None = None,
        rates: list[Decimal | None] | None = None,
        choice: I64 | None = None,
    ) -> None:
        pres = np.ones(self.inp.n, bool) if present is None else present
        self.lines.append(
            LineArray(
                component,
                unit,
                descriptions or [desc],
                rates or [rate],
                qty,
                np.where(pres, amount, 0),
                pres,
                choice=choice,
                prorated=prorated,
            )
        )

    def component_sum(self, components: list[str]) -> I64:
        base = np.zeros(self.inp.n, np.int64)
        for ln in self.lines:
            if ln.component in components:
                base += ln.amount
        return base

    def month_share(self, micro: int, extra: I64 | None = None) -> I64:
        """A per-month amount (micro-units × ``extra``) × months × active/period days."""
        inp = self.inp
        numer = micro * inp.months_or_one * inp.days_active
        denom = inp.days_in_period * 10 ** (RATE_PLACES - self.scale)
        if extra is not None:
            return self.round(numer * extra, denom * 10**QTY_PLACES)
        return self.round(numer, denom)


def fixed_charges(c: Ctx) -> None:
    fx, inp, n = c.version.fixed, c.inp, c.inp.n
    if fx.per_month:
        amt = c.month_share(scaled(fx.per_month, RATE_PLACES))
        c.add("fixed", "month", "Fixed charge", fx.per_month, inp.months_or_one * 1000, amt, prorated=True)
    if fx.per_day:
        days = inp.days_active * 1000
        c.add("fixed", "day", "Fixed charge per day of supply", fx.per_day, days, c.charge(days, fx.per_day))
    if fx.per_kw_month:
        amt = c.month_share(scaled(fx.per_kw_month, RATE_PLACES), inp.sanctioned_w)
        c.add(
            "fixed",
            "kW",
            "Fixed charge on sanctioned load",
            fx.per_kw_month,
            inp.sanctioned_w,
            amt,
            prorated=True,
        )
    if fx.per_kva_month:
        va = inp.contract_va if inp.contract_va is not None else np.zeros(n, np.int64)
        amt = c.month_share(scaled(fx.per_kva_month, RATE_PLACES), va)
        c.add("fixed", "kVA", "Fixed charge on contract demand", fx.per_kva_month, va, amt, prorated=True)


def net_metering(c: Ctx) -> None:
    """Energy to bill after exports (``net_energy``: exports and the bank offset imports, a
    surplus is banked) and the energy basis (kVAh shares out over TOU periods like kWh)."""
    inp, v = c.inp, c.version
    wh_by = inp.wh_by_period
    energy_total = wh_by.sum(axis=1)
    if v.energy is not None and v.energy.basis == "kvah":
        vah = inp.kvah_vah if inp.kvah_vah is not None else energy_total
        wh_by = allocate(vah, wh_by)
        energy_total = vah
    c.billed, c.billed_by_period = energy_total, wh_by
    c.bank_out = np.zeros(inp.n, np.int64)
    nm = v.net_metering
    if nm is None or inp.export_wh is None or nm.mode != "net_energy":
        return
    bank_in = inp.bank_wh if inp.bank_wh is not None else np.zeros(inp.n, np.int64)
    net = energy_total - inp.export_wh - bank_in
    c.billed = np.maximum(net, 0)
    c.billed_by_period = allocate(c.billed, wh_by)
    offset = energy_total - c.billed
    c.add(
        "net_metering", "kWh", "Export and banked energy set off against import", None, -offset,
        np.zeros(inp.n, np.int64), offset > 0,
    )  # fmt: skip
    bank = np.maximum(-net, 0)
    if nm.max_bank_kwh is not None:
        bank = np.minimum(bank, scaled(nm.max_bank_kwh, QTY_PLACES))
    c.bank_out = bank


def export_credits(c: Ctx) -> None:
    """``net_billing``: every exported kWh credited; ``net_energy``: in the true-up month the
    bank is paid out at the export rate (or lapses) and emptied."""
    nm, inp = c.version.net_metering, c.inp
    if nm is None or inp.export_wh is None:
        return
    if nm.mode == "net_billing":
        credit = -c.charge(inp.export_wh, nm.export_rate)
        c.add("export_credit", "kWh", "Export credit", -nm.export_rate, inp.export_wh, credit)
        return
    if inp.period and int(inp.period[5:7]) == nm.true_up_month:
        bank = c.bank_out
        if nm.bank_expiry == "pay":
            c.add(
                "export_credit", "kWh", "Annual true-up: banked export paid out", -nm.export_rate, bank,
                -c.charge(bank, nm.export_rate), bank > 0,
            )  # fmt: skip
        c.bank_out = np.zeros_like(bank)


def _limits(c: Ctx, kwh: list[Decimal | None]) -> list[I64]:
    """Slab/table limits [Wh] per bill: × months, and × active/period days when prorated."""
    inp = c.inp
    out = []
    for k in kwh:
        if k is None:
            out.append(np.full(inp.n, BIG, np.int64))
            continue
        base = scaled(k, QTY_PLACES) * inp.months_or_one
        if c.version.energy is not None and c.version.energy.prorate_slabs:
            base = c.round(base * inp.days_active, inp.days_in_period)
        out.append(base)
    return out


def _labels(table: SlabTable, unit: str) -> list[str]:
    uppers = [scaled(s.upto, QTY_PLACES) for s in table.slabs if s.upto is not None]
    lowers = [0, *uppers]
    return [f"{_kwh(lo)}–{_kwh(hi)} {unit}" for lo, hi in zip(lowers, uppers, strict=False)] + [
        f"above {_kwh(lowers[-1])} {unit}"
    ]


def energy_slabs(c: Ctx) -> None:
    energy = c.version.energy
    if energy is None:
        return
    tou = c.version.tou
    if tou is not None and tou.pricing == "slab_rates":
        tou_slab_rates(c)
        return
    tables = energy.all_tables
    q_total = c.billed
    chosen = np.zeros(c.inp.n, np.int64)
    for lim in _limits(c, [t.upto for t in tables[:-1]]):
        chosen += q_total > lim
    unit = c.unit
    for j, table in enumerate(tables):
        in_table = chosen == j
        prefix = "" if len(tables) == 1 else f"table {j + 1}, "
        labels = _labels(table, unit)
        uppers = _limits(c, [s.upto for s in table.slabs])
        if table.method == "telescopic":
            lo = np.zeros(c.inp.n, np.int64)
            for k, s in enumerate(table.slabs):
                q = np.where(in_table, np.clip(q_total - lo, 0, np.maximum(uppers[k] - lo, 0)), 0)
                present = in_table & ((q > 0) | (k == 0))
                c.add("energy", unit, f"Energy {prefix}{labels[k]}", s.rate, q, c.charge(q, s.rate), present)
                lo = uppers[k]
        else:
            reached = np.zeros(c.inp.n, np.int64)
            for up in uppers[:-1]:
                reached += q_total > up
            micro = np.asarray([scaled(s.rate, RATE_PLACES) for s in table.slabs], dtype=np.int64)[reached]
            amt = c.round(q_total * micro, c.to_amount)
            c.add(
                "energy", unit, "", None, q_total.copy(), amt, in_table,
                descriptions=[f"Energy, {prefix}all units at slab {lab}" for lab in labels],
                rates=[s.rate for s in table.slabs], choice=reached,
            )  # fmt: skip


def tou_slab_rates(c: Ctx) -> None:
    """TOU periods with a rate per slab (the energy slabs give the limits; the default period
    uses the slabs' own rates). ``proportional``: slabs apply to the total and each slab's kWh
    is shared over periods by their use (amounts exact to the fraction); ``per_period``: each
    period's kWh runs through the slab limits alone."""
    v = c.version
    assert v.energy is not None and v.tou is not None
    table = v.energy.all_tables[0]
    uppers = _limits(c, [s.upto for s in table.slabs])
    names = v.tou.period_names
    rates = [[s.rate for s in table.slabs]] + [list(p.slab_rates or []) for p in v.tou.periods]
    labels = _labels(table, c.unit)
    by = c.billed_by_period
    total = c.billed
    proportional = v.tou.tier_split == "proportional"
    lo = np.zeros(c.inp.n, np.int64)
    for k in range(len(table.slabs)):
        width = np.maximum(uppers[k] - lo, 0)
        tier = np.clip(total - lo, 0, width)
        shares = allocate(tier, by) if proportional else None
        for p, name in enumerate(names):
            rate = rates[p][k]
            if proportional:
                assert shares is not None
                q = shares[:, p]
                numer = tier.astype(object) * by[:, p].astype(object) * scaled(rate, RATE_PLACES)
                denom = np.where(total == 0, 1, total).astype(object) * c.to_amount
                amt = div_round_obj(numer, denom, c.mode)
            else:
                q = np.clip(by[:, p] - lo, 0, width)
                amt = c.charge(q, rate)
            c.add("energy", c.unit, f"Energy {name} {labels[k]}", rate, q, amt, q > 0)
        lo = uppers[k]


def tou_charges(c: Ctx) -> None:
    tou = c.version.tou
    if tou is None or tou.pricing == "slab_rates":
        return
    by = c.billed_by_period
    if tou.priced_by_rate:
        rates = [tou.default_rate, *(p.rate for p in tou.periods)]
        for p, (name, rate) in enumerate(zip(tou.period_names, rates, strict=True)):
            assert rate is not None
            q = by[:, p]
            c.add("energy", c.unit, f"Energy, {name}", rate, q, c.charge(q, rate))
        return
    for p, period in enumerate(tou.periods, start=1):
        assert period.adder is not None
        q = by[:, p]
        kind = "rebate" if period.adder < 0 else "surcharge"
        c.add("tou", c.unit, f"ToD {period.name} {kind}", period.adder, q, c.charge(q, period.adder))


def demand_charges(c: Ctx) -> None:
    dm, inp = c.version.demand, c.inp
    if dm is None:
        return
    pct = 10 ** (PCT_PLACES + 2)
    split = inp.prorate_demand

    def charge(qty: I64, rate: Decimal) -> I64:
        """Rate × demand, × active / period days on a segment of a split bill (one rounding)."""
        if not split:
            return c.charge(qty, rate)
        return c.round(qty * scaled(rate, RATE_PLACES) * inp.days_active, c.to_amount * inp.days_in_period)

    billing = inp.demand_w.copy()
    if dm.floor_percent:
        billing = np.maximum(billing, c.round(inp.sanctioned_w * scaled(dm.floor_percent, PCT_PLACES), pct))
    if dm.contract_percent and inp.contract_va is not None:
        share = c.round(inp.contract_va * scaled(dm.contract_percent, PCT_PLACES), pct)
        billing = np.maximum(billing, share)
    if dm.ratchet_percent and inp.ratchet_w is not None:
        billing = np.maximum(billing, c.round(inp.ratchet_w * scaled(dm.ratchet_percent, PCT_PLACES), pct))
    if dm.rate_per_kw or not dm.by_period:
        desc = "Demand charge on maximum demand"
        if dm.floor_percent or dm.contract_percent or dm.ratchet_percent:
            desc = "Demand charge on billing demand"
        c.add("demand", "kW", desc, dm.rate_per_kw, billing, charge(billing, dm.rate_per_kw), prorated=split)
    names = c.version.period_names
    by = inp.demand_w_by_period
    for name, rate in dm.by_period.items():
        q = by[:, names.index(name)] if by is not None else np.zeros(inp.n, np.int64)
        c.add(
            "demand", "kW", f"Demand charge, {name} maximum demand", rate, q, charge(q, rate), prorated=split
        )
