"""Bill cycles and billing periods: a period's local days and UTC bounds, the cycles due on a day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from meter2cash.cis.billing.models import BillCycle
from meter2cash.core.timeutil import (
    add_months,
    local_month_bounds,
    month_code,
    month_end,
    parse_month,
)

MONTHLY = "monthly"


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
        return [add_months(self.code, k) for k in range(self.months)]


def billing_period(code: str, tz: str, months: int = 1) -> BillingPeriod:
    """The period of ``months`` local months starting with month ``code``."""
    start, _ = local_month_bounds(code, tz)
    last_month = add_months(code, months - 1)
    _, end = local_month_bounds(last_month, tz)
    return BillingPeriod(code, months, parse_month(code), month_end(parse_month(last_month)), start, end)


def cycles_due(session: Session, on: date) -> list[tuple[str, str]]:
    """Date-driven schedule: ``(cycle code, period code)`` of every cycle whose ``bill_day`` is
    ``on``'s day and whose period ended in the previous month."""
    previous_month = add_months(month_code(on), -1)
    due = []
    for cycle in session.scalars(select(BillCycle).where(BillCycle.bill_day == on.day)):
        months = 1 if cycle.frequency == MONTHLY else 2
        first_month = add_months(previous_month, -(months - 1))
        if months == 1 or int(first_month[5:7]) % 2 == cycle.start_month_parity % 2:
            due.append((cycle.code, first_month))
    if on.day == 1 and not any(code == MONTHLY for code, _ in due):
        due.insert(0, (MONTHLY, previous_month))
    return due
