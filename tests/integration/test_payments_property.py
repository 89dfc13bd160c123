"""Property tests on SQLite and PostgreSQL: any sequence of charges, recharges, payments, refunds
and reversals moves every wallet and receivable as a model of the operations says and keeps the
trial balance at zero; a webhook delivered twice or out of order credits once."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from test_payments import debit, make_account

from meter2cash.cis.ledger.journal import account_balance, post, reverse, trial_balance
from meter2cash.cis.ledger.models import JournalEntry
from meter2cash.cis.payments.models import GatewayOrder, Payment
from meter2cash.cis.payments.online import handle_webhook
from meter2cash.cis.payments.receipts import receive, refund, return_cheque
from meter2cash.cis.prepaid.wallet import wallet_balances
from meter2cash.core.errors import M2CError
from meter2cash.payment_gateway.signing import sign_header

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


@dataclass
class Entry:
    """What the model expects one journal entry to do: ledger account, customer → amount."""

    kind: str
    legs: dict[tuple[str, int], Decimal]
    reversed: bool = False


@dataclass
class Books:
    """An independent model of the books: entries as the operations describe them, the cheques
    still posted, and the refusals the rules call for (a refund above the credit held, a second
    reversal, a returned cheque whose entry was already reversed)."""

    entries: list[Entry] = field(default_factory=list)
    cheques: list[tuple[Entry, int, Decimal]] = field(default_factory=list)  # entry, account, amount

    def post(self, kind: str, legs: dict[tuple[str, int], Decimal]) -> Entry:
        entry = Entry(kind, legs)
        self.entries.append(entry)
        return entry

    def balance(self, ledger: str, account: int) -> Decimal:
        return sum((e.legs.get((ledger, account), Decimal(0)) for e in self.entries), Decimal(0))

    def reverse(self, entry: Entry) -> bool:
        if entry.reversed:
            return False
        entry.reversed = True
        self.post("reversal", {k: -v for k, v in entry.legs.items()})
        return True

    def apply(self, op: str, amount: Decimal, acct: int) -> bool:
        """Book ``op``; ``False`` when the rules refuse it (nothing changes then)."""
        if op == "bill":
            self.post("bill", {("1100", acct): amount})
        elif op == "charge":
            self.post("charge", {("2100", acct): amount})
        elif op == "recharge":
            self.post("receipt", {("2100", acct): -amount})
        elif op in ("payment", "cheque"):
            entry = self.post("receipt", {("1100", acct): -amount})
            if op == "cheque":
                self.cheques.append((entry, acct, amount))
        elif op in ("refund", "wallet_refund"):
            ledger = "1100" if op == "refund" else "2100"
            if amount > -self.balance(ledger, acct):
                return False
            self.post("refund", {(ledger, acct): amount})
        elif op == "reverse":
            last = next((e for e in reversed(self.entries) if e.kind != "reversal"), None)
            return last is None or self.reverse(last)
        elif self.cheques:  # return the first cheque still posted, with a fee
            entry, owner, _ = self.cheques[0]
            if not self.reverse(entry):
                return False  # its entry was reversed already: the cheque stays posted
            self.cheques.pop(0)
            self.post("fee", {("1100", owner): amount})
        return True


@FIXTURES
@given(ops)
def test_any_sequence_keeps_the_books_balanced(session, sequence):
    """Every wallet and receivable equals what an independent model of the operations expects,
    each refusal is one the rules call for, and the trial balance stays zero."""
    accounts = [make_account(session, f"P-{uuid.uuid4().hex[:10]}") for _ in range(3)]
    first_entry = (session.scalar(select(func.max(JournalEntry.id))) or 0) + 1
    books = Books()
    for op, amount, k in sequence:
        acct = accounts[k]
        refused = False
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
                        select(func.max(JournalEntry.id)).where(
                            JournalEntry.kind != "reversal", JournalEntry.id >= first_entry
                        )
                    )
                    if last:
                        reverse(session, last, "property test")
                else:
                    chq = session.scalar(
                        select(Payment.receipt_number)
                        .where(
                            Payment.channel == "cheque",
                            Payment.status == "posted",
                            Payment.account_id.in_(accounts),
                        )
                        .order_by(Payment.id)
                        .limit(1)
                    )
                    if chq:
                        return_cheque(session, chq, fee=amount)
        except M2CError:
            refused = True  # a refusal changes nothing
        assert refused == (not books.apply(op, amount, acct)), (op, amount, k)
        assert trial_balance(session).total == 0
    wallets = wallet_balances(session, accounts)
    for acct in accounts:
        assert Decimal(wallets.get(acct, 0)).scaleb(-4) == -books.balance("2100", acct)
        assert account_balance(session, acct, "1100") == books.balance("1100", acct)


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
