"""A payment-mode change inside a billing period, on SQLite and PostgreSQL: each day is charged
once, by the prepaid engine on prepaid days or by the bill on postpaid days."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import numpy as np
import pytest
from sqlalchemy import select
from test_prepaid import ANYTIME, TZ, build_prepaid

from meter2cash.cis.billing.models import Bill
from meter2cash.cis.billing.run import run_bills
from meter2cash.cis.contracts.payment_mode import change_payment_mode
from meter2cash.cis.ledger.journal import account_balance, trial_balance
from meter2cash.cis.parties.models import ServiceAgreement
from meter2cash.cis.prepaid.daily_charge import run_daily
from meter2cash.cis.prepaid.models import PrepaidCharge, Wallet
from meter2cash.cis.prepaid.wallet import recharge_account, wallet_balance
from meter2cash.core.errors import Conflict, InvalidInput
from meter2cash.core.timeutil import local_midnight
from meter2cash.mdm.commands.models import MeterCommand
from meter2cash.mdm.models import Channel
from meter2cash.mdm.store import MeasurementStore
from meter2cash.mdm.usage.local import LocalUsage

D = Decimal


def local_wh(session, first: date, last: date) -> int:
    """Wh of the one meter over the local days ``first..last``, read from the store."""
    ch = session.scalar(select(Channel.id))
    start = local_midnight(first, TZ)
    end = local_midnight(last + timedelta(days=1), TZ)
    values = MeasurementStore(session).read_window([ch], start, end, 900).values[0]
    return round(float(np.nansum(values)) * 1000)


def change(session, day: date, mode: str, today: date):
    return change_payment_mode(
        session,
        "SA-0",
        day,
        mode,
        reason="consumer asked",
        by="test",
        today=today,
        tz=TZ,
        currency="INR",
        usage=LocalUsage,
    )


def test_prepaid_to_postpaid_on_the_15th_bills_only_the_postpaid_days(session):
    (acct,) = build_prepaid(session, n=1)
    recharge_account(session, acct, D("2000.00"), channel="cash", currency="INR", tz=TZ, policy=ANYTIME)
    for d in range(1, 15):
        run_daily(session, date(2026, 10, d), tz=TZ, currency="INR", policy=ANYTIME, usage=LocalUsage)
    wallet = session.scalars(select(Wallet)).one()
    left = wallet_balance(session, wallet)
    assert D(0) < left < D("2000.00")
    done = change(session, date(2026, 10, 15), "postpaid", today=date(2026, 10, 15))
    assert (done.from_mode, done.to_mode, done.settled) == ("prepaid", "postpaid", left)
    assert wallet_balance(session, wallet) == 0
    assert account_balance(session, acct, "1100") == -left  # the wallet's credit, now on receivables
    for d in range(15, 32):
        run_daily(session, date(2026, 10, d), tz=TZ, currency="INR", policy=ANYTIME, usage=LocalUsage)
    charged = session.scalars(select(PrepaidCharge).order_by(PrepaidCharge.day)).all()
    assert [c.day.day for c in charged] == list(range(1, 15))
    # Nobody is cut off: the wallet of a postpaid agreement is not evaluated; the one command is
    # the meter's own switch to postpaid.
    kinds = session.scalars(select(MeterCommand.kind)).all()
    assert kinds == ["payment_mode"]

    run_bills(session, "2026-10", tz=TZ, currency="INR", usage=LocalUsage)
    bill = session.scalars(select(Bill)).one()
    assert (bill.kind, bill.status, bill.tariff_code) == ("postpaid", "issued", "RES-PP")
    assert int(bill.total_kwh * 1000) == local_wh(session, date(2026, 10, 15), date(2026, 10, 31))
    # every day of the month once: 1–14 by the prepaid engine, 15–31 by the bill
    assert sum(c.wh for c in charged) + int(bill.total_kwh * 1000) == local_wh(
        session, date(2026, 10, 1), date(2026, 10, 31)
    )
    fixed = [ln.amount for ln in bill.lines if ln.component == "fixed"]
    assert fixed == [D("16.4516")]  # 30.00 a month × 17 / 31 days, 4 places (bill-level rounding)
    assert account_balance(session, acct, "1100") == bill.total - left
    assert trial_balance(session).total == 0


def test_postpaid_to_prepaid_on_the_15th_charges_from_the_15th_and_bills_the_days_before(session):
    (acct,) = build_prepaid(session, n=1)
    sa = session.scalars(select(ServiceAgreement)).one()
    sa.payment_mode = "postpaid"
    session.flush()
    done = change(session, date(2026, 10, 15), "prepaid", today=date(2026, 10, 20))
    assert done.settled == 0 and sa.payment_mode == "prepaid"
    # the meter is switched too, by a command through the head-end
    switch = session.get(MeterCommand, done.meter_command)
    assert (switch.kind, switch.params, switch.service_agreement_id, switch.status) == (
        "payment_mode", {"mode": "prepaid"}, sa.id, "requested"
    )  # fmt: skip
    recharge_account(session, acct, D("500.00"), channel="cash", currency="INR", tz=TZ, policy=ANYTIME)
    run_daily(session, date(2026, 10, 20), tz=TZ, currency="INR", policy=ANYTIME, usage=LocalUsage)
    first = session.scalars(select(PrepaidCharge)).one()
    assert (first.day, first.mtd_days) == (date(2026, 10, 20), 6)  # 15..20 caught up at once
    assert first.wh == local_wh(session, date(2026, 10, 15), date(2026, 10, 20))
    for d in range(21, 32):
        run_daily(session, date(2026, 10, d), tz=TZ, currency="INR", policy=ANYTIME, usage=LocalUsage)
    run_bills(session, "2026-10", tz=TZ, currency="INR", usage=LocalUsage)
    bill = session.scalars(select(Bill)).one()
    assert (bill.kind, bill.status) == ("postpaid", "issued")
    assert int(bill.total_kwh * 1000) == local_wh(session, date(2026, 10, 1), date(2026, 10, 14))
    prepaid_wh = sum(c.wh for c in session.scalars(select(PrepaidCharge)))
    assert prepaid_wh + int(bill.total_kwh * 1000) == local_wh(session, date(2026, 10, 1), date(2026, 10, 31))
    assert account_balance(session, acct, "1100") == bill.total
    assert trial_balance(session).total == 0


def test_a_change_reaching_an_issued_bill_rebills_it(session):
    (acct,) = build_prepaid(session, n=1)
    sa = session.scalars(select(ServiceAgreement)).one()
    sa.payment_mode = "postpaid"
    session.flush()
    run_bills(session, "2026-10", tz=TZ, currency="INR", usage=LocalUsage)
    whole = session.scalars(select(Bill)).one()
    done = change(session, date(2026, 10, 15), "prepaid", today=date(2026, 10, 31))
    assert done.change.bills_affected == [whole.number] and done.rebill is not None
    new = session.get(Bill, done.rebill.new_bills[0])
    assert whole.status == "cancelled" and new.replaces_bill_id == whole.id
    assert int(new.total_kwh * 1000) == local_wh(session, date(2026, 10, 1), date(2026, 10, 14))
    # the replacement is owed; the settlement moved that debt into the wallet
    assert done.settled == -new.total
    assert account_balance(session, acct, "1100") == 0
    assert wallet_balance(session, session.scalars(select(Wallet)).one()) == -new.total
    assert trial_balance(session).total == 0


@pytest.mark.parametrize(
    ("day", "mode", "today", "code"),
    [
        (date(2026, 10, 21), "postpaid", date(2026, 10, 20), "contract.mode_change_in_future"),
        (date(2026, 10, 10), "postpaid", date(2026, 10, 20), "contract.mode_change_charged"),
        (date(2026, 10, 15), "prepaid", date(2026, 10, 20), "contract.unchanged"),
        (date(2026, 10, 15), "cash", date(2026, 10, 20), "contract.bad_mode"),
    ],
)
def test_refused_changes(session, day, mode, today, code):
    build_prepaid(session, n=1)
    run_daily(
        session, date(2026, 10, 12), tz=TZ, currency="INR", policy=ANYTIME, usage=LocalUsage
    )  # charges 1..12
    with pytest.raises((InvalidInput, Conflict)) as err:
        change(session, day, mode, today)
    assert err.value.code == code


def test_to_prepaid_before_the_month_is_refused(session):
    build_prepaid(session, n=1)
    sa = session.scalars(select(ServiceAgreement)).one()
    sa.payment_mode = "postpaid"
    with pytest.raises(InvalidInput) as err:
        change(session, date(2026, 9, 30), "prepaid", today=date(2026, 10, 2))
    assert err.value.code == "contract.mode_change_too_early"


def test_a_change_of_terms_is_audited_with_who_when_and_why(session):
    build_prepaid(session, n=1)
    change(session, date(2026, 10, 20), "postpaid", today=date(2026, 10, 20))
    from meter2cash.audit.models import AuditEntry

    entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "contract.change_terms")).one()
    assert (entry.actor, entry.entity, entry.entity_id) == ("test", "service_agreement", "SA-0")
    assert entry.before == {"effective_from": "2026-10-20", "payment_mode": "prepaid"}
    assert entry.after == {
        "effective_from": "2026-10-20",
        "reason": "consumer asked",
        "payment_mode": "postpaid",
    }
    assert entry.at is not None
