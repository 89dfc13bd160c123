"""Open items and payment allocation: the one account of which debt is open.

An open item is a receivable debit: a journal line on 1100 of an entry whose kind is in
:data:`ITEM_KINDS` (a bill, a late-payment surcharge, a fee, a balance carried over). Its open
amount is the debit minus what :class:`PaymentAllocation` rows applied to it, and nothing once
its entry is reversed (a cancelled bill: :func:`cancel_item`). Every other receivable line is
explained by allocations: a payment, a write-off, a rebate or a balance moved in credits 1100
and is allocated to items or left as unapplied credit; a refund of credit, a returned cheque
debit it back. So for every account

    receivable balance (ledger 1100) = Σ open items − unapplied credit

and ageing, collections and statements, which read open items and credit, agree with the ledger.
Functions take a Session and flush; none commits (the caller owns the transaction).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, aliased

from meter2cash.cis.billing.models import Bill
from meter2cash.cis.ledger.journal import RECEIVABLE, reverse
from meter2cash.cis.ledger.models import JournalEntry, JournalLine
from meter2cash.cis.payments.models import PaymentAllocation
from meter2cash.core.errors import InvalidInput

#: Entry kinds whose receivable debit is an item a payment can settle.
ITEM_KINDS = ("bill", "surcharge", "fee", "migration", "opening")
#: Allocation policies: which open items a payment settles first.
POLICIES = ("oldest_first", "newest_first", "largest_first")
ZERO = Decimal("0.0000")


@dataclass(slots=True)
class OpenItem:
    """A receivable debit with what is still open on it [currency]."""

    entry_id: int
    account_id: int
    kind: str
    reference: str
    posted_on: date
    due_on: date
    bill_id: int | None
    amount: Decimal
    open: Decimal


def open_items(
    session: Session, account_ids: list[int] | None = None, *, include_closed: bool = False
) -> list[OpenItem]:
    """Open items of the given accounts (all accounts when None), oldest due date first. An
    item whose entry was reversed is closed (``include_closed`` lists it with ``open`` 0)."""
    reversal = aliased(JournalEntry)
    debit = (
        select(
            JournalLine.entry_id,
            JournalLine.account_id,
            JournalEntry.kind,
            JournalEntry.reference,
            JournalEntry.effective_date,
            Bill.due_date,
            Bill.id,
            JournalLine.amount,
            reversal.id,
        )
        .join(JournalEntry, JournalEntry.id == JournalLine.entry_id)
        .outerjoin(Bill, Bill.journal_entry_id == JournalEntry.id)
        .outerjoin(reversal, reversal.reverses_id == JournalEntry.id)
        .where(
            JournalLine.ledger_account == RECEIVABLE,
            JournalLine.amount > 0,
            JournalEntry.kind.in_(ITEM_KINDS),
        )
    )
    applied = select(PaymentAllocation.item_entry_id, func.sum(PaymentAllocation.amount)).where(
        PaymentAllocation.item_entry_id.is_not(None)
    )
    if account_ids is not None:
        debit = debit.where(JournalLine.account_id.in_(account_ids))
        applied = applied.where(PaymentAllocation.account_id.in_(account_ids))
    paid = {
        eid: Decimal(raw or 0)
        for eid, raw in session.execute(applied.group_by(PaymentAllocation.item_entry_id))
    }
    items = []
    for eid, acct, kind, ref, eff, due, bill_id, amount, reversed_by in session.execute(debit):
        left = ZERO if reversed_by is not None else amount - paid.get(eid, ZERO)
        if left > 0 or include_closed:
            items.append(OpenItem(eid, acct or 0, kind, ref, eff, due or eff, bill_id, amount, left))
    items.sort(key=lambda i: (i.account_id, i.due_on, i.entry_id))
    return items


def unapplied_credit(session: Session, account_ids: list[int] | None = None) -> dict[int, Decimal]:
    """Credit received but not applied to any item, per account [currency]."""
    stmt = select(PaymentAllocation.account_id, func.sum(PaymentAllocation.amount)).where(
        PaymentAllocation.item_entry_id.is_(None)
    )
    if account_ids is not None:
        stmt = stmt.where(PaymentAllocation.account_id.in_(account_ids))
    return {a: Decimal(v) for a, v in session.execute(stmt.group_by(PaymentAllocation.account_id)) if v}


def order_items(items: list[OpenItem], policy: str, first: list[int] | None = None) -> list[OpenItem]:
    """Items in the order a payment settles them; ``first`` (entry ids) go before the policy."""
    if policy not in POLICIES:
        raise InvalidInput(f"unknown allocation policy {policy!r}", code="payment.bad_policy", policy=policy)
    if policy == "oldest_first":
        ordered = sorted(items, key=lambda i: (i.due_on, i.entry_id))
    elif policy == "newest_first":
        ordered = sorted(items, key=lambda i: (i.due_on, i.entry_id), reverse=True)
    else:
        ordered = sorted(items, key=lambda i: (-i.open, i.due_on, i.entry_id))
    if first:
        rank = {e: k for k, e in enumerate(first)}
        ordered.sort(key=lambda i: rank.get(i.entry_id, len(rank)))
    return ordered


def split(amount: Decimal, items: list[OpenItem]) -> list[tuple[OpenItem | None, Decimal]]:
    """Share ``amount`` over ``items`` in order (pure); the rest is ``(None, rest)``, unapplied."""
    out: list[tuple[OpenItem | None, Decimal]] = []
    left = amount
    for item in items:
        if left <= 0:
            break
        part = min(left, item.open)
        if part > 0:
            out.append((item, part))
            left -= part
    if left > 0:
        out.append((None, left))
    return out


def allocate(
    session: Session,
    payment_id: int,
    account_id: int,
    amount: Decimal,
    *,
    policy: str = "oldest_first",
    first: list[int] | None = None,
) -> list[tuple[OpenItem | None, Decimal]]:
    """Apply ``amount`` of a payment to the account's open items; the rest stays as credit."""
    items = order_items(open_items(session, [account_id]), policy, first)
    parts = split(amount, items)
    session.execute(
        insert(PaymentAllocation),
        [
            {
                "payment_id": payment_id,
                "item_entry_id": item.entry_id if item else None,
                "bill_id": item.bill_id if item else None,
                "account_id": account_id,
                "amount": part,
            }
            for item, part in parts
        ],
    )
    return parts


