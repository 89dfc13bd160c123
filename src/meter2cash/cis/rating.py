"""Rating: a tariff version turns bill determinants into bill lines, exactly.

:func:`rate_arrays` rates many service agreements of one tariff version at once in exact scaled
integers (NumPy int64): energy in Wh, demand and load in W, rates in micro-units (10⁻⁶), percentages
in 10⁻⁴ %. Each line amount is rounded once, to the currency's minor unit (``rounding.level =
"line"``) or to 10⁻⁴ with a rounding line on the total (``"bill"``). Decimals appear only at the
edge (:meth:`RatedArrays.bill`). :func:`rate_one` rates a single bill from a plain dict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt

from meter2cash.cis.tariffs.model import TariffVersionDef
from meter2cash.core.money import minor_exponent, quantum, round_half_up_int

I64 = npt.NDArray[np.int64]

#: Ledger account credited by each bill-line component.
LEDGER_ACCOUNT = {
    "fixed": "4200",
    "energy": "4100",
    "tou": "4100",
    "demand": "4300",
    "prepaid_discount": "4900",
    "tax": "2200",
    "rounding": "4900",
}
RATE_PLACES, QTY_PLACES, PCT_PLACES = 6, 3, 4


def div_round(numer: npt.ArrayLike, denom: npt.ArrayLike, mode: str = "half_up") -> I64:
    """``numer / denom`` rounded to an integer (half away from zero, or half to even), exactly."""
    n = np.asarray(numer, dtype=np.int64)
    d = np.asarray(denom, dtype=np.int64)
    if mode == "half_up" and d.ndim == 0:
        return round_half_up_int(n, int(d))
    q, r = np.divmod(np.abs(n), d)
    twice = 2 * r
    up = (twice > d) | ((twice == d) & ((q % 2 == 1) if mode == "half_even" else True))
    q = q + up
    return np.where(n < 0, -q, q).astype(np.int64)


def scaled(value: Decimal, places: int) -> int:
    """An exact decimal as an integer count of 10^-places (the models guarantee no remainder)."""
    out = value.scaleb(places)
    if out != out.to_integral_value():
        raise ValueError(f"{value} has more than {places} decimal places")
    return int(out)


def split_wh(kwh_by_period: npt.NDArray[np.float64], kwh_total: npt.ArrayLike | None = None) -> I64:
    """Whole Wh per period whose row sums equal each row's total rounded to Wh (largest remainder).

    ``kwh_by_period`` is ``(n, P)`` [kWh], non-negative import energy. Rounding each period on
    its own could bill a Wh more or less than was measured; this never does. ``kwh_total`` (n,)
    [kWh], when given, is the measured total (the row sum of the interval data) to round.
    """
    wh = np.asarray(kwh_by_period, dtype=np.float64) * 1000.0
    floor = np.floor(wh)
    total = (
        wh.sum(axis=1) if kwh_total is None else np.asarray(kwh_total, dtype=np.float64).reshape(-1) * 1000.0
    )
    target = np.rint(total).astype(np.int64)
    deficit = target - floor.sum(axis=1).astype(np.int64)
    order = np.argsort(-(wh - floor), axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(wh.shape[1])[None, :].repeat(wh.shape[0], axis=0), axis=1)
    return (floor.astype(np.int64) + (rank < deficit[:, None])).astype(np.int64)


@dataclass(slots=True)
class RatingInput:
    """Determinants of ``n`` agreements as exact integers.

    wh_by_period (n, P) [Wh]; demand_w (n,) maximum demand [W]; sanctioned_w (n,) [W];
    days_in_period and days_active (n,) [days] (fixed charges prorate by their ratio);
    prepaid (n,) bool.
    """

    wh_by_period: I64
    demand_w: I64
    sanctioned_w: I64
    days_in_period: I64
    days_active: I64
    prepaid: npt.NDArray[np.bool_]

    @property
    def wh_total(self) -> I64:
        return self.wh_by_period.sum(axis=1)

    @property
    def n(self) -> int:
        return int(self.wh_by_period.shape[0])

    @classmethod
    def from_kwh(
        cls,
        kwh_by_period: npt.ArrayLike,
        max_demand_kw: npt.ArrayLike,
        sanctioned_kw: npt.ArrayLike,
        days_in_period: npt.ArrayLike,
        days_active: npt.ArrayLike | None = None,
        prepaid: npt.ArrayLike | None = None,
        kwh_total: npt.ArrayLike | None = None,
    ) -> RatingInput:
        """From measured kWh/kW (float), in whole Wh and W.

        The total is rounded to Wh once and shared out over the TOU periods by largest remainder
        (:func:`split_wh`), so the periods always add up to the rounded total energy.
        """
        by_period = np.atleast_2d(np.asarray(kwh_by_period, dtype=np.float64))
        n = by_period.shape[0]
        days = np.broadcast_to(np.asarray(days_in_period, dtype=np.int64), (n,)).copy()
        return cls(
            wh_by_period=split_wh(by_period, kwh_total),
            demand_w=np.rint(np.asarray(max_demand_kw, dtype=np.float64) * 1000).astype(np.int64).reshape(n),
            sanctioned_w=np.rint(np.asarray(sanctioned_kw, dtype=np.float64) * 1000)
            .astype(np.int64)
            .reshape(n),
            days_in_period=days,
            days_active=days.copy()
            if days_active is None
            else np.asarray(days_active, dtype=np.int64).reshape(n),
            prepaid=np.zeros(n, bool) if prepaid is None else np.asarray(prepaid, dtype=bool).reshape(n),
        )


@dataclass(slots=True)
class RatedLine:
    component: str
    description: str
    quantity: Decimal | None
    unit: str
    rate: Decimal | None
    amount: Decimal
    ledger_account: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "description": self.description,
            "quantity": None if self.quantity is None else str(self.quantity),
            "unit": self.unit,
            "rate": None if self.rate is None else str(self.rate),
            "amount": str(self.amount),
            "ledger_account": self.ledger_account,
        }


@dataclass(slots=True)
class RatedBill:
    """A rated bill: its lines and totals [currency]; ``total`` = sum of every line's amount."""

    tariff_code: str
    currency: str
    lines: list[RatedLine]
    subtotal: Decimal
    tax: Decimal
    total: Decimal

    def to_dict(self) -> dict[str, Any]:
        return {
            "tariff_code": self.tariff_code,
            "currency": self.currency,
            "lines": [ln.to_dict() for ln in self.lines],
            "subtotal": str(self.subtotal),
            "tax": str(self.tax),
            "total": str(self.total),
        }


