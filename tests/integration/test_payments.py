"""Payments on SQLite and PostgreSQL: receipts, allocation, credit, refunds, cheques, agent batches."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from meter2cash.cis.ledger.journal import account_balance, ensure_chart, post, trial_balance
from meter2cash.cis.parties.models import Account, Person
from meter2cash.cis.payments.agents import load_agent_batch
from meter2cash.cis.payments.allocation import apply_credit, open_items, unapplied_credit
from meter2cash.cis.payments.models import Payment
from meter2cash.cis.payments.receipts import receive, refund, return_cheque
from meter2cash.core.errors import Conflict, InvalidInput

D = Decimal


def make_account(session, number: str = "A-1") -> int:
    ensure_chart(session)
    person = Person(name=f"Holder of {number}", phone="+919800000001", email="holder@example.org")
    session.add(person)
    session.flush()
    acct = Account(number=number, person_id=person.id)
    session.add(acct)
    session.flush()
    return acct.id


def debit(session, account_id: int, amount: str, day: date, kind: str = "bill", ref: str = "") -> int:
    return post(
        session,
        kind=kind,
        effective_date=day,
        reference=ref or f"{kind}-{day}",
        memo=kind,
        lines=[("1100", D(amount), account_id), ("4100", -D(amount), None)],
        currency="INR",
    ).id


def test_partial_payment_settles_oldest_first_and_overpayment_is_credit(session):
    a = make_account(session)
    old = debit(session, a, "300.00", date(2026, 8, 31))
    new = debit(session, a, "200.00", date(2026, 9, 30))
    p1 = receive(session, a, D("350.00"), channel="cash", currency="INR", received_on=date(2026, 10, 5))
    items = {i.entry_id: i.open for i in open_items(session, [a])}
    assert old not in items and items[new] == D("150.00")
    assert p1.receipt_number == "R-20261005-000001"
    receive(session, a, D("200.00"), channel="cash", currency="INR", received_on=date(2026, 10, 5))
    assert open_items(session, [a]) == []
    assert account_balance(session, a) == D("-50.00")  # credit on the account
    assert unapplied_credit(session, [a]) == {a: D("50.00")}
    # a later bill takes the credit
    third = debit(session, a, "80.00", date(2026, 10, 31))
    assert apply_credit(session, [a]) == 1
    assert {i.entry_id: i.open for i in open_items(session, [a])} == {third: D("30.00")}
    assert trial_balance(session).total == 0


def test_allocation_to_named_bill_and_newest_first(session):
    a = make_account(session)
    old = debit(session, a, "100.00", date(2026, 8, 31))
    new = debit(session, a, "100.00", date(2026, 9, 30))
    receive(session, a, D("60.00"), channel="cash", currency="INR", policy="newest_first")
    assert {i.entry_id: i.open for i in open_items(session, [a])} == {old: D("100.00"), new: D("40.00")}
    with pytest.raises(InvalidInput) as exc:
        receive(session, a, D("1.00"), channel="cash", currency="INR", policy="random")
    assert exc.value.code == "payment.bad_policy"


def test_refund_of_credit_and_limits(session):
    a = make_account(session)
    receive(session, a, D("100.00"), channel="cash", currency="INR")
    with pytest.raises(InvalidInput) as exc:
        refund(session, a, D("100.01"), currency="INR")
    assert exc.value.code == "payment.refund_exceeds_credit"
    refund(session, a, D("40.00"), currency="INR")
    assert account_balance(session, a) == D("-60.00")
    assert account_balance(session, None or a, "1100") == D("-60.00")
    assert trial_balance(session).total == 0


def test_deposit_is_held_apart_from_receivables(session):
    a = make_account(session)
    receive(session, a, D("500.00"), channel="cash", currency="INR", purpose="deposit")
    assert account_balance(session, a, "2300") == D("-500.00")
    assert account_balance(session, a, "1100") == 0
    refund(session, a, D("500.00"), currency="INR", source="deposit")
    assert account_balance(session, a, "2300") == 0


def test_returned_cheque_reopens_the_bill_and_charges_a_fee(session):
    a = make_account(session)
    bill = debit(session, a, "250.00", date(2026, 9, 30))
    pay = receive(session, a, D("250.00"), channel="cheque", currency="INR", reference="CHQ 001122")
    assert open_items(session, [a]) == []
    return_cheque(session, pay.receipt_number, fee=D("150.00"), on=date(2026, 10, 10))
    items = {i.entry_id: (i.kind, i.open) for i in open_items(session, [a])}
    assert items[bill] == ("bill", D("250.00"))
    assert sorted(k for k, _ in items.values()) == ["bill", "fee"]
    assert account_balance(session, a) == D("400.00")
    with pytest.raises(Conflict):
        return_cheque(session, pay.receipt_number, fee=D("0"))
    assert trial_balance(session).total == 0


def test_refused_amounts(session):
    a = make_account(session)
    for bad in (D("0"), D("-5"), D("1.234")):
        with pytest.raises(InvalidInput) as exc:
            receive(session, a, bad, channel="cash", currency="INR")
        assert exc.value.code == "payment.bad_amount"


BATCH = """agent,transaction_id,account,amount,paid_on
POST-PUNE,TX1,A-1,100.00,2026-10-03
POST-PUNE,TX2,A-404,10.00,2026-10-03
POST-PUNE,TX3,A-1,ten,2026-10-03
POST-PUNE,TX4,A-1,20.00,03/10/2026
POST-PUNE,TX5,A-1,20.005,2026-10-03
KIOSK-7,TX1,A-1,50.00,2026-10-04
"""


def test_agent_batch_keeps_good_lines_and_reports_bad_ones_by_line(session):
    a = make_account(session)
    result = load_agent_batch(session, BATCH, currency="INR", source="batch.csv")
    assert len(result.receipts) == 2 and result.total == D("150.00")
    assert [(p.line, p.field, p.code) for p in result.problems] == [
        (3, "account", "payment.unknown_account"),
        (4, "amount", "payment.bad_amount"),
        (5, "paid_on", "payment.bad_date"),
        (6, "amount", "payment.bad_amount"),
    ]
    again = load_agent_batch(session, BATCH, currency="INR")
    assert again.receipts == []
    assert sum(p.code == "payment.duplicate" for p in again.problems) == 2
    assert session.scalar(select(func.count(Payment.id))) == 2
    assert account_balance(session, a) == D("-150.00")


def test_agent_batch_without_required_columns(session):
    make_account(session)
    result = load_agent_batch(session, "account,amount\nA-1,5\n", currency="INR")
    assert [p.code for p in result.problems] == ["batch.bad_header"]


def test_trial_balance_after_commit(session):
    a = make_account(session)
    receive(session, a, D("10.00"), channel="cash", currency="INR")
    session.commit()
    assert session.scalar(select(func.count(Account.id))) == 1
    assert trial_balance(session).total == 0
