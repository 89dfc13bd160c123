"""Cancel/rebill on SQLite and PostgreSQL: corrected data and replaced estimates after a bill."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import numpy as np
from sqlalchemy import delete, func, select
from test_billing import PERIOD, TZ, build_fleet

from meter2cash.cis.billing.models import Bill, BillLine
from meter2cash.cis.billing.rebill import rebill, stale_bills, subscribe
from meter2cash.cis.billing.run import run_bills
from meter2cash.cis.collections.dunning import CollectionsPolicy, run_collections
from meter2cash.cis.collections.models import DunningStep
from meter2cash.cis.ledger.journal import account_balance, trial_balance
from meter2cash.cis.ledger.models import JournalEntry
from meter2cash.cis.payments.allocation import open_items, unapplied_credit
from meter2cash.cis.payments.receipts import receive
from meter2cash.cis.reports.receivables import ageing
from meter2cash.events.models import OutboxMessage
from meter2cash.events.outbox import Dispatcher, emit
from meter2cash.mdm.models import ChannelDay
from meter2cash.mdm.store import MeasurementStore
from meter2cash.mdm.usage.local import LocalUsage
from meter2cash.notify.models import Notification


def bill_of(session, agreement: str, status: str | None = None) -> Bill:
    stmt = select(Bill).order_by(Bill.id.desc())
    bills = [b for b in session.scalars(stmt) if b.service_agreement.number == agreement]
    return next(b for b in bills if status is None or b.status == status)


def test_corrected_data_after_the_bill_cancels_and_rebills(session):
    channels = build_fleet(session)
    run_bills(session, PERIOD, tz=TZ, currency="INR", usage=LocalUsage)
    session.commit()
    assert stale_bills(session, LocalUsage(session), period=PERIOD) == []
    old = bill_of(session, "SA-1")
    old_total, old_kwh = old.total, old.total_kwh

    # A corrected file for one day: every interval of 10 October (UTC) is now 0.5 kWh.
    corrected = {(channels["SA-1"], date(2026, 10, 10)): (np.arange(96), np.full(96, 0.5))}
    MeasurementStore(session).merge(corrected, {channels["SA-1"]: 900})
    session.commit()
    stale = stale_bills(session, LocalUsage(session), period=PERIOD)
    assert [(s.number, s.reason) for s in stale] == [(old.number, "corrected data after the bill")]

    result = rebill(session, stale, tz=TZ, currency="INR", usage=LocalUsage)
    session.commit()
    session.refresh(old)
    assert old.status == "cancelled" and old.cancel_reason == "corrected data after the bill"
    new = session.get(Bill, result.new_bills[0])
    assert new.replaces_bill_id == old.id and new.status == "issued"
    # Nothing was paid on the cancelled bill: nothing moves, the new bill is due in full.
    assert new.total_kwh != old_kwh and new.adjustment == 0
    assert [ln for ln in new.lines if ln.component == "adjustment"] == []
    assert new.total == sum(ln.amount for ln in new.lines)
    assert old_total != new.total
    # The old entry is reversed once; the customer owes the new bill only.
    assert session.scalar(select(JournalEntry).where(JournalEntry.reverses_id == old.journal_entry_id))
    assert account_balance(session, new.account_id) == new.total
    assert trial_balance(session).total == 0
    assert session.scalar(select(func.count()).where(OutboxMessage.topic == "bill.cancelled")) == 1
    # Nothing is stale any more, and a bill run for the period changes nothing.
    assert stale_bills(session, LocalUsage(session)) == []
    counts = session.scalar(select(func.count()).select_from(BillLine))
    again = run_bills(session, PERIOD, tz=TZ, currency="INR", usage=LocalUsage)
    assert again.bills == [] and session.scalar(select(func.count()).select_from(BillLine)) == counts


def test_a_paid_bill_rebilled_moves_its_payment_to_the_replacement(session):
    """Pay a bill in full, then correct its data: the payment settles the replacement, what it
    does not need is credit, and ageing, open items and collections agree with the ledger."""
    channels = build_fleet(session)
    run_bills(session, PERIOD, tz=TZ, currency="INR", usage=LocalUsage)
    old = bill_of(session, "SA-1")
    paid = old.total
    receive(session, old.account_id, paid, channel="cash", currency="INR", received_on=date(2026, 11, 5))
    session.commit()
    assert open_items(session, [old.account_id]) == []

    # Lower consumption on 10 October: the replacement is smaller than what was paid.
    corrected = {(channels["SA-1"], date(2026, 10, 10)): (np.arange(96), np.zeros(96))}
    MeasurementStore(session).merge(corrected, {channels["SA-1"]: 900})
    result = rebill(
        session,
        stale_bills(session, LocalUsage(session), period=PERIOD),
        tz=TZ,
        currency="INR",
        usage=LocalUsage,
    )
    session.commit()
    new = session.get(Bill, result.new_bills[0])
    assert new.total < paid
    # The replacement shows what was paid against the cancelled bill; its amount due is negative.
    assert new.adjustment == -paid
    adj = [ln for ln in new.lines if ln.component == "adjustment"]
    assert [ln.amount for ln in adj] == [-paid] and old.number in adj[0].description
    # Ledger: +old −paid −old (reversal) +new = new − paid, a credit.
    acct = new.account_id
    assert account_balance(session, acct) == new.total - paid
    assert open_items(session, [acct]) == []
    assert unapplied_credit(session, [acct]) == {acct: paid - new.total}
    row = next(r for r in ageing(session, date(2026, 12, 31), [acct]).rows)
    assert all(v == 0 for v in row.buckets.values()) and row.total == new.total - paid
    # A month after the due date: no surcharge, no dunning, no notification.
    r = run_collections(
        session, date(2026, 12, 31), currency="INR", tz=TZ, policy=CollectionsPolicy(reminder_after=1)
    )
    assert r.steps["reminder"] > 0  # the other, unpaid accounts of the fleet
    assert session.scalars(select(DunningStep).where(DunningStep.account_id == acct)).all() == []
    assert session.scalars(select(Notification).where(Notification.account_id == acct)).all() == []
    assert trial_balance(session).total == 0


def test_a_partly_paid_bill_rebilled_higher_leaves_the_difference_open(session):
    """Half paid, then rebilled at a higher total: the replacement is open for its total less
    the half paid, and that is what ageing shows and collections would dun."""
    channels = build_fleet(session)
    run_bills(session, PERIOD, tz=TZ, currency="INR", usage=LocalUsage)
    old = bill_of(session, "SA-1")
    half = (old.total / 2).quantize(D("0.01"))
    receive(session, old.account_id, half, channel="cash", currency="INR", received_on=date(2026, 11, 5))
    corrected = {(channels["SA-1"], date(2026, 10, 10)): (np.arange(96), np.full(96, 5.0))}
    MeasurementStore(session).merge(corrected, {channels["SA-1"]: 900})
    result = rebill(
        session,
        stale_bills(session, LocalUsage(session), period=PERIOD),
        tz=TZ,
        currency="INR",
        usage=LocalUsage,
    )
    new = session.get(Bill, result.new_bills[0])
    assert new.total > old.total and new.adjustment == -half
    items = open_items(session, [new.account_id])
    assert [(i.bill_id, i.open) for i in items] == [(new.id, new.total - half)]
    assert account_balance(session, new.account_id) == new.total - half
    assert trial_balance(session).total == 0


def test_estimated_bill_is_rebilled_when_actual_data_arrives(session, platform):
    channels = build_fleet(session)
    cid = channels["SA-1"]
    days = [date(2026, 10, d) for d in range(12, 17)]
    saved = MeasurementStore(session).read_window([cid], *_utc(days), 900).values[0]
    session.execute(delete(ChannelDay).where(ChannelDay.channel_id == cid, ChannelDay.day.in_(days)))
    session.commit()
    run_bills(session, PERIOD, tz=TZ, currency="INR", usage=LocalUsage)
    session.commit()
    est = bill_of(session, "SA-1")
    assert est.estimated and est.estimated_share > 0.1
    assert any(b.estimated is False for b in session.scalars(select(Bill)) if b.id != est.id)

    # The late data arrives; the handler subscribed to vee.estimate_replaced rebills.
    MeasurementStore(session).merge(
        {(cid, d): (np.arange(96), saved[i * 96 : (i + 1) * 96]) for i, d in enumerate(days)}, {cid: 900}
    )
    session.commit()
    emit(session, "vee.estimate_replaced", {"run_id": 1, "intervals": 480, "channel_days": 5}, key="1")
    session.commit()
    dispatcher = Dispatcher()
    subscribe(dispatcher, tz=TZ, currency="INR", usage=LocalUsage)
    dispatcher.dispatch_pending(platform.sessions)
    session.refresh(est)
    new = bill_of(session, "SA-1", "issued")
    assert est.status == "cancelled" and est.cancel_reason == "estimate replaced by actual data"
    assert not new.estimated and new.replaces_bill_id == est.id
    assert trial_balance(session).total == 0


def _utc(days: list[date]):
    from datetime import UTC, datetime, timedelta

    start = datetime(days[0].year, days[0].month, days[0].day, tzinfo=UTC)
    return start, start + timedelta(days=len(days))
