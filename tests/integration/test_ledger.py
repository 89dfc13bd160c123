"""The ledger on SQLite and PostgreSQL: posting, refusals, reversal, trial balance, statements."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from meter2cash.cis.ledger.journal import (
    account_balance,
    ensure_chart,
    post,
    reverse,
    statement,
    trial_balance,
)
from meter2cash.cis.ledger.models import JournalEntry, JournalLine
from meter2cash.cis.parties.models import Account, Person
from meter2cash.core.errors import Conflict, InvalidInput

D = Decimal


@pytest.fixture
def account_id(session) -> int:
    ensure_chart(session)
    person = Person(name="Asha")
    session.add(person)
    session.flush()
    acct = Account(number="A-1", person_id=person.id)
    session.add(acct)
    session.flush()
    return acct.id


def bill(session, account_id, amount: str, tax: str, day: int = 31):
    total = D(amount) + D(tax)
    return post(
        session,
        kind="bill",
        effective_date=date(2026, 10, day),
        reference=f"B-{day}",
        memo="bill",
        lines=[("1100", total, account_id), ("4100", -D(amount), None), ("2200", -D(tax), None)],
        currency="INR",
    )


def test_post_reverse_and_trial_balance(session, account_id):
    entry = bill(session, account_id, "1000.10", "50.01")
    post(
        session,
        kind="payment",
        effective_date=date(2026, 11, 5),
        reference="R-1",
        memo="cash",
        lines=[("1000", D("500.00"), None), ("1100", D("-500.00"), account_id)],
        currency="INR",
    )
    session.commit()
    assert account_balance(session, account_id) == D("550.11")
    tb = trial_balance(session)
    rows = {r.code: r for r in tb.rows}
    assert tb.total == 0 and tb.total_debit == D("1550.11") == tb.total_credit
    assert (rows["1100"].debit, rows["1100"].credit, rows["1100"].balance) == (
        D("1050.11"),
        D("500"),
        D("550.11"),
    )
    assert rows["4100"].balance == D("-1000.10") and rows["4300"].balance == 0

    rev = reverse(session, entry.id, "meter read corrected")
    session.commit()
    assert rev.reverses_id == entry.id and "meter read corrected" in rev.memo
    assert account_balance(session, account_id) == D("-500.00")
    assert trial_balance(session).total == 0
    with pytest.raises(Conflict) as info:
        reverse(session, entry.id, "again")
    assert info.value.code == "ledger.already_reversed"
    lines = statement(session, account_id)
    # the reversal takes the effective date of the entry it reverses (31 Oct), before the payment
    assert [ln.amount for ln in lines] == [D("1050.11"), D("-1050.11"), D("-500.00")]
    assert lines[-1].balance == D("-500.00")


def test_unbalanced_and_unknown_accounts_are_refused(session, account_id):
    with pytest.raises(InvalidInput) as info:
        post(
            session,
            kind="bill",
            effective_date=date(2026, 10, 31),
            reference="X",
            memo="",
            lines=[("1100", D("10"), account_id), ("4100", D("-9.9999"), None)],
            currency="INR",
        )
    assert info.value.code == "ledger.unbalanced"
    with pytest.raises(InvalidInput) as info:
        post(
            session,
            kind="bill",
            effective_date=date(2026, 10, 31),
            reference="X",
            memo="",
            lines=[("1100", D("10"), account_id), ("4999", D("-10"), None)],
            currency="INR",
        )
    assert info.value.code == "ledger.unknown_account"
    session.rollback()
    assert session.scalar(select(func.count()).select_from(JournalEntry)) == 0


def test_trial_balance_sums_exactly_many_small_amounts(session, account_id):
    for day in range(1, 29):
        bill(session, account_id, "0.0001", "0.0003", day)
    session.commit()
    tb = trial_balance(session)
    assert tb.total == 0 and tb.total_debit == D("0.0112")
    assert session.scalar(select(func.count()).select_from(JournalLine)) == 84
    assert account_balance(session, account_id) == D("0.0112")
    assert account_balance(session, account_id, "2100") == 0
