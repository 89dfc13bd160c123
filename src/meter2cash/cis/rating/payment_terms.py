"""Payment terms of a bill: the prompt-payment rebate and the late-payment surcharge, defined once.

The tariff version states them (``[versions.payment_terms]``); a field it leaves out takes the
utility's default (:data:`UTILITY_DEFAULT`, given to the bill run and to collections). The bill
run resolves them when it issues a bill and records them on the bill with their dates
(:func:`bill_terms`); the bill document prints that record, collections levies the surcharge from
it (:func:`surcharges_due`, :func:`surcharge_amount`) and a payment earns the rebate from it
(:func:`rebate_earned`). So the amount printed is the amount posted. Pure functions: no database.

Rules (docs/tariffs.md, "Payment terms"):

- Prompt-payment rebate: ``prompt_percent`` % of the bill total, when payments applied to the
  bill reach the total less the rebate by ``prompt_days`` after the issue day.
- Late-payment surcharge: ``late_percent`` % of what is still open on the bill, once a month:
  the first on the day after ``late_grace_days`` days past the due date, the next a month later,
  and so on while the bill stays open. Surcharges are new open items, never compounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from meter2cash.cis.tariffs.components import PaymentTerms
from meter2cash.core.money import quantum
from meter2cash.core.timeutil import add_months

HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class Terms:
    """Payment terms with every field resolved."""

    prompt_days: int = 0
    prompt_percent: Decimal = Decimal(0)
    late_percent: Decimal = Decimal(0)
    late_grace_days: int = 0

    @property
    def has_rebate(self) -> bool:
        return self.prompt_percent > 0

    @property
    def has_surcharge(self) -> bool:
        return self.late_percent > 0


#: The utility's defaults for a tariff that states no payment terms: no rebate; a surcharge of
#: 1.5 % a month on what is open, from 15 days after the due date.
UTILITY_DEFAULT = Terms(
    prompt_days=0, prompt_percent=Decimal(0), late_percent=Decimal("1.5"), late_grace_days=15
)
#: No defaults: only what the tariff states (a rated bill shown on its own, ``m2c bill calc``).
NONE = Terms()


def resolve(stated: PaymentTerms | None, default: Terms = UTILITY_DEFAULT) -> Terms:
    """The tariff's terms, each field it leaves out (``None``) taken from ``default``."""
    if stated is None:
        return default

    def pick(name: str) -> Any:
        value = getattr(stated, name)
        return getattr(default, name) if value is None else value

    return Terms(pick("prompt_days"), pick("prompt_percent"), pick("late_percent"), pick("late_grace_days"))


def rebate_amount(total: Decimal, terms: Terms, currency: str) -> Decimal:
    """The prompt-payment rebate on a bill of ``total`` (0 for none or a credit bill)."""
    if not terms.has_rebate or total <= 0:
        return Decimal(0)
    return (total * terms.prompt_percent / HUNDRED).quantize(quantum(currency), ROUND_HALF_UP)


def surcharge_amount(open_amount: Decimal, percent: Decimal, currency: str) -> Decimal:
    """One month's late-payment surcharge on ``open_amount`` at ``percent`` %."""
    if percent <= 0 or open_amount <= 0:
        return Decimal(0)
    return (open_amount * percent / HUNDRED).quantize(quantum(currency), ROUND_HALF_UP)


def surcharge_dates(due: date, grace_days: int, until: date) -> list[date]:
    """The days a monthly surcharge falls due on a bill due on ``due``, up to ``until``: the day
    after the grace period, then the same day of each following month (the month's last day
    when it has no such day)."""
    first = due + timedelta(days=grace_days + 1)
    out = []
    k = 0
    while (d := add_months(first, k)) <= until:
        out.append(d)
        k += 1
    return out


def bill_terms(
    total: Decimal, terms: Terms, currency: str, issued_on: date, due: date | None
) -> dict[str, Any]:
    """The record of a bill's payment terms as issued (JSON-ready strings; empty for none)."""
    out: dict[str, Any] = {}
    rebate = rebate_amount(total, terms, currency)
    if rebate > 0:
        out["prompt_payment_rebate"] = str(rebate)
        out["prompt_payment_percent"] = _pct(terms.prompt_percent)
        out["prompt_payment_days"] = terms.prompt_days
        out["prompt_payment_by"] = (issued_on + timedelta(days=terms.prompt_days)).isoformat()
    if terms.has_surcharge and due is not None:
        out["late_payment_surcharge_percent"] = _pct(terms.late_percent)
        out["late_payment_surcharge"] = str(
            surcharge_amount(max(total, Decimal(0)), terms.late_percent, currency)
        )
        out["late_payment_grace_days"] = terms.late_grace_days
        out["late_payment_from"] = (due + timedelta(days=terms.late_grace_days + 1)).isoformat()
    return out


def recorded(det_terms: dict[str, Any] | None, default: Terms = UTILITY_DEFAULT) -> Terms:
    """The terms a bill was issued with, read back from its record; a bill issued without a
    record of its late-payment terms takes ``default`` for them."""
    t = det_terms or {}
    if "late_payment_surcharge_percent" in t:
        late, grace = (
            Decimal(str(t["late_payment_surcharge_percent"])),
            int(t.get("late_payment_grace_days") or 0),
        )
    else:
        late, grace = default.late_percent, default.late_grace_days
    prompt_pct = Decimal(str(t.get("prompt_payment_percent") or 0))
    return Terms(int(t.get("prompt_payment_days") or 0), prompt_pct, late, grace)


def rebate_earned(det_terms: dict[str, Any] | None, total: Decimal, paid: Decimal, on: date) -> Decimal:
    """The rebate a bill earns when payments applied to it reach ``paid`` on day ``on``: its
    recorded rebate when ``on`` is not after the rebate's last day and ``paid`` covers the
    total less the rebate; else 0."""
    t = det_terms or {}
    if not t.get("prompt_payment_rebate") or not t.get("prompt_payment_by"):
        return Decimal(0)
    rebate = Decimal(str(t["prompt_payment_rebate"]))
    if on > date.fromisoformat(str(t["prompt_payment_by"])) or paid < total - rebate:
        return Decimal(0)
    return rebate


def _pct(value: Decimal) -> str:
    return f"{value.normalize():f}"
