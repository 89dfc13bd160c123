"""Receivables reports from the ledger: customer statement, ageing, collections by channel,
revenue by tariff and component. Read-only; every figure is derived from journal lines and the
documents behind them, never from a stored balance.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from meter2cash.cis.billing.models import Bill
from meter2cash.cis.ledger.journal import DEPOSITS, RECEIVABLE, WALLET, account_balance, statement
from meter2cash.cis.ledger.models import JournalEntry, JournalLine, LedgerAccount
from meter2cash.cis.parties.models import Account
from meter2cash.cis.payments.allocation import open_items, unapplied_credit
from meter2cash.cis.payments.models import Payment
from meter2cash.db_query import raw

BUCKETS = ("0-30", "31-60", "61-90", "90+")


def bucket_of(age_days: int) -> str:
    """The ageing bucket of a debt ``age_days`` past its due date (not yet due counts as 0–30)."""
    if age_days <= 30:
        return BUCKETS[0]
    if age_days <= 60:
        return BUCKETS[1]
    if age_days <= 90:
        return BUCKETS[2]
    return BUCKETS[3]


@dataclass(slots=True)
class AgeingRow:
    account_id: int
    account: str
    buckets: dict[str, Decimal]
    credit: Decimal

    @property
    def total(self) -> Decimal:
        return sum(self.buckets.values(), Decimal(0)) - self.credit


@dataclass(slots=True)
class Ageing:
    as_of: date
    rows: list[AgeingRow] = field(default_factory=list)

    def totals(self) -> dict[str, Decimal]:
        out = {b: Decimal("0.00") for b in BUCKETS}
        for r in self.rows:
            for b, v in r.buckets.items():
                out[b] += v
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "rows": [
                {
                    "account": r.account,
                    **{b: str(v) for b, v in r.buckets.items()},
                    "credit": str(r.credit),
                    "total": str(r.total),
                }
                for r in self.rows
            ],
            "totals": {b: str(v) for b, v in self.totals().items()},
        }


def ageing(session: Session, as_of: date, account_ids: list[int] | None = None) -> Ageing:
    """Open receivable items per account in buckets of days past due (0–30, 31–60, 61–90, 90+).

    Unapplied credit on an account is set against its oldest items first, so an account's row
    total equals its receivable balance when every debit is an item.
    """
    items = open_items(session, account_ids)
    credit = unapplied_credit(session, account_ids)
    numbers = dict(session.execute(select(Account.id, Account.number)).all())
    by_acct: dict[int, list[Any]] = defaultdict(list)
    for it in items:
        by_acct[it.account_id].append(it)
    out = Ageing(as_of)
    for acct in sorted(set(by_acct) | set(credit)):
        buckets = {b: Decimal("0.00") for b in BUCKETS}
        left = max(credit.get(acct, Decimal(0)), Decimal(0))
        for it in sorted(by_acct.get(acct, []), key=lambda i: (i.due_on, i.entry_id)):
            take = min(left, it.open)
            left -= take
            if it.open - take > 0:
                buckets[bucket_of((as_of - it.due_on).days)] += it.open - take
        out.rows.append(AgeingRow(acct, numbers.get(acct, str(acct)), buckets, left))
    return out


def customer_statement(session: Session, account_id: int) -> dict[str, Any]:
    """Every ledger line of an account (receivables, wallet, deposit) with running balances."""
    lines = statement(session, account_id)
    return {
        "account_id": account_id,
        "receivable": str(account_balance(session, account_id, RECEIVABLE)),
        "wallet": str(-account_balance(session, account_id, WALLET)),
        "deposit_held": str(-account_balance(session, account_id, DEPOSITS)),
        "lines": [
            {
                "date": ln.effective_date.isoformat(),
                "kind": ln.kind,
                "reference": ln.reference,
                "memo": ln.memo,
                "ledger_account": ln.ledger_account,
                "amount": str(ln.amount),
            }
            for ln in lines
        ],
    }


def collections_by_channel(session: Session, first: date, last: date) -> list[dict[str, Any]]:
    """Money received from ``first`` to ``last`` per channel and purpose (returned cheques excluded)."""
    rows = session.execute(
        select(Payment.channel, Payment.purpose, func.count(Payment.id), func.sum(Payment.amount))
        .where(
            Payment.received_on >= first,
            Payment.received_on <= last,
            Payment.status == "posted",
            Payment.purpose.in_(("payment", "recharge", "deposit")),
        )
        .group_by(Payment.channel, Payment.purpose)
        .order_by(Payment.channel, Payment.purpose)
    ).all()
    return [{"channel": c, "purpose": p, "count": n, "amount": str(a)} for c, p, n, a in rows]


def revenue_by_tariff(session: Session, first: date, last: date) -> list[dict[str, Any]]:
    """Revenue and taxes posted from ``first`` to ``last`` per tariff and ledger account (component).

    A bill's tariff comes from the bill; a daily prepaid charge names it in its reference
    (``PPD-<day>-<tariff>``); other entries (surcharges, fees) show tariff ``-``.
    """
    rows = session.execute(
        select(
            JournalEntry.kind,
            JournalEntry.reference,
            Bill.tariff_code,
            JournalLine.ledger_account,
            LedgerAccount.name,
            func.sum(raw(JournalLine.__table__.c.amount)),
        )
        .join(JournalEntry, JournalEntry.id == JournalLine.entry_id)
        .join(LedgerAccount, LedgerAccount.code == JournalLine.ledger_account)
        .outerjoin(Bill, Bill.journal_entry_id == JournalEntry.id)
        .where(
            JournalEntry.effective_date >= first,
            JournalEntry.effective_date <= last,
            (LedgerAccount.type == "revenue") | (JournalLine.ledger_account == "2200"),
        )
        .group_by(
            JournalEntry.kind,
            JournalEntry.reference,
            Bill.tariff_code,
            JournalLine.ledger_account,
            LedgerAccount.name,
        )
    ).all()
    sums: dict[tuple[str, str, str], int] = defaultdict(int)
    for kind, ref, tariff, code, name, amount in rows:
        if tariff is None and kind == "prepaid.charge" and ref.startswith("PPD-"):
            tariff = ref[len("PPD-2026-01-01-") :]
        sums[(tariff or "-", code, name)] -= int(amount or 0)
    return [
        {"tariff": t, "ledger_account": c, "name": n, "amount": str(Decimal(v).scaleb(-4))}
        for (t, c, n), v in sorted(sums.items())
        if v
    ]
