"""Receivables reports: ageing buckets, collections by channel, revenue by tariff, statements."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from test_payments import debit, make_account

from meter2cash.cis.ledger.journal import account_balance
from meter2cash.cis.payments.receipts import receive, return_cheque
from meter2cash.cis.reports.receivables import (
    ageing,
    bucket_of,
    collections_by_channel,
    customer_statement,
    revenue_by_tariff,
)

D = Decimal


def test_bucket_edges():
    assert [bucket_of(d) for d in (-5, 0, 30, 31, 60, 61, 90, 91, 400)] == [
        "0-30",
        "0-30",
        "0-30",
        "31-60",
        "31-60",
        "61-90",
        "61-90",
        "90+",
        "90+",
    ]


def test_ageing_buckets_follow_due_dates_and_credit(session):
    a = make_account(session, "A-1")
    b = make_account(session, "A-2")
    debit(session, a, "100.00", date(2026, 6, 30))  # 123 days before 31 Oct
    debit(session, a, "200.00", date(2026, 8, 31))  # 61 days
    debit(session, a, "300.00", date(2026, 10, 15))  # 16 days
    receive(session, a, D("150.00"), channel="cash", currency="INR", received_on=date(2026, 10, 20))
    receive(session, b, D("25.00"), channel="cash", currency="INR", received_on=date(2026, 10, 20))
    rep = ageing(session, date(2026, 10, 31))
    rows = {r.account: r for r in rep.rows}
    assert rows["A-1"].buckets == {
        "0-30": D("300.00"),
        "31-60": D("0.00"),
        "61-90": D("150.00"),
        "90+": D("0.00"),
    }
    assert rows["A-1"].total == account_balance(session, a)
    assert rows["A-2"].credit == D("25.00") and rows["A-2"].total == D("-25.00")
    assert rep.totals()["61-90"] == D("150.00")


def test_collections_by_channel_leave_out_returned_cheques(session):
    a = make_account(session)
    debit(session, a, "500.00", date(2026, 9, 30))
    receive(session, a, D("100.00"), channel="cash", currency="INR", received_on=date(2026, 10, 2))
    receive(session, a, D("50.00"), channel="cash", currency="INR", received_on=date(2026, 10, 3))
    chq = receive(session, a, D("70.00"), channel="cheque", currency="INR", received_on=date(2026, 10, 3))
    receive(session, a, D("30.00"), channel="agent", currency="INR", received_on=date(2026, 10, 4))
    receive(session, a, D("9.00"), channel="cash", currency="INR", received_on=date(2026, 11, 1))
    return_cheque(session, chq.receipt_number, fee=D("0"))
    rows = collections_by_channel(session, date(2026, 10, 1), date(2026, 10, 31))
    assert rows == [
        {"channel": "agent", "purpose": "payment", "count": 1, "amount": "30.0000"},
        {"channel": "cash", "purpose": "payment", "count": 2, "amount": "150.0000"},
    ]


def test_revenue_by_tariff_and_statement(session):
    a = make_account(session)
    debit(session, a, "120.00", date(2026, 10, 31))
    receive(session, a, D("20.00"), channel="cash", currency="INR", received_on=date(2026, 10, 31))
    rev = revenue_by_tariff(session, date(2026, 10, 1), date(2026, 10, 31))
    assert rev == [{"tariff": "-", "ledger_account": "4100", "name": "Energy revenue", "amount": "120.0000"}]
    st = customer_statement(session, a)
    assert st["receivable"] == "100.0000"
    assert [ln["kind"] for ln in st["lines"]] == ["bill", "payment.cash"]