@dataclass(slots=True)
class LineArray:
    """One bill line across ``n`` bills. ``choice`` picks per bill among ``rates``/``descriptions``."""

    component: str
    unit: str
    descriptions: list[str]
    rates: list[Decimal | None]
    quantity: I64 | None  # [10^-3 unit]
    amount: I64  # [10^-scale currency]
    present: npt.NDArray[np.bool_]
    choice: npt.NDArray[np.int64] | None = None
    prorated: bool = False

    @property
    def ledger_account(self) -> str:
        return LEDGER_ACCOUNT[self.component]


@dataclass(slots=True)
class RatedArrays:
    """The kernel's output: every line as arrays, amounts as integers of 10^-scale."""

    version: TariffVersionDef
    scale: int
    lines: list[LineArray]
    subtotal: I64
    tax: I64
    total: I64
    inputs: RatingInput
    _cache: dict[str, Any] = field(default_factory=dict)

    def money(self, v: int) -> Decimal:
        return Decimal(v).scaleb(-self.scale)

    def bill(self, i: int) -> RatedBill:
        """The ``i``-th bill as Decimal lines."""
        return self.bills([i])[0]

    def bills(self, indices: list[int] | None = None) -> list[RatedBill]:
        """Materialise bills (all, or ``indices``) as :class:`RatedBill` objects."""
        idx = list(range(self.inputs.n)) if indices is None else indices
        sel = np.asarray(idx, dtype=np.int64)
        dec: dict[int, Decimal] = {}  # integer → Decimal cache; amounts repeat a lot across a fleet
        cols = []
        for ln in self.lines:
            cols.append(
                (
                    ln,
                    ln.present[sel].tolist(),
                    ln.amount[sel].tolist(),
                    None if ln.quantity is None else ln.quantity[sel].tolist(),
                    None if ln.choice is None else ln.choice[sel].tolist(),
                )
            )
        days_in = self.inputs.days_in_period[sel].tolist()
        days_act = self.inputs.days_active[sel].tolist()
        sub, tax, tot = self.subtotal[sel].tolist(), self.tax[sel].tolist(), self.total[sel].tolist()
        out: list[RatedBill] = []
        s = self.scale
        for j in range(len(idx)):
            lines = []
            for ln, present, amount, qty, choice in cols:
                if not present[j]:
                    continue
                c = 0 if choice is None else choice[j]
                desc = ln.descriptions[c]
                if ln.prorated and days_act[j] != days_in[j]:
                    desc = f"{desc} ({days_act[j]}/{days_in[j]} days)"
                a = amount[j]
                amt = dec.get(a)
                if amt is None:
                    amt = dec[a] = Decimal(a).scaleb(-s)
                lines.append(
                    RatedLine(
                        ln.component,
                        desc,
                        None if qty is None else Decimal(qty[j]).scaleb(-QTY_PLACES),
                        ln.unit,
                        ln.rates[c],
                        amt,
                        ln.ledger_account,
                    )
                )
            v = self.version
            total = self.money(tot[j]).quantize(quantum(v.currency))
            out.append(RatedBill(v.code, v.currency, lines, self.money(sub[j]), self.money(tax[j]), total))
        return out