def cancel_item(
    session: Session, entry_id: int, reason: str, *, effective_date: date | None = None
) -> dict[int, Decimal]:
    """Cancel an open item: reverse its journal entry (which closes the item) and release what
    payments had applied to it as unapplied credit of those payments (a negative allocation on
    the item, a positive unapplied one, per payment). Returns ``{payment id: amount released}``;
    :func:`apply_credit` then settles other items with it (a rebill's replacement first)."""
    reverse(session, entry_id, reason, effective_date=effective_date)
    applied = session.execute(
        select(PaymentAllocation.payment_id, PaymentAllocation.account_id, func.sum(PaymentAllocation.amount))
        .where(PaymentAllocation.item_entry_id == entry_id)
        .group_by(PaymentAllocation.payment_id, PaymentAllocation.account_id)
        .order_by(PaymentAllocation.payment_id)
    ).all()
    rows = []
    released: dict[int, Decimal] = {}
    bill_id = session.scalar(select(Bill.id).where(Bill.journal_entry_id == entry_id))
    for pid, acct, amount in applied:
        if not amount:
            continue
        released[pid] = Decimal(amount)
        rows += [
            {"payment_id": pid, "item_entry_id": entry_id, "bill_id": bill_id, "account_id": acct,
             "amount": -amount},
            {"payment_id": pid, "item_entry_id": None, "bill_id": None, "account_id": acct, "amount": amount},
        ]  # fmt: skip
    if rows:
        session.execute(insert(PaymentAllocation), rows)
    return released


def apply_credit(
    session: Session, account_ids: list[int] | None = None, *, first: list[int] | None = None
) -> int:
    """Apply unapplied credit to open items (``first``: these item entries before the others,
    then oldest first); returns how many item allocations it made.

    Moves are recorded as a negative unapplied allocation and a positive item allocation under the
    payment that brought the credit, so every payment's allocations still sum to its amount.
    """
    credit = unapplied_credit(session, account_ids)
    if not credit:
        return 0
    items_by: dict[int, list[OpenItem]] = defaultdict(list)
    accounts = sorted(a for a, v in credit.items() if v > 0)
    for i in range(0, len(accounts), 500):
        for item in open_items(session, accounts[i : i + 500]):
            items_by[item.account_id].append(item)
    rows = []
    for acct, amount in credit.items():
        if amount <= 0 or not items_by.get(acct):
            continue
        sources = session.execute(
            select(PaymentAllocation.payment_id, func.sum(PaymentAllocation.amount))
            .where(PaymentAllocation.account_id == acct, PaymentAllocation.item_entry_id.is_(None))
            .group_by(PaymentAllocation.payment_id)
            .order_by(PaymentAllocation.payment_id)
        ).all()
        todo = [(pid, Decimal(v)) for pid, v in sources if v and v > 0]
        for target, part in split(amount, order_items(items_by[acct], "oldest_first", first)):
            if target is None:
                break
            item = target
            while part > 0 and todo:
                pid, avail = todo[0]
                take = min(part, avail)
                rows += [
                    {
                        "payment_id": pid,
                        "item_entry_id": None,
                        "bill_id": None,
                        "account_id": acct,
                        "amount": -take,
                    },
                    {
                        "payment_id": pid,
                        "item_entry_id": item.entry_id,
                        "bill_id": item.bill_id,
                        "account_id": acct,
                        "amount": take,
                    },
                ]
                part -= take
                todo[0] = (pid, avail - take)
                if todo[0][1] <= 0:
                    todo.pop(0)
    if rows:
        session.execute(insert(PaymentAllocation), rows)
    return len(rows) // 2
