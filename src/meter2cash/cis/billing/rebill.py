"""Cancel and rebill: a bill whose data changed after it was issued is cancelled, its journal
entry reversed, and the period billed again. What payments had applied to the cancelled bill
moves to its replacement (what the replacement does not need stays as credit, applied to the
account's other open items); the new bill shows it as a line. Nothing changes silently.

A bill records the fingerprint of the usage it was rated from (the usage port's
``UsageBatch.versions``: from this platform's MDM the count and version sum of the channel-days
read). VEE replacing an estimate with actual data, a late file or a manual edit bumps a
channel-day's version (or adds a day); an external MDM delivers a new version: the usage source
then says the fingerprint changed (:meth:`~meter2cash.mdm.usage.port.UsageSource.changed`) and
the bill is *stale*. :func:`rebill` takes a Session and never
commits. :func:`on_estimate_replaced` is the outbox handler for ``vee.estimate_replaced``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from meter2cash.cis.billing.models import Bill
from meter2cash.cis.billing.results import BillRunResult
from meter2cash.cis.billing.run import run_bills
from meter2cash.cis.billing.store import Replacement
from meter2cash.cis.parties.models import Account
from meter2cash.cis.payments.allocation import apply_credit, cancel_item
from meter2cash.core.timeutil import Clock, utcnow
from meter2cash.events.outbox import emit
from meter2cash.mdm.usage.port import UsageFactory, UsageSource

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
    session: Session, usage: UsageSource, *, period: str | None = None, account: str | None = None
) -> list[StaleBill]:
    """Issued bills (and prepaid statements) whose usage changed since they were rated: the
    usage source no longer matches the fingerprint each bill recorded."""
    stmt = select(Bill).where(Bill.status.in_(REBILL_STATUSES))
    if period:
        stmt = stmt.where(Bill.period == period)
    if account:
        stmt = stmt.join(Account, Account.id == Bill.account_id).where(Account.number == account)
    by_window: dict[tuple[Any, Any], list[tuple[Bill, list[dict[str, Any]]]]] = defaultdict(list)
    for b in session.scalars(stmt.order_by(Bill.id)):
        versions = fingerprints(b.determinants or {})
        if versions:
            by_window[(b.period_start, b.period_end)].append((b, versions))
    out: list[StaleBill] = []
    for (start, end), bills in by_window.items():
        changed = iter(usage.changed(start, end, [v for _, versions in bills for v in versions]))
        for b, versions in bills:
            if any([next(changed) for _ in versions]):
                what = "estimate replaced by actual data" if b.estimated else "corrected data after the bill"
                out.append(StaleBill(b.id, b.number, b.period, what))
    return out


def fingerprints(determinants: dict[str, Any]) -> list[dict[str, Any]]:
    """The usage fingerprints a bill was rated from: one per segment of a split bill (each read
    the meters of its own days), else the bill's one."""
    segments = [sg["data_version"] for sg in determinants.get("segments") or [] if sg.get("data_version")]
    if segments:
        return segments
    return [determinants["data_version"]] if determinants.get("data_version") else []


def rebill(
    session: Session,
    stale: list[StaleBill],
    *,
    tz: str,
    currency: str,
    usage: UsageFactory,
    clock: Clock = utcnow,
) -> RebillResult:
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
        old.cancelled_at = clock()
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
                agreement_ids=sorted(replacing), replacing=replacing, usage=usage, clock=clock,
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
    session: Session,
    *,
    tz: str,
    currency: str,
    usage: UsageFactory,
    period: str | None = None,
    account: str | None = None,
) -> RebillResult:
    """Find stale bills in scope and rebill them (does not commit)."""
    stale = stale_bills(session, usage(session), period=period, account=account)
    return rebill(session, stale, tz=tz, currency=currency, usage=usage)


def on_estimate_replaced(tz: str, currency: str, usage: UsageFactory) -> Any:
    """An outbox handler for ``vee.estimate_replaced``: rebill every bill whose data changed."""

    def handle(session: Session, msg: Any) -> None:
        rebill_stale(session, tz=tz, currency=currency, usage=usage)

    return handle


def subscribe(dispatcher: Any, *, tz: str, currency: str, usage: UsageFactory) -> None:
    """Rebill stale bills whenever VEE replaces estimates with actual data."""
    dispatcher.subscribe(TOPIC_ESTIMATE_REPLACED, "billing.rebill", on_estimate_replaced(tz, currency, usage))
