"""Payment terms on SQLite and PostgreSQL: what a bill prints is what collections posts, and the
prompt-payment rebate is granted when the bill is paid by its date."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import select, update
from test_billing import EXAMPLES, PERIOD, TZ, build_fleet

from meter2cash.cis.billing.models import Bill
from meter2cash.cis.billing.run import run_bills
from meter2cash.cis.collections.dunning import CollectionsPolicy, run_collections
from meter2cash.cis.ledger.journal import account_balance, trial_balance
from meter2cash.cis.parties.models import ServiceAgreement
from meter2cash.cis.payments.allocation import open_items
from meter2cash.cis.payments.models import Payment
from meter2cash.cis.payments.receipts import receive
from meter2cash.core.timeutil import utcnow
from meter2cash.mdm.usage.local import LocalUsage

D = Decimal
TERMS = """
[versions.payment_terms]
prompt_days = 10
prompt_percent = "2"
late_percent = "2.5"
late_grace_days = 5
"""


def res_lt1_with_terms() -> str:
    text = (EXAMPLES / "res-lt1.toml").read_text()
    head, taxes = text.split("[[versions.taxes]]", 1)
    return head + TERMS + "\n[[versions.taxes]]" + taxes


def bill_of(session, number: str) -> Bill:
    sa = session.scalar(select(ServiceAgreement.id).where(ServiceAgreement.number == number))
    return session.scalars(select(Bill).where(Bill.service_agreement_id == sa)).one()


def pct(amount: Decimal, percent: str) -> Decimal:
    return (amount * D(percent) / 100).quantize(D("0.01"), ROUND_HALF_UP)


def test_the_bill_records_its_terms_with_dates_and_the_utility_default(session):
    build_fleet(session, tariffs={"res-lt1": res_lt1_with_terms()})
    run_bills(session, PERIOD, tz=TZ, currency="INR", usage=LocalUsage)
    b = bill_of(session, "SA-1")
    issued = max(utcnow().date(), date(2026, 10, 31))
    assert b.due_date == issued + timedelta(days=15)
    assert b.determinants["terms"] == {
        "prompt_payment_rebate": str(pct(b.total, "2")),
        "prompt_payment_percent": "2",
        "prompt_payment_days": 10,
        "prompt_payment_by": (issued + timedelta(days=10)).isoformat(),
        "late_payment_surcharge_percent": "2.5",
        "late_payment_surcharge": str(pct(b.total, "2.5")),
        "late_payment_grace_days": 5,
        "late_payment_from": (b.due_date + timedelta(days=6)).isoformat(),
    }
    # COM-TOU states no terms: the utility's default (1.5 % a month from 15 days past due).
    c = bill_of(session, "SA-3")
    assert c.determinants["terms"]["late_payment_surcharge_percent"] == "1.5"
    assert c.determinants["terms"]["late_payment_from"] == (c.due_date + timedelta(days=16)).isoformat()
    assert "prompt_payment_rebate" not in c.determinants["terms"]
    # A prepaid statement has no payment terms.
    assert "terms" not in bill_of(session, "SA-4").determinants


def test_collections_posts_the_surcharge_the_bill_printed_once_a_month(session):
    build_fleet(session, tariffs={"res-lt1": res_lt1_with_terms()})
    run_bills(session, PERIOD, tz=TZ, currency="INR", usage=LocalUsage)
    b = bill_of(session, "SA-1")
    printed = D(b.determinants["terms"]["late_payment_surcharge"])
    first = date.fromisoformat(b.determinants["terms"]["late_payment_from"])
    run = lambda on: run_collections(session, on, currency="INR", tz=TZ, policy=CollectionsPolicy())  # noqa: E731
    assert run(first - timedelta(days=1)).surcharges == 0
    run(first)
    mine = [i for i in open_items(session, [b.account_id]) if i.kind == "surcharge"]
    assert [i.amount for i in mine] == [printed]
    run(first + timedelta(days=20))
    assert len([i for i in open_items(session, [b.account_id]) if i.kind == "surcharge"]) == 1
    run(date(first.year + (first.month == 12), first.month % 12 + 1, first.day))  # a month later
    assert [i.amount for i in open_items(session, [b.account_id]) if i.kind == "surcharge"] == [printed] * 2
    assert account_balance(session, b.account_id) == b.total + 2 * printed
    assert trial_balance(session).total == 0


def test_paid_by_its_date_a_bill_earns_the_rebate_it_printed(session):
    build_fleet(session, tariffs={"res-lt1": res_lt1_with_terms()})
    run_bills(session, PERIOD, tz=TZ, currency="INR", usage=LocalUsage)
    b = bill_of(session, "SA-1")
    rebate = D(b.determinants["terms"]["prompt_payment_rebate"])
    assert rebate == pct(b.total, "2") and rebate > 0
    today = utcnow().date()
    # Pay the total less the rebate, as the bill says: the rebate settles the rest.
    receive(session, b.account_id, b.total - rebate, channel="cash", currency="INR", received_on=today)
    assert open_items(session, [b.account_id]) == []
    assert account_balance(session, b.account_id) == 0
    assert account_balance(session, b.account_id, "4900") == 0  # the 4900 leg has no customer
    docs = session.scalars(select(Payment).where(Payment.purpose == "rebate")).all()
    assert [(d.amount, d.reference, d.received_on) for d in docs] == [(rebate, b.number, today)]
    # Paying again does not grant it twice.
    receive(session, b.account_id, D("10.00"), channel="cash", currency="INR", received_on=today)
    assert len(session.scalars(select(Payment).where(Payment.purpose == "rebate")).all()) == 1
    assert account_balance(session, b.account_id) == D("-10.00")
    assert trial_balance(session).total == 0


def test_paid_after_its_date_or_short_a_bill_earns_no_rebate(session):
    build_fleet(session, tariffs={"res-lt1": res_lt1_with_terms()})
    run_bills(session, PERIOD, tz=TZ, currency="INR", usage=LocalUsage)
    b = bill_of(session, "SA-1")
    rebate = D(b.determinants["terms"]["prompt_payment_rebate"])
    today = utcnow().date()
    # Short by one paisa: no rebate.
    receive(
        session, b.account_id, b.total - rebate - D("0.01"), channel="cash", currency="INR", received_on=today
    )
    assert not session.scalars(select(Payment).where(Payment.purpose == "rebate")).all()
    # The last day of the rebate was yesterday: the rest paid today earns nothing.
    terms = {**b.determinants["terms"], "prompt_payment_by": (today - timedelta(days=1)).isoformat()}
    session.execute(
        update(Bill).where(Bill.id == b.id).values(determinants={**b.determinants, "terms": terms})
    )
    receive(session, b.account_id, rebate + D("0.01"), channel="cash", currency="INR", received_on=today)
    assert not session.scalars(select(Payment).where(Payment.purpose == "rebate")).all()
    assert account_balance(session, b.account_id) == 0
