"""Property tests on SQLite and PostgreSQL: any sequence of charges, recharges, payments, refunds
and reversals keeps the trial balance at zero and every wallet equal to the sum of its entries;
a webhook delivered twice or out of order credits once."""

from __future__ import annotations

import json
import uuid
from datetime import date
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from test_payments import debit, make_account

from meter2cash.cis.ledger import account_balance, post, reverse, trial_balance
from meter2cash.cis.models import JournalEntry, JournalLine
from meter2cash.cis.money_models import GatewayOrder, Payment
from meter2cash.cis.online_payments import handle_webhook
from meter2cash.cis.payments import receive, refund, return_cheque
from meter2cash.cis.prepaid_wallet import wallet_balances
from meter2cash.core.errors import M2CError
from meter2cash.integration.gateway.signing import sign_header

FIXTURES = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("5000"), places=2)
ops = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "bill",
                "charge",
                "recharge",
                "payment",
                "cheque",
                "refund",
                "wallet_refund",
                "reverse",
                "return",
            ]
        ),
        amounts,
        st.integers(0, 2),
    ),
    min_size=1,
    max_size=15,
)


@FIXTURES
@given(ops)
def test_any_sequence_keeps_the_books_balanced(session, sequence):
    accounts = [make_account(session, f"P-{uuid.uuid4().hex[:10]}") for _ in range(3)]
    for op, amount, k in sequence:
        acct = accounts[k]
        try:
            with session.begin_nested():
                if op == "bill":
                    debit(session, acct, str(amount), date(2026, 10, 1))
                elif op == "charge":
                    post(
                        session,
                        kind="prepaid.charge",
                        effective_date=date(2026, 10, 1),
                        reference="PPD",
                        memo="",
                        lines=[
                            ("2100", amount, acct),
                            ("4100", -(amount * 20 / 21).quantize(Decimal("0.0001")), None),
                            ("2200", -(amount - (amount * 20 / 21).quantize(Decimal("0.0001"))), None),
                        ],
                        currency="INR",
                    )
                elif op == "recharge":
                    receive(session, acct, amount, channel="online", currency="INR", purpose="recharge")
                elif op in ("payment", "cheque"):
                    receive(
                        session, acct, amount, channel="cash" if op == "payment" else "cheque", currency="INR"
                    )
                elif op == "refund":
                    refund(session, acct, amount, currency="INR")
                elif op == "wallet_refund":
                    refund(session, acct, amount, currency="INR", source="recharge")
                elif op == "reverse":
                    last = session.scalar(
                        select(func.max(JournalEntry.id)).where(JournalEntry.kind != "reversal")
                    )
                    if last:
                        reverse(session, last, "property test")
                else:
                    chq = session.scalar(
                        select(Payment.receipt_number).where(
                            Payment.channel == "cheque", Payment.status == "posted"
                        )
                    )
                    if chq:
                        return_cheque(session, chq, fee=amount)
        except M2CError:
            pass  # refusals (refund above credit, double reversal) change nothing
        assert trial_balance(session).total == 0
    balances = wallet_balances(session)
    for acct in accounts:
        lines = session.scalar(
            select(func.sum(JournalLine.amount)).where(
                JournalLine.account_id == acct, JournalLine.ledger_account == "2100"
            )
        ) or Decimal(0)
        assert Decimal(balances.get(acct, 0)).scaleb(-4) == -lines == -account_balance(session, acct, "2100")


SECRET = "k"


def _event(event_id: str, kind: str, order_id: str, amount: str = "99.00") -> bytes:
    data = {"order_id": order_id, "amount": amount, "currency": "INR", "paid_at": "2026-10-05T10:00:00+00:00"}
    return json.dumps({"id": event_id, "type": kind, "data": data}).encode()


@FIXTURES
@given(
    st.lists(
        st.sampled_from(["paid_a", "paid_a", "paid_b", "failed", "wrong_amount", "forged"]),
        min_size=1,
        max_size=8,
    )
)
def test_webhooks_twice_or_out_of_order_credit_once(session, deliveries):
    n = uuid.uuid4().hex[:10]
    acct = make_account(session, f"W-{n}")
    order_id = f"order_{n}"
    session.add(GatewayOrder(order_id=order_id, account_id=acct, amount=Decimal("99.00"), currency="INR"))
    session.flush()
    bodies = {
        "paid_a": _event(f"a{n}", "order.paid", order_id),
        "paid_b": _event(f"b{n}", "order.paid", order_id),
        "failed": _event(f"f{n}", "order.failed", order_id),
        "wrong_amount": _event(f"w{n}", "order.paid", order_id, "990.00"),
        "forged": _event(f"x{n}", "order.paid", order_id),
    }
    for d in deliveries:
        body = bodies[d]
        secret = "wrong" if d == "forged" else SECRET
        try:
            with session.begin_nested():
                handle_webhook(session, body, sign_header(secret, body), secret=SECRET)
        except M2CError:
            assert d == "forged"
    credited = session.scalar(select(func.count(Payment.id)).where(Payment.account_id == acct))
    assert credited == int(any(d in ("paid_a", "paid_b") for d in deliveries))
    assert account_balance(session, acct) == -Decimal("99.00") * credited
    assert trial_balance(session).total == 0
