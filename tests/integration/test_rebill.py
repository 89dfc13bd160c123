"""Cancel/rebill on SQLite and PostgreSQL: corrected data and replaced estimates after a bill."""

from __future__ import annotations

from datetime import date

import numpy as np
from sqlalchemy import delete, func, select
from test_billing import PERIOD, TZ, build_fleet

from meter2cash.cis.billing import run_bills
from meter2cash.cis.ledger import account_balance, trial_balance
from meter2cash.cis.models import Bill, BillLine, JournalEntry
from meter2cash.cis.rebill import rebill, stale_bills, subscribe
from meter2cash.integration.models import OutboxMessage
from meter2cash.integration.outbox import Dispatcher, emit
from meter2cash.mdm.models import ChannelDay
from meter2cash.mdm.store import MeasurementStore


def bill_of(session, agreement: str, status: str | None = None) -> Bill:
    stmt = select(Bill).order_by(Bill.id.desc())
    bills = [b for b in session.scalars(stmt) if b.service_agreement.number == agreement]
    return next(b for b in bills if status is None or b.status == status)


def test_corrected_data_after_the_bill_cancels_and_rebills(session):
    channels = build_fleet(session)
    run_bills(session, PERIOD, tz=TZ, currency="INR")
    session.commit()
    assert stale_bills(session, period=PERIOD) == []
    old = bill_of(session, "SA-1")
    old_total, old_kwh = old.total, old.total_kwh

    # A corrected file for one day: every interval of 10 October (UTC) is now 0.5 kWh.
    corrected = {(channels["SA-1"], date(2026, 10, 10)): (np.arange(96), np.full(96, 0.5))}
    MeasurementStore(session).merge(corrected, {channels["SA-1"]: 900})
    session.commit()
    stale = stale_bills(session, period=PERIOD)
    assert [(s.number, s.reason) for s in stale] == [(old.number, "corrected data after the bill")]

    result = rebill(session, stale, tz=TZ, currency="INR")
    session.commit()
    session.refresh(old)
    assert old.status == "cancelled" and old.cancel_reason == "corrected data after the bill"
    new = session.get(Bill, result.new_bills[0])
    assert new.replaces_bill_id == old.id and new.status == "issued"
    assert new.total_kwh != old_kwh and new.adjustment == -old_total
    adj = [ln for ln in new.lines if ln.component == "adjustment"]
    assert len(adj) == 1 and adj[0].amount == -old_total and old.number in adj[0].description
    assert new.total == sum(ln.amount for ln in new.lines if ln.component != "adjustment")
    # The old entry is reversed once; the customer owes the new bill only.
    assert session.scalar(select(JournalEntry).where(JournalEntry.reverses_id == old.journal_entry_id))
    assert account_balance(session, new.account_id) == new.total
    assert trial_balance(session).total == 0
    assert session.scalar(select(func.count()).where(OutboxMessage.topic == "bill.cancelled")) == 1
    # Nothing is stale any more, and a bill run for the period changes nothing.
    assert stale_bills(session) == []
    counts = session.scalar(select(func.count()).select_from(BillLine))
    again = run_bills(session, PERIOD, tz=TZ, currency="INR")
    assert again.bills == [] and session.scalar(select(func.count()).select_from(BillLine)) == counts


def test_estimated_bill_is_rebilled_when_actual_data_arrives(session, platform):
    channels = build_fleet(session)
    cid = channels["SA-1"]
    days = [date(2026, 10, d) for d in range(12, 17)]
    saved = MeasurementStore(session).read_window([cid], *_utc(days), 900).values[0]
    session.execute(delete(ChannelDay).where(ChannelDay.channel_id == cid, ChannelDay.day.in_(days)))
    session.commit()
    run_bills(session, PERIOD, tz=TZ, currency="INR")
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
    subscribe(dispatcher, tz=TZ, currency="INR")
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
