"""Payments: receipts at an office, from agents and gateways; refunds, deposits, returned cheques.

Every function posts one balanced journal entry and records the document behind it (a numbered
:class:`Payment`). A payment credits 1100 Accounts receivable and is allocated to open items
(:mod:`meter2cash.cis.payments.allocation`); what is left is credit on the account. All functions take a
Session and flush; none commits (the caller owns the transaction).

Entries (account = the customer account as sub-ledger):

=============== ===================================== =========================
document        debit                                 credit
=============== ===================================== =========================
payment         1000 Cash and bank                    1100 Receivable (account)
recharge        1000 Cash and bank                    2100 Wallet (account)
deposit         1000 Cash and bank                    2300 Deposits (account)
refund          1100 / 2100 / 2300 (account)          1000 Cash and bank
returned cheque reversal of the payment, then a fee:  1100 Dr, 4500 Cr
=============== ===================================== =========================
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from meter2cash.cis.billing.models import Bill
from meter2cash.cis.ledger.journal import (
    CASH,
    DEPOSITS,
    DISCOUNTS,
    FEES,
    RECEIVABLE,
    WALLET,
    account_balance,
    ensure_chart,
    post,
    reverse,
)
from meter2cash.cis.parties.models import Account
from meter2cash.cis.payments.allocation import allocate, open_items
from meter2cash.cis.payments.models import PAYMENT_CHANNELS, Payment, PaymentAllocation
from meter2cash.cis.rating import payment_terms
from meter2cash.core.errors import Conflict, InvalidInput, NotFound
from meter2cash.core.money import parse_money
from meter2cash.core.timeutil import check_date, utcnow
from meter2cash.events.outbox import emit

#: Ledger account credited by a receipt of each purpose.
PURPOSE_ACCOUNT = {"payment": RECEIVABLE, "recharge": WALLET, "deposit": DEPOSITS}


def check_amount(amount: Decimal, currency: str, *, allow_zero: bool = False) -> Decimal:
    """A positive amount with at most 12 digits before the point and no more places than the
    currency's minor unit (``payment.bad_amount``; see :func:`meter2cash.core.money.parse_money`)."""
    return parse_money(amount, currency, allow_zero=allow_zero, code="payment.bad_amount")


def check_day(day: date, field: str = "received_on") -> date:
    """A date of a money document: in the platform's window of dates and not after tomorrow
    (``payment.bad_date``; a day's margin for time zones)."""
    check_date(day, field, code="payment.bad_date")
    if day > utcnow().date() + timedelta(days=1):
        raise InvalidInput(
            f"{field} {day.isoformat()} is in the future",
            code="payment.bad_date",
            field=field,
            value=day.isoformat(),
        )
    return day


def account_by_number(session: Session, number: str) -> Account:
    account = session.scalar(select(Account).where(Account.number == number))
    if account is None:
        raise NotFound(f"no account {number!r}", code="account.not_found", key=number)
    return account


def next_receipt_number(session: Session, on: date) -> str:
    """``R-YYYYMMDD-000001``: receipts are numbered per day without gaps in one transaction."""
    prefix = f"R-{on:%Y%m%d}-"
    last = session.scalar(
        select(func.max(Payment.receipt_number)).where(
            Payment.received_on == on,
            Payment.receipt_number.like(prefix + "%"),  # the date's index
        )
    )
    return f"{prefix}{(int(last.rsplit('-', 1)[1]) if last else 0) + 1:06d}"


def receive(
    session: Session,
    account_id: int,
    amount: Decimal,
    *,
    channel: str,
    currency: str,
    purpose: str = "payment",
    received_on: date | None = None,
    reference: str = "",
    external_id: str | None = None,
    office: str = "",
    policy: str = "oldest_first",
    bills: list[str] | None = None,
) -> Payment:
    """Record money received: a numbered receipt, its entry, and (for ``payment``) its allocation.

    ``purpose``: ``payment`` (receivables; partial payments settle items in ``policy`` order,
    ``bills`` first; an overpayment stays as credit), ``recharge`` (the prepaid wallet; use
    :func:`meter2cash.cis.prepaid.wallet.recharge_account` to also reset alerts and reconnect) or
    ``deposit``. ``external_id`` makes the receipt idempotent (``payment.duplicate``).
    """
    if channel not in PAYMENT_CHANNELS:
        raise InvalidInput(f"unknown payment channel {channel!r}", code="payment.bad_channel")
    if purpose not in PURPOSE_ACCOUNT:
        raise InvalidInput(f"unknown payment purpose {purpose!r}", code="payment.bad_purpose")
    check_amount(amount, currency)
    on = check_day(received_on or utcnow().date())
    if external_id is not None:
        seen = session.scalar(select(Payment.receipt_number).where(Payment.external_id == external_id))
        if seen is not None:
            raise Conflict(
                f"payment {external_id!r} is already recorded as {seen}",
                code="payment.duplicate",
                receipt=seen,
            )
    ensure_chart(session)
    number = next_receipt_number(session, on)
    entry = post(
        session,
        kind=f"{purpose}.{channel}",
        effective_date=on,
        reference=number,
        memo=f"{purpose} by {channel} {reference}".strip(),
        lines=[(CASH, amount, None), (PURPOSE_ACCOUNT[purpose], -amount, account_id)],
        currency=currency,
    )
    payment = Payment(
        receipt_number=number,
        account_id=account_id,
        channel=channel,
        purpose=purpose,
        amount=amount,
        currency=currency,
        received_on=on,
        reference=reference,
        external_id=external_id,
        journal_entry_id=entry.id,
        office=office,
    )
    session.add(payment)
    session.flush()
    if purpose == "payment":
        first = _bill_entries(session, account_id, bills or [])
        allocate(session, payment.id, account_id, amount, policy=policy, first=first)
        earn_rebates(session, account_id, on)
    emit(
        session,
        "payment.received",
        {
            "receipt": number,
            "account_id": account_id,
            "amount": str(amount),
            "currency": currency,
            "channel": channel,
            "purpose": purpose,
        },
        key=number,
    )
    return payment


