"""Collections on SQLite and PostgreSQL: the dunning ladder, promises to pay, surcharge, write-off."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from test_payments import debit, make_account

from meter2cash.cis.collections.dunning import CollectionsPolicy, promise_to_pay, run_collections, write_off
from meter2cash.cis.collections.models import DunningStep
from meter2cash.cis.ledger.journal import account_balance, trial_balance
from meter2cash.cis.parties.models import Account, Premise, ServiceAgreement, ServicePoint
from meter2cash.cis.payments.allocation import open_items
from meter2cash.cis.payments.receipts import receive
from meter2cash.cis.prepaid.policy import PrepaidPolicy
from meter2cash.cis.rating.payment_terms import Terms
from meter2cash.core.errors import InvalidInput
from meter2cash.mdm.commands.models import MeterCommand
from meter2cash.notify.models import Notification

D = Decimal
TZ = "Asia/Kolkata"
NOON = datetime(2026, 11, 4, 6, 30, tzinfo=UTC)  # Wednesday 12:00 local
POLICY = CollectionsPolicy(surcharge=False)


def agreement(session, account_id: int) -> int:
    premise = Premise(code=f"P{account_id}")
    session.add(premise)
    session.flush()
    sp = ServicePoint(code=f"SP{account_id}", premise_id=premise.id)
    session.add(sp)
    session.flush()
    sa = ServiceAgreement(
        number=f"SA{account_id}",
        account_id=account_id,
        service_point_id=sp.id,
        tariff_code="RES-LT1",
        start_date=date(2025, 1, 1),
    )
    session.add(sa)
    session.flush()
    return sa.id


def run(session, on: date, policy=POLICY, at=NOON):
    return run_collections(session, on, currency="INR", tz=TZ, policy=policy, at=at)


def test_ladder_reminder_notice_disconnect_with_waits(session):
    a = make_account(session)
    agreement(session, a)
    debit(session, a, "500.00", date(2026, 10, 1))
    start = date(2026, 10, 1)
    taken = []
    for d in range(0, 45):
        r = run(session, start + timedelta(days=d))
        taken += [(d, s) for s in ("reminder", "notice", "disconnect") if r.steps[s]]
    assert taken == [(7, "reminder"), (22, "notice"), (37, "disconnect")]
    cmd = session.scalars(select(MeterCommand)).one()
    assert (cmd.kind, cmd.reason) == ("disconnect", "collections.non_payment")
    templates = [n.template for n in session.scalars(select(Notification).order_by(Notification.id))]
    assert templates == ["dunning_reminder", "dunning_notice", "dunning_disconnect"]


def test_small_debts_and_paid_debts_are_not_dunned(session):
    a = make_account(session, "A-1")
    b = make_account(session, "A-2")
    debit(session, a, "99.99", date(2026, 10, 1))
    debit(session, b, "300.00", date(2026, 10, 1))
    receive(session, b, D("250.00"), channel="cash", currency="INR")
    assert run(session, date(2026, 10, 20)).steps["reminder"] == 0


def test_promise_to_pay_holds_dunning_until_broken(session):
    a = make_account(session)
    debit(session, a, "500.00", date(2026, 10, 1))
    promise_to_pay(session, a, D("500.00"), date(2026, 10, 15), "INR")
    r = run(session, date(2026, 10, 10))
    assert r.held_by_promise == 1 and r.steps["reminder"] == 0
    r = run(session, date(2026, 10, 16))
    assert r.promises_broken == 1 and r.steps["reminder"] == 1


def test_disconnect_waits_for_an_allowed_time(session):
    a = make_account(session)
    agreement(session, a)
    debit(session, a, "500.00", date(2026, 9, 1))
    policy = CollectionsPolicy(surcharge=False, notice_after=0, disconnect_after=0, reminder_after=0)
    assert run(session, date(2026, 10, 1), policy).steps["reminder"] == 1
    assert run(session, date(2026, 10, 1), policy).steps["notice"] == 1
    evening = datetime(2026, 11, 4, 14, 0, tzinfo=UTC)  # 19:30 local
    assert run(session, date(2026, 10, 1), policy, at=evening).disconnects_deferred == 1
    assert session.scalars(select(MeterCommand)).all() == []
    sunday = datetime(2026, 11, 8, 6, 30, tzinfo=UTC)
    assert run(session, date(2026, 10, 1), policy, at=sunday).disconnects_deferred == 1
    assert run(session, date(2026, 10, 1), policy).steps["disconnect"] == 1


def test_surcharge_monthly_on_what_is_open_from_the_utility_default(session):
    """An entry without a bill record takes the utility default: 1.5 % a month of what is open
    on it, the first on the 16th day past due (2026-09-01 + 16 = 09-17), then each month.
    1.5 % of 1000.00 = 15.00; after 400.00 is paid, 1.5 % of 600.00 = 9.00."""
    a = make_account(session)
    debit(session, a, "1000.00", date(2026, 9, 1))
    policy = CollectionsPolicy(payment_terms=Terms(late_percent=D("1.5"), late_grace_days=15))
    assert run(session, date(2026, 9, 16), policy).surcharges == 0
    r = run(session, date(2026, 9, 20), policy)
    assert (r.surcharges, r.surcharge_amount) == (1, D("15.00"))
    assert run(session, date(2026, 9, 30), policy).surcharges == 0
    receive(session, a, D("400.00"), channel="cash", currency="INR", received_on=date(2026, 10, 1))
    # the payment settled the bill first (oldest due): 600.00 open on it, 15.00 on the surcharge
    r = run(session, date(2026, 10, 17), policy)
    assert (r.surcharges, r.surcharge_amount) == (1, D("9.00"))
    assert run(session, date(2026, 10, 18), policy).surcharges == 0
    assert account_balance(session, a) == D("624.00")
    assert sorted(i.kind for i in open_items(session, [a])) == ["bill", "surcharge", "surcharge"]
    assert trial_balance(session).total == 0


def test_no_surcharge_or_dunning_when_credit_covers_the_bill(session):
    """Credit left on the account (an overpayment before the bill) settles the bill: nothing is
    overdue, so nothing is surcharged or dunned."""
    a = make_account(session)
    receive(session, a, D("1200.00"), channel="cash", currency="INR", received_on=date(2026, 8, 20))
    debit(session, a, "1000.00", date(2026, 9, 1))
    r = run(session, date(2026, 10, 30), CollectionsPolicy(reminder_after=1))
    assert (r.surcharges, r.steps["reminder"]) == (0, 0)
    assert open_items(session, [a]) == []
    assert account_balance(session, a) == D("-200.00")


def test_write_off_closes_the_oldest_items(session):
    a = make_account(session)
    old = debit(session, a, "100.00", date(2026, 1, 31))
    debit(session, a, "50.00", date(2026, 2, 28))
    write_off(session, a, D("120.00"), on=date(2026, 10, 1), currency="INR", reason="uncollectable")
    assert [(i.entry_id == old, i.open) for i in open_items(session, [a])] == [(False, D("30.00"))]
    assert account_balance(session, a, "6100") == 0  # expense lines carry no customer account
    with pytest.raises(InvalidInput):
        write_off(session, a, D("31.00"), on=date(2026, 10, 1), currency="INR", reason="x")
    assert session.scalars(select(DunningStep)).all() == []
    assert trial_balance(session).total == 0
    assert session.get(Account, a) is not None


def test_quiet_policy_from_prepaid_defaults():
    assert CollectionsPolicy().window == PrepaidPolicy()
