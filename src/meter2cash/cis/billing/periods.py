"""Bill cycles and billing periods: a period's local days and UTC bounds, the cycles due on a day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import (
    select,
)
from sqlalchemy.orm import Session

from meter2cash.cis.billing.models import BillCycle, BillCycleAssignment
from meter2cash.core.timeutil import local_month_bounds

MONTHLY = "monthly"
ONE_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class BillingPeriod:
    """``months`` local calendar months from ``code`` (``YYYY-MM``): dates and UTC bounds."""

    code: str
    months: int
    first: date
    last: date
    start: datetime
    end: datetime

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def month_codes(self) -> list[str]:
        y, m = self.first.year, self.first.month
        return [f"{y + (m - 1 + k) // 12}-{(m - 1 + k) % 12 + 1:02d}" for k in range(self.months)]


def add_months(code: str, k: int) -> str:
    y, m = (int(p) for p in code.split("-"))
    idx = y * 12 + (m - 1) + k
    return f"{idx // 12}-{idx % 12 + 1:02d}"


def billing_period(code: str, tz: str, months: int = 1) -> BillingPeriod:
    """The period of ``months`` local months starting with month ``code``."""
    start, _ = local_month_bounds(code, tz)
    last_code = add_months(code, months - 1)
    _, end = local_month_bounds(last_code, tz)
    y, m = (int(p) for p in code.split("-"))
    ly, lm = (int(p) for p in last_code.split("-"))
    last = date(ly + (lm == 12), lm % 12 + 1, 1) - timedelta(days=1)
    return BillingPeriod(code, months, date(y, m, 1), last, start, end)


def cycle_period(cycle: BillCycle | None, month: str, tz: str) -> BillingPeriod | None:
    """The period of ``cycle`` that starts in ``month``; ``None`` if no period starts then
    (a bimonthly cycle starts a period every other month)."""
    if cycle is None or cycle.frequency == MONTHLY:
        return billing_period(month, tz)
    if int(month[5:7]) % 2 != cycle.start_month_parity % 2:
        return None
    return billing_period(month, tz, 2)


def cycles_due(session: Session, on: date) -> list[tuple[str, str]]:
    """Date-driven schedule: ``(cycle code, period code)`` of every cycle whose ``bill_day`` is
    ``on``'s day and whose period ended in the previous month."""
    prev = add_months(f"{on.year}-{on.month:02d}", -1)
    out = []
    for c in session.scalars(select(BillCycle).where(BillCycle.bill_day == on.day)):
        months = 1 if c.frequency == MONTHLY else 2
        first = add_months(prev, -(months - 1))
        if months == 1 or int(first[5:7]) % 2 == c.start_month_parity % 2:
            out.append((c.code, first))
    if on.day == 1 and not any(code == MONTHLY for code, _ in out):
        out.insert(0, (MONTHLY, prev))
    return out


def cycle_members(session: Session, cycle: str) -> set[int] | None:
    """Agreement ids assigned to ``cycle``; for ``monthly``: ``None`` and the caller excludes
    every agreement assigned elsewhere (see :func:`assigned_elsewhere`)."""
    if cycle == MONTHLY:
        return None
    return set(
        session.scalars(
            select(BillCycleAssignment.service_agreement_id).where(BillCycleAssignment.cycle_code == cycle)
        )
    )


def assigned_elsewhere(session: Session) -> set[int]:
    return set(
        session.scalars(
            select(BillCycleAssignment.service_agreement_id).where(BillCycleAssignment.cycle_code != MONTHLY)
        )
    )
