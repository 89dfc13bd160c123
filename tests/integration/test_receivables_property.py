"""Property, on SQLite and PostgreSQL: whatever sequence of bill runs, payments, cancel/rebill,
payment-mode changes and collections runs, each account's ageing equals its receivable balance
in the ledger, and collections never surcharge or dun an account that owes nothing.

The ledger side is read straight from journal lines (:func:`account_balance`); ageing is built
from open items and allocations. "Owes nothing" is judged from the ledger alone: a receivable
balance of zero or less (credit) before the collections run.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from test_billing import PERIOD, TZ, build_fleet

from conftest import _clean
from meter2cash.cis.billing.rebill import rebill_stale
from meter2cash.cis.billing.run import run_bills
from meter2cash.cis.collections.dunning import CollectionsPolicy, run_collections
from meter2cash.cis.collections.models import DunningStep
from meter2cash.cis.contracts.payment_mode import change_payment_mode
from meter2cash.cis.ledger.journal import account_balance, trial_balance
from meter2cash.cis.parties.models import Account, ServiceAgreement
from meter2cash.cis.payments.receipts import receive
from meter2cash.cis.reports.receivables import ageing
from meter2cash.core.errors import M2CError
from meter2cash.core.timeutil import utcnow
from meter2cash.mdm.store import MeasurementStore
from meter2cash.mdm.usage.local import LocalUsage

D = Decimal
AGREEMENTS = ("SA-1", "SA-2", "SA-3", "SA-4")
POLICY = CollectionsPolicy(reminder_after=1, notice_after=1, disconnect_after=1, min_debt=D("1"))

bills = st.tuples(st.just("bill"), st.sampled_from(["2026-09", PERIOD]))
pays = st.tuples(st.just("pay"), st.sampled_from(AGREEMENTS), st.integers(1, 400_000))
rebills = st.tuples(st.just("rebill"), st.sampled_from(AGREEMENTS[:3]), st.integers(1, 31))
modes = st.tuples(st.just("mode"), st.sampled_from(AGREEMENTS), st.integers(1, 31))
collects = st.tuples(st.just("collect"), st.integers(0, 90))
operations = st.lists(st.one_of(bills, pays, rebills, modes, collects), min_size=3, max_size=9)


def check_books(session, accounts: dict[str, int], on: date) -> None:
    rows = {r.account_id: r for r in ageing(session, on).rows}
    for acct in accounts.values():
        ledger = account_balance(session, acct)
        row = rows.get(acct)
        assert (row.total if row else D(0)) == ledger, f"account {acct}: ageing {row} ledger {ledger}"
    assert trial_balance(session).total == 0


@settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations)
def test_ageing_follows_the_ledger_and_collections_spare_who_owes_nothing(platform, ops):
    _clean(platform.engine)
    today = utcnow().date()
    with platform.sessions() as s:
        channels = build_fleet(s)
        accounts = {
            number: acct
            for number, acct in s.execute(
                select(ServiceAgreement.number, ServiceAgreement.account_id).where(
                    ServiceAgreement.number.in_(AGREEMENTS)
                )
            )
        }
        rng = np.random.default_rng(11)
        for op in ops:
            kind = op[0]
            if kind == "bill":
                run_bills(s, op[1], tz=TZ, currency="INR", usage=LocalUsage)
            elif kind == "pay":
                amount = D(op[2]).scaleb(-2)
                receive(s, accounts[op[1]], amount, channel="cash", currency="INR", received_on=today)
            elif kind == "rebill":
                day = date(2026, 10, op[2])
                values = (np.arange(96), rng.integers(0, 800, 96) / 1000)
                MeasurementStore(s).merge({(channels[op[1]], day): values}, {channels[op[1]]: 900})
                rebill_stale(s, tz=TZ, currency="INR", usage=LocalUsage)
            elif kind == "mode":
                sa = s.scalar(select(ServiceAgreement).where(ServiceAgreement.number == op[1]))
                to = "prepaid" if sa.payment_mode == "postpaid" else "postpaid"
                try:
                    with s.begin_nested():
                        change_payment_mode(
                            s, sa, date(2026, 10, op[2]), to, reason="property", by="test",
                            today=date(2026, 10, 31), tz=TZ, currency="INR", usage=LocalUsage,
                        )  # fmt: skip
                except M2CError:
                    pass  # a change the rules refuse leaves the books as they were
            else:
                on = today + timedelta(days=op[1])
                owes_nothing = {a for a in accounts.values() if account_balance(s, a) <= 0}
                before = s.scalar(select(func.max(DunningStep.id))) or 0
                run_collections(s, on, currency="INR", tz=TZ, policy=POLICY)
                acted = set(s.scalars(select(DunningStep.account_id).where(DunningStep.id > before)))
                assert not acted & owes_nothing, (
                    f"dunned or surcharged with nothing owed: {acted & owes_nothing}"
                )
            check_books(s, accounts, today + timedelta(days=120))
        s.rollback()


@pytest.mark.parametrize("paid_first", [True, False])
def test_credit_before_the_bill_settles_it_at_once(session, paid_first):
    """An overpayment before a bill run is applied to the new bill: nothing is open."""
    build_fleet(session)
    acct = session.scalar(select(Account.id).where(Account.number == "A-0"))
    if paid_first:
        receive(session, acct, D("5000.00"), channel="cash", currency="INR")
    run_bills(session, PERIOD, tz=TZ, currency="INR", usage=LocalUsage)
    rows = {r.account_id: r for r in ageing(session, date(2027, 6, 1)).rows}
    if paid_first:
        assert all(v == 0 for v in rows[acct].buckets.values())
        assert rows[acct].total == account_balance(session, acct) < 0
    else:
        assert rows[acct].buckets["90+"] == account_balance(session, acct) > 0
