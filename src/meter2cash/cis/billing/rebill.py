"""Cancel and rebill: a bill whose data changed after it was issued is cancelled, its journal
entry reversed, and the period billed again. What payments had applied to the cancelled bill
moves to its replacement (what the replacement does not need stays as credit, applied to the
account's other open items); the new bill shows it as a line. Nothing changes silently.

A bill records a fingerprint of the channel-days it was rated from (their count and the sum of
their versions, :func:`meter2cash.cis.billing.run.data_version`). VEE replacing an estimate with
actual data, a late file or a manual edit bumps a channel-day's version (or adds a day), so the
fingerprint read now differs: the bill is *stale*. :func:`rebill` takes a Session and never
commits. :func:`on_estimate_replaced` is the outbox handler for ``vee.estimate_replaced``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from meter2cash.cis.billing.models import Bill
from meter2cash.cis.billing.run import BillRunResult, run_bills, span_totals
from meter2cash.cis.billing.store import Replacement
from meter2cash.cis.parties.models import Account
from meter2cash.cis.payments.allocation import apply_credit, cancel_item
from meter2cash.core.timeutil import utcnow
from meter2cash.integration.outbox import emit
from meter2cash.mdm.models import ChannelDay

TOPIC_ESTIMATE_REPLACED = "vee.estimate_replaced"
REBILL_STATUSES = ("issued", "statement")


@dataclass(slots=True)
class StaleBill:
    bill_id: int
    number: str
    period: str
    reason: str


@dataclass(slots=True)
class RebillResult:
    cancelled: list[StaleBill] = field(default_factory=list)
    runs: list[BillRunResult] = field(default_factory=list)

    @property
    def new_bills(self) -> list[int]:
        return [b for r in self.runs for b in r.bills]

    def to_dict(self) -> dict[str, Any]:
        return {
            "cancelled": [s.__dict__ | {} for s in self.cancelled],
            "rebilled": len(self.new_bills),
            "bill_ids": self.new_bills,
            "errors": [e for r in self.runs for e in r.errors],
        }


def stale_bills(
    session: Session, *, period: str | None = None, account: str | None = None
) -> list[StaleBill]:
    """Issued bills (and prepaid statements) whose channel-days changed since they were rated."""
    stmt = select(Bill).where(Bill.status.in_(REBILL_STATUSES))
    if period:
        stmt = stmt.where(Bill.period == period)
    if account:
        stmt = stmt.join(Account, Account.id == Bill.account_id).where(Account.number == account)
    by_window: dict[tuple[Any, Any], list[Bill]] = defaultdict(list)
    for b in session.scalars(stmt.order_by(Bill.id)):
        by_window[(b.period_start, b.period_end)].append(b)
    out: list[StaleBill] = []
    for (start, end), bills in by_window.items():
        ids = sorted(
            {c for b in bills for c in (b.determinants or {}).get("data_version", {}).get("channels", [])}
        )
        now: dict[int, tuple[int, int]] = {}
        for i in range(0, len(ids), 500):
            rows = session.execute(
                select(ChannelDay.channel_id, func.count(), func.sum(ChannelDay.version))
                .where(
                    ChannelDay.channel_id.in_(ids[i : i + 500]),
                    ChannelDay.day >= start.date(),
                    ChannelDay.day <= (end - timedelta(microseconds=1)).date(),
                )
                .group_by(ChannelDay.channel_id)
            )
            now.update({int(c): (int(n), int(s or 0)) for c, n, s in rows})
        spanned = sorted(
            {int(c) for b in bills for c in (b.determinants or {}).get("data_version", {}).get("spans", {})}
        )
        by_day: dict[int, list[tuple[date, int]]] = defaultdict(list)
        for i in range(0, len(spanned), 500):  # meters exchanged in the period: per day
            for c, d, v in session.execute(
                select(ChannelDay.channel_id, ChannelDay.day, ChannelDay.version).where(
                    ChannelDay.channel_id.in_(spanned[i : i + 500]),
                    ChannelDay.day >= start.date(),
                    ChannelDay.day <= (end - timedelta(microseconds=1)).date(),
                )
            ):
                by_day[c].append((d, v))
        for b in bills:
            dv = (b.determinants or {}).get("data_version")
            if not dv:
                continue
            spans = {
                int(c): (date.fromisoformat(a), None if z is None else date.fromisoformat(z))
                for c, (a, z) in dv.get("spans", {}).items()
            }
            days = total = 0
            for c in dv["channels"]:
                n, v = now.get(c, (0, 0)) if c not in spans else span_totals(by_day[c], *spans[c])
                days, total = days + n, total + v
            if (days, total) != (dv["days"], dv["sum"]):
                what = "estimate replaced by actual data" if b.estimated else "corrected data after the bill"
                out.append(StaleBill(b.id, b.number, b.period, what))
    return out


def rebill(session: Session, stale: list[StaleBill], *, tz: str, currency: str) -> RebillResult:
    """Cancel each stale bill (reverse its journal entry, release the payments applied to it,
    status ``cancelled``, a ``bill.cancelled`` event) and bill its agreement for the period
    again; the new bill names the one it replaces, and the released payments settle it first
    (a line "paid against the cancelled bill"; the rest stays credit on the account, applied
    to its other open items oldest first)."""
    result = RebillResult()
    groups: dict[tuple[str, str], dict[int, Replacement]] = defaultdict(dict)
    accounts: set[int] = set()
    for s in stale:
        old = session.get(Bill, s.bill_id)
        if old is None or old.status not in REBILL_STATUSES:
            continue
        paid = Decimal(0)
        if old.journal_entry_id is not None:
            released = cancel_item(session, old.journal_entry_id, f"bill {old.number} cancelled: {s.reason}")
            paid = sum(released.values(), Decimal(0))
            accounts.add(old.account_id)
        old.status = "cancelled"
        old.cancelled_at = utcnow()
        old.cancel_reason = s.reason
        emit(
            session,
            "bill.cancelled",
            {"bill_id": old.id, "number": old.number, "period": old.period, "reason": s.reason,
             "total": str(old.total), "account_id": old.account_id},
            key=old.number,
        )  # fmt: skip
        groups[(old.period, old.cycle)][old.service_agreement_id] = Replacement(old, paid)
        result.cancelled.append(s)
    session.flush()
    for (period, cycle), replacing in groups.items():
        result.runs.append(
            run_bills(
                session, period, tz=tz, currency=currency, cycle=cycle,
                agreement_ids=sorted(replacing), replacing=replacing,
            )
        )  # fmt: skip
    if accounts:
        new, first = result.new_bills, list[int | None]()
        for i in range(0, len(new), 500):
            first += session.scalars(
                select(Bill.journal_entry_id).where(
                    Bill.id.in_(new[i : i + 500]), Bill.journal_entry_id.is_not(None)
                )
            ).all()
        apply_credit(session, sorted(accounts), first=[e for e in first if e is not None])
    return result


def rebill_stale(
    session: Session, *, tz: str, currency: str, period: str | None = None, account: str | None = None
) -> RebillResult:
    """Find stale bills in scope and rebill them (does not commit)."""
    return rebill(session, stale_bills(session, period=period, account=account), tz=tz, currency=currency)


def on_estimate_replaced(tz: str, currency: str) -> Any:
    """An outbox handler for ``vee.estimate_replaced``: rebill every bill whose data changed."""

    def handle(session: Session, msg: Any) -> None:
        rebill_stale(session, tz=tz, currency=currency)

    return handle


def subscribe(dispatcher: Any, *, tz: str, currency: str) -> None:
    """Rebill stale bills whenever VEE replaces estimates with actual data."""
    dispatcher.subscribe(TOPIC_ESTIMATE_REPLACED, "billing.rebill", on_estimate_replaced(tz, currency))