def _bill_entries(session: Session, account_id: int, numbers: list[str]) -> list[int]:
    if not numbers:
        return []
    found = dict(
        session.execute(
            select(Bill.number, Bill.journal_entry_id).where(
                Bill.number.in_(numbers), Bill.account_id == account_id
            )
        ).all()
    )
    missing = [n for n in numbers if not found.get(n)]
    if missing:
        raise NotFound(f"no open bill {missing[0]!r} on this account", code="bill.not_found", key=missing[0])
    return [int(found[n] or 0) for n in numbers]


def refund(
    session: Session,
    account_id: int,
    amount: Decimal,
    *,
    currency: str,
    source: str = "payment",
    on: date | None = None,
    reference: str = "",
) -> Payment:
    """Pay back credit: an overpayment (``payment``), a wallet balance (``recharge``) or a deposit.

    Refuses more than the credit held (``payment.refund_exceeds_credit``).
    """
    check_amount(amount, currency)
    ledger = PURPOSE_ACCOUNT.get(source)
    if ledger is None:
        raise InvalidInput(f"cannot refund {source!r}", code="payment.bad_purpose")
    held = -account_balance(session, account_id, ledger)
    if amount > held:
        raise InvalidInput(
            f"refund {amount} exceeds the credit of {held} held on {ledger}",
            code="payment.refund_exceeds_credit",
            credit=str(held),
        )
    day = check_day(on or utcnow().date(), "on")
    number = next_receipt_number(session, day)
    entry = post(
        session,
        kind=f"refund.{source}",
        effective_date=day,
        reference=number,
        memo=f"refund of {source} credit {reference}".strip(),
        lines=[(ledger, amount, account_id), (CASH, -amount, None)],
        currency=currency,
    )
    payment = Payment(
        receipt_number=number,
        account_id=account_id,
        channel="cash",
        purpose="refund",
        amount=-amount,
        currency=currency,
        received_on=day,
        reference=reference,
        journal_entry_id=entry.id,
    )
    session.add(payment)
    session.flush()
    if source == "payment":
        session.add(PaymentAllocation(payment_id=payment.id, account_id=account_id, amount=-amount))
        session.flush()
    return payment


def return_cheque(
    session: Session, receipt_number: str, *, fee: Decimal, on: date | None = None, reason: str = ""
) -> Payment:
    """A cheque came back unpaid: reverse its entry and allocations, charge ``fee`` (an open item).

    Only ``cheque`` receipts still ``posted`` can be returned (``payment.not_returnable``).
    """
    payment = session.scalar(select(Payment).where(Payment.receipt_number == receipt_number))
    if payment is None:
        raise NotFound(f"no receipt {receipt_number!r}", code="payment.not_found", key=receipt_number)
    if payment.channel != "cheque" or payment.status != "posted" or payment.journal_entry_id is None:
        raise Conflict(
            f"receipt {receipt_number} is a {payment.channel} receipt in status {payment.status}",
            code="payment.not_returnable",
        )
    day = check_day(on or utcnow().date(), "on")
    reverse(session, payment.journal_entry_id, f"cheque returned {reason}".strip(), effective_date=day)
    allocated = session.execute(
        select(PaymentAllocation.item_entry_id, PaymentAllocation.bill_id, func.sum(PaymentAllocation.amount))
        .where(PaymentAllocation.payment_id == payment.id)
        .group_by(PaymentAllocation.item_entry_id, PaymentAllocation.bill_id)
    ).all()
    session.add_all(
        PaymentAllocation(
            payment_id=payment.id, item_entry_id=eid, bill_id=bid, account_id=payment.account_id, amount=-amt
        )
        for eid, bid, amt in allocated
        if amt
    )
    session.execute(update(Payment).where(Payment.id == payment.id).values(status="returned"))
    if fee:
        check_amount(fee, payment.currency)
        post(
            session,
            kind="fee",
            effective_date=day,
            reference=receipt_number,
            memo=f"returned cheque fee {payment.reference}".strip(),
            lines=[(RECEIVABLE, fee, payment.account_id), (FEES, -fee, None)],
            currency=payment.currency,
        )
    session.flush()
    return payment


