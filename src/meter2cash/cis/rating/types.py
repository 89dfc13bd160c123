"""What rating takes and gives: the rating input arrays, rated arrays, lines and bills."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt

from meter2cash.cis.rating import payment_terms
from meter2cash.cis.rating.scaled import QTY_PLACES
from meter2cash.cis.tariffs.definitions import TariffVersionDef
from meter2cash.core.money import quantum

I64 = npt.NDArray[np.int64]

#: Ledger account credited by each bill-line component.
LEDGER_ACCOUNT = {
    "fixed": "4200",
    "energy": "4100",
    "tou": "4100",
    "demand": "4300",
    "prepaid_discount": "4900",
    "fuel": "4100",
    "power_factor": "4100",
    "minimum": "4200",
    "export_credit": "4900",
    "net_metering": "4900",
    "tax": "2200",
    "rounding": "4900",
    "adjustment": "4900",
}


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
    prepaid (n,) bool. Optional (``None``: not measured / not applicable): kvah_vah (n,) [VAh];
    export_wh (n,) [Wh] exported; bank_wh (n,) [Wh] banked export carried in; demand_w_by_period
    (n, P) [W]; contract_va (n,) contract demand [VA]; ratchet_w (n,) highest maximum demand of
    the ratchet months [W]; months (n,) months in the period (2 for a bimonthly cycle);
    period ``YYYY-MM`` billing month (fuel adjustment, true-up); prorate_demand: the bills are
    segments of split bills, so demand charges prorate by days_active / days_in_period too.
    """

    wh_by_period: I64
    demand_w: I64
    sanctioned_w: I64
    days_in_period: I64
    days_active: I64
    prepaid: npt.NDArray[np.bool_]
    kvah_vah: I64 | None = None
    export_wh: I64 | None = None
    bank_wh: I64 | None = None
    demand_w_by_period: I64 | None = None
    contract_va: I64 | None = None
    ratchet_w: I64 | None = None
    months: I64 | None = None
    period: str | None = None
    prorate_demand: bool = False

    @property
    def months_or_one(self) -> I64:
        return np.ones(self.n, np.int64) if self.months is None else self.months

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
        *,
        kvah: npt.ArrayLike | None = None,
        export_kwh: npt.ArrayLike | None = None,
        bank_kwh: npt.ArrayLike | None = None,
        max_demand_kw_by_period: npt.ArrayLike | None = None,
        contract_kva: npt.ArrayLike | None = None,
        ratchet_kw: npt.ArrayLike | None = None,
        months: npt.ArrayLike | None = None,
        period: str | None = None,
        prorate_demand: bool = False,
    ) -> RatingInput:
        """From measured kWh/kW (float), in whole Wh and W.

        The total is rounded to Wh once and shared out over the TOU periods by largest remainder
        (:func:`split_wh`), so the periods always add up to the rounded total energy. The
        keyword-only determinants are optional (see the class).
        """
        by_period = np.atleast_2d(np.asarray(kwh_by_period, dtype=np.float64))
        n = by_period.shape[0]
        days = np.broadcast_to(np.asarray(days_in_period, dtype=np.int64), (n,)).copy()

        def milli(v: npt.ArrayLike | None, shape: tuple[int, ...] = (n,)) -> I64 | None:
            if v is None:
                return None
            arr = np.nan_to_num(np.asarray(v, dtype=np.float64))
            return np.broadcast_to(np.rint(arr * 1000).astype(np.int64), shape).copy()

        return cls(
            wh_by_period=split_wh(by_period, kwh_total),
            demand_w=np.broadcast_to(
                np.rint(np.asarray(max_demand_kw, dtype=np.float64) * 1000).astype(np.int64).ravel(), (n,)
            ).copy(),
            sanctioned_w=np.broadcast_to(
                np.rint(np.asarray(sanctioned_kw, dtype=np.float64) * 1000).astype(np.int64).ravel(), (n,)
            ).copy(),
            days_in_period=days,
            days_active=days.copy()
            if days_active is None
            else np.asarray(days_active, dtype=np.int64).reshape(n),
            prepaid=np.zeros(n, bool) if prepaid is None else np.asarray(prepaid, dtype=bool).reshape(n),
            kvah_vah=milli(kvah),
            export_wh=milli(export_kwh),
            bank_wh=milli(bank_kwh),
            demand_w_by_period=milli(max_demand_kw_by_period, by_period.shape),
            contract_va=milli(contract_kva),
            ratchet_w=milli(ratchet_kw),
            months=None if months is None else np.broadcast_to(np.asarray(months, np.int64), (n,)).copy(),
            period=period,
            prorate_demand=prorate_demand,
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
    #: Payment terms (prompt-payment rebate, late-payment surcharge) and net-metering bank.
    terms: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tariff_code": self.tariff_code,
            "currency": self.currency,
            "lines": [ln.to_dict() for ln in self.lines],
            "subtotal": str(self.subtotal),
            "tax": str(self.tax),
            "total": str(self.total),
            "terms": self.terms,
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
    #: Banked export carried to the next period [Wh] (net metering; zeros otherwise).
    bank_wh: I64 | None = None
    _cache: dict[str, Any] = field(default_factory=dict)

    def terms(self, j: int, total: Decimal) -> dict[str, Any]:
        """Payment terms and the net-metering bank of bill ``j``, as JSON-ready strings."""
        v = self.version
        out: dict[str, Any] = {}
        terms = payment_terms.resolve(v.payment_terms, payment_terms.NONE)
        rebate = payment_terms.rebate_amount(total, terms, v.currency)
        if rebate:
            out["prompt_payment_rebate"] = str(rebate)
            out["prompt_payment_days"] = terms.prompt_days
        if terms.has_surcharge:
            out["late_payment_surcharge_percent"] = f"{terms.late_percent.normalize():f}"
            out["late_payment_surcharge"] = str(
                payment_terms.surcharge_amount(max(total, Decimal(0)), terms.late_percent, v.currency)
            )
            out["late_payment_grace_days"] = terms.late_grace_days
        if v.net_metering is not None and self.bank_wh is not None:
            out["banked_kwh"] = str(Decimal(int(self.bank_wh[j])).scaleb(-3))
        return out

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
        v0 = self.version
        has_terms = bool(
            v0.payment_terms.prompt_percent or v0.payment_terms.late_percent or v0.net_metering is not None
        )
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
            rb = RatedBill(v.code, v.currency, lines, self.money(sub[j]), self.money(tax[j]), total)
            if has_terms:
                rb.terms = self.terms(idx[j], total)
            out.append(rb)
        return out