def _kwh(wh: Decimal) -> str:
    return f"{wh.normalize():f}"


def rate_arrays(version: TariffVersionDef, inp: RatingInput) -> RatedArrays:
    """Rate ``inp.n`` agreements of one tariff version (vectorised, exact)."""
    rounding = version.rounding
    mode = rounding.mode if rounding else "half_up"
    minor = minor_exponent(version.currency)
    scale = minor if (rounding is None or rounding.level == "line") else 4
    to_amount = 10 ** (RATE_PLACES + QTY_PLACES - scale)  # (milli-unit × micro-rate) → amount units
    n = inp.n
    always = np.ones(n, bool)
    wh = inp.wh_total
    lines: list[LineArray] = []

    def add(
        component: str,
        unit: str,
        desc: str,
        rate: Decimal | None,
        qty: I64 | None,
        amount: I64,
        present: npt.NDArray[np.bool_] = always,
        prorated: bool = False,
    ) -> None:
        lines.append(
            LineArray(
                component, unit, [desc], [rate], qty, np.where(present, amount, 0), present, prorated=prorated
            )
        )

    fx = version.fixed
    if fx.per_month:
        r = scaled(fx.per_month, RATE_PLACES)
        amt = div_round(r * inp.days_active, inp.days_in_period * 10 ** (RATE_PLACES - scale), mode)
        add("fixed", "month", "Fixed charge", fx.per_month, np.full(n, 1000, np.int64), amt, prorated=True)
    if fx.per_kw_month:
        r = scaled(fx.per_kw_month, RATE_PLACES)
        amt = div_round(r * inp.sanctioned_w * inp.days_active, inp.days_in_period * to_amount, mode)
        add(
            "fixed",
            "kW",
            "Fixed charge on sanctioned load",
            fx.per_kw_month,
            inp.sanctioned_w,
            amt,
            prorated=True,
        )

    if version.energy is not None:
        slabs = version.energy.slabs
        uppers = [scaled(s.upto, QTY_PLACES) for s in slabs if s.upto is not None]
        lowers = [0, *uppers]
        labels = [
            f"{_kwh(Decimal(lo).scaleb(-3))}–{_kwh(Decimal(hi).scaleb(-3))} kWh"
            for lo, hi in zip(lowers, uppers, strict=False)
        ] + [f"above {_kwh(Decimal(lowers[-1]).scaleb(-3))} kWh"]
        if version.energy.method == "telescopic":
            for k, s in enumerate(slabs):
                hi = uppers[k] if k < len(uppers) else np.iinfo(np.int64).max // 4
                q = np.clip(wh - lowers[k], 0, hi - lowers[k])
                amt = div_round(q * scaled(s.rate, RATE_PLACES), to_amount, mode)
                add("energy", "kWh", f"Energy {labels[k]}", s.rate, q, amt, (q > 0) | (k == 0))
        else:
            reached = np.searchsorted(np.asarray(uppers, dtype=np.int64), wh, side="left").astype(np.int64)
            micro = np.asarray([scaled(s.rate, RATE_PLACES) for s in slabs], dtype=np.int64)[reached]
            amt = div_round(wh * micro, to_amount, mode)
            lines.append(
                LineArray(
                    "energy",
                    "kWh",
                    [f"Energy, all units at slab {lab}" for lab in labels],
                    [s.rate for s in slabs],
                    wh.copy(),
                    amt,
                    always,
                    choice=reached,
                )
            )
    tou = version.tou
    if tou is not None:
        names = tou.period_names
        if tou.priced_by_rate:
            rates = [tou.default_rate, *(p.rate for p in tou.periods)]
            for p, (name, rate) in enumerate(zip(names, rates, strict=True)):
                assert rate is not None
                q = inp.wh_by_period[:, p]
                add(
                    "energy",
                    "kWh",
                    f"Energy, {name}",
                    rate,
                    q,
                    div_round(q * scaled(rate, RATE_PLACES), to_amount, mode),
                )
        else:
            for p, period in enumerate(tou.periods, start=1):
                assert period.adder is not None
                q = inp.wh_by_period[:, p]
                kind = "rebate" if period.adder < 0 else "surcharge"
                amt = div_round(q * scaled(period.adder, RATE_PLACES), to_amount, mode)
                add("tou", "kWh", f"ToD {period.name} {kind}", period.adder, q, amt)

    if version.demand is not None:
        dm = version.demand
        floor = div_round(
            inp.sanctioned_w * scaled(dm.floor_percent, PCT_PLACES), 10 ** (PCT_PLACES + 2), mode
        )
        billing_w = np.maximum(inp.demand_w, floor)
        amt = div_round(billing_w * scaled(dm.rate_per_kw, RATE_PLACES), to_amount, mode)
        add("demand", "kW", "Demand charge on maximum demand", dm.rate_per_kw, billing_w, amt)

    if version.prepaid_discount_per_kwh:
        d = version.prepaid_discount_per_kwh
        amt = -div_round(wh * scaled(d, RATE_PLACES), to_amount, mode)
        add("prepaid_discount", "kWh", "Prepaid discount", -d, wh.copy(), amt, inp.prepaid)

    subtotal = np.zeros(n, np.int64)
    for ln in lines:
        subtotal += ln.amount
    tax_total = np.zeros(n, np.int64)
    for t in version.taxes:
        base = np.zeros(n, np.int64)
        for ln in lines:
            if ln.component in t.on:
                base += ln.amount
        amt = div_round(base * scaled(t.percent, PCT_PLACES), 10 ** (PCT_PLACES + 2), mode)
        add("tax", "%", f"{t.name} {t.percent.normalize():f}% on {', '.join(t.on)}", t.percent, None, amt)
        tax_total += amt
    total = subtotal + tax_total
    if scale != minor:
        step = 10 ** (scale - minor)
        rounded = div_round(total, step, mode) * step
        diff = rounded - total
        add("rounding", "", "Rounding", None, None, diff, diff != 0)
        total = rounded
    return RatedArrays(version, scale, lines, subtotal, tax_total, total, inp)


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
    ``prepaid`` (bool). Quantities round to 3 decimals.
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
    return RatingInput(
        wh_by_period=np.asarray([wh], dtype=np.int64),
        demand_w=np.asarray([scaled(_dec(det.get("max_demand_kw", 0), "max_demand_kw"), 3)], dtype=np.int64),
        sanctioned_w=np.asarray(
            [scaled(_dec(det.get("sanctioned_load_kw", 0), "sanctioned_load_kw"), 3)], np.int64
        ),
        days_in_period=np.asarray([days], dtype=np.int64),
        days_active=np.asarray([int(det.get("days_active", days))], dtype=np.int64),
        prepaid=np.asarray([bool(det.get("prepaid", False))]),
    )


def rate_one(version: TariffVersionDef, determinants: dict[str, Any]) -> RatedBill:
    """Rate a single bill from a determinants dict (see :func:`input_from_dict`)."""
    return rate_arrays(version, input_from_dict(version, determinants)).bill(0)