def credit_receivable(
    session: Session,
    account_id: int,
    amount: Decimal,
    *,
    purpose: str,
    on: date,
    currency: str,
    debit: tuple[str, int | None],
    memo: str,
    reference: str,
    entry_reference: str | None = None,
    external_id: str | None = None,
    first: list[int] | None = None,
) -> Payment:
    """A credit to the account's receivable that is not money received (a write-off, a rebate, a
    balance moved in): one entry Dr ``debit`` (ledger account, sub-ledger account), Cr 1100, and a
    numbered ``adjustment`` document of ``purpose`` allocated like a payment (``first`` items
    first, the rest credit). The entry's reference is the receipt number unless given."""
    number = next_receipt_number(session, on)
    entry = post(
        session,
        kind=purpose,
        effective_date=on,
        reference=entry_reference or number,
        memo=memo,
        lines=[(debit[0], amount, debit[1]), (RECEIVABLE, -amount, account_id)],
        currency=currency,
    )
    doc = Payment(
        receipt_number=number,
        account_id=account_id,
        channel="adjustment",
        purpose=purpose,
        amount=amount,
        currency=currency,
        received_on=on,
        reference=reference[:100],
        external_id=external_id,
        journal_entry_id=entry.id,
    )
    session.add(doc)
    session.flush()
    allocate(session, doc.id, account_id, amount, first=first)
    return doc


#: How long after its issue a bill may still earn its prompt-payment rebate at most [days]
#: (tariffs allow ``prompt_days`` up to 60).
REBATE_WINDOW_DAYS = 61


def earn_rebates(session: Session, account_id: int, on: date) -> list[Payment]:
    """Grant the prompt-payment rebate of every bill of the account that has now earned it:
    payments applied to it by ``on`` reach its total less the rebate recorded on it, ``on`` is
    not after the rebate's last day (:func:`meter2cash.cis.rating.payment_terms.rebate_earned`), and
    it was not granted before. Each rebate is an entry Dr 4900, Cr 1100 (the account) and a
    numbered ``rebate`` document allocated to the bill (what the bill no longer needs stays as
    credit). Returns the rebate documents."""
    since = datetime.combine(on - timedelta(days=REBATE_WINDOW_DAYS), time(), tzinfo=UTC)
    bills = session.execute(
        select(
            Bill.id, Bill.number, Bill.journal_entry_id, Bill.total, Bill.currency, Bill.determinants
        ).where(
            Bill.account_id == account_id,
            Bill.status == "issued",
            Bill.journal_entry_id.is_not(None),
            Bill.issued_at >= since,
        )
    ).all()
    offered = {
        b.id: b for b in bills if ((b.determinants or {}).get("terms") or {}).get("prompt_payment_rebate")
    }
    if not offered:
        return []
    granted = set(
        session.scalars(
            select(Payment.external_id).where(
                Payment.external_id.in_([f"rebate:{b.number}" for b in offered.values()])
            )
        )
    )
    items = {i.bill_id: i for i in open_items(session, [account_id], include_closed=True)}
    out = []
    for bill_id, b in offered.items():
        item = items.get(bill_id)
        if item is None or f"rebate:{b.number}" in granted:
            continue
        rebate = payment_terms.rebate_earned(b.determinants["terms"], b.total, item.amount - item.open, on)
        if rebate <= 0:
            continue
        doc = credit_receivable(
            session, account_id, rebate, purpose="rebate", on=on, currency=b.currency,
            debit=(DISCOUNTS, None), memo=f"prompt-payment rebate on bill {b.number}", reference=b.number,
            external_id=f"rebate:{b.number}", first=[item.entry_id],
        )  # fmt: skip
        out.append(doc)
    return out


def account_summary(session: Session, account_id: int) -> dict[str, object]:
    """Receivable balance (positive: owed; negative: credit), deposit and wallet held, open items."""
    items = open_items(session, [account_id])
    return {
        "receivable": account_balance(session, account_id, RECEIVABLE),
        "deposit_held": -account_balance(session, account_id, DEPOSITS),
        "wallet": -account_balance(session, account_id, WALLET),
        "open_items": len(items),
        "oldest_due": min((i.due_on for i in items), default=None),
    }
