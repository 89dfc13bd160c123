"""The double-entry ledger: chart of accounts, immutable journal entries, trial balance.

A journal line carries a signed amount (debit positive, credit negative) on a ledger account and,
for receivables and wallets, the customer account as sub-ledger. Every entry sums to zero. Entries
are never updated; a correction is a new entry that reverses an old one. Sums are taken in SQL on
the raw scaled-integer column, so they are exact on SQLite and PostgreSQL.

Every function takes a Session and flushes; none commits (the caller owns the transaction).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, case, func, insert, select
from sqlalchemy.orm import Session

from meter2cash.cis.ledger.models import JournalEntry, JournalLine, LedgerAccount
from meter2cash.core.errors import Conflict, InvalidInput, NotFound
from meter2cash.core.timeutil import utcnow
from meter2cash.db_bulk import column_rows, insert_columns, insert_rows, reserve_ids
from meter2cash.db_query import raw

#: The chart of accounts seeded by :func:`ensure_chart`: code → (name, type).
CHART: dict[str, tuple[str, str]] = {
    "1000": ("Cash and bank", "asset"),
    "1100": ("Accounts receivable", "asset"),
    "2100": ("Prepaid wallet liability", "liability"),
    "2200": ("Taxes and duties payable", "liability"),
    "2300": ("Customer security deposits", "liability"),
    "4100": ("Energy revenue", "revenue"),
    "4200": ("Fixed charge revenue", "revenue"),
    "4300": ("Demand charge revenue", "revenue"),
    "4400": ("Late-payment surcharge revenue", "revenue"),
    "4500": ("Fees and service charges", "revenue"),
    "4900": ("Adjustments, discounts and rounding", "revenue"),
    "6100": ("Bad debts written off", "expense"),
    "6200": ("Payment gateway fees", "expense"),
}
#: Ledger accounts by role, for the money-in services.
CASH, RECEIVABLE, WALLET, TAXES, DEPOSITS = "1000", "1100", "2100", "2200", "2300"
SURCHARGE, FEES, DISCOUNTS, WRITE_OFF, GATEWAY_FEES = "4400", "4500", "4900", "6100", "6200"
MONEY_SCALE = 4
#: From this many entries on, PostgreSQL gets them by ``COPY`` (fewer go by ``INSERT``).
COPY_FROM_ROWS = 100
#: The raw scaled-integer amount column (10⁻⁴ units), for exact SQL sums.
_RAW = raw(JournalLine.__table__.c.amount)

Leg = tuple[str, Decimal, int | None]
#: A leg with its amount as the stored integer of 10⁻⁴ (:data:`MONEY_SCALE`).
ScaledLeg = tuple[str, int, int | None]


def _dec(raw: Any) -> Decimal:
    return Decimal(int(raw or 0)).scaleb(-MONEY_SCALE)


def ensure_chart(session: Session) -> dict[str, LedgerAccount]:
    """Create any missing account of :data:`CHART`; return every ledger account by code."""
    existing = {a.code: a for a in session.scalars(select(LedgerAccount))}
    for code, (name, kind) in CHART.items():
        if code not in existing:
            existing[code] = LedgerAccount(code=code, name=name, type=kind)
            session.add(existing[code])
    session.flush()
    return existing


@dataclass(slots=True)
class EntrySpec:
    """A journal entry to post: ``lines`` are ``(ledger_account, amount, account_id)`` legs."""

    kind: str
    effective_date: date
    reference: str
    memo: str
    lines: Sequence[Leg]
    currency: str
    reverses_id: int | None = None


def _check(spec: EntrySpec, known: set[str]) -> None:
    if not spec.lines:
        raise InvalidInput(f"journal entry {spec.reference!r} has no lines", code="ledger.empty")
    total = Decimal(0)
    for code, amount, _ in spec.lines:
        if code not in known:
            raise InvalidInput(
                f"unknown ledger account {code!r}", code="ledger.unknown_account", account=code
            )
        if not isinstance(amount, Decimal):
            raise InvalidInput(f"amount {amount!r} must be a Decimal", code="ledger.not_decimal")
        total += amount
    if total != 0:
        raise InvalidInput(
            f"journal entry {spec.reference!r} does not balance: debits − credits = {total}",
            code="ledger.unbalanced",
            difference=str(total),
        )


def post_entries(session: Session, specs: Sequence[EntrySpec]) -> list[int]:
    """Post many balanced entries with bulk inserts and return their ids, in order.

    Refuses the lot if any entry is unbalanced or names an unknown ledger account. No ORM
    objects: a bill run posts thousands at once. On PostgreSQL, from ``COPY_FROM_ROWS`` entries
    on, the ids are drawn from the sequence and entries and lines are copied; otherwise entries
    are inserted with ``RETURNING`` their ids.
    """
    if not specs:
        return []
    known = set(session.scalars(select(LedgerAccount.code)))
    for spec in specs:
        _check(spec, known)
    columns: dict[str, Sequence[Any]] = {
        "kind": [s.kind for s in specs],
        "effective_date": [s.effective_date for s in specs],
        "reference": [s.reference for s in specs],
        "memo": [s.memo[:200] for s in specs],
        "reverses_id": [s.reverses_id for s in specs],
    }
    ids = _insert_entries(session, columns, {"posted_at": utcnow()})
    rows = [
        {
            "entry_id": entry_id,
            "ledger_account": code,
            "account_id": acct,
            "amount": amount,
            "currency": s.currency,
        }
        for entry_id, s in zip(ids, specs, strict=True)
        for code, amount, acct in s.lines
    ]
    insert_rows(session, JournalLine.__table__, rows, copy_min_rows=COPY_FROM_ROWS)  # type: ignore[arg-type]
    return ids


def post_scaled(
    session: Session,
    kind: str,
    effective_date: date,
    references: Sequence[str],
    memos: Sequence[str],
    currencies: Sequence[str],
    legs: Sequence[Sequence[ScaledLeg]],
    *,
    posted_at: datetime | None = None,
) -> list[int]:
    """Post many balanced entries of one kind and effective date, given column-wise with leg
    amounts as the stored integers of 10⁻⁴ (no ``Decimal`` per leg), and return their ids in
    order. Same checks, rows and ids as :func:`post_entries` with the same entries."""
    n = len(references)
    if not n:
        return []
    known = set(session.scalars(select(LedgerAccount.code)))
    counts = [len(ls) for ls in legs]
    flat = [leg for ls in legs for leg in ls]
    for code in {leg[0] for leg in flat} - known:
        raise InvalidInput(f"unknown ledger account {code!r}", code="ledger.unknown_account", account=code)
    amounts = [leg[1] for leg in flat]
    for k in _unbalanced(amounts, counts):
        if not counts[k]:
            raise InvalidInput(f"journal entry {references[k]!r} has no lines", code="ledger.empty")
        diff = _dec(sum(amount for _, amount, _ in legs[k]))
        raise InvalidInput(
            f"journal entry {references[k]!r} does not balance: debits − credits = {diff}",
            code="ledger.unbalanced",
            difference=str(diff),
        )
    same = {"posted_at": posted_at or utcnow(), "kind": kind, "effective_date": effective_date}
    columns = {"reference": references, "memo": [m[:200] for m in memos], "reverses_id": [None] * n}
    ids = _insert_entries(session, columns, same)
    lines: dict[str, list[Any]] = {
        "entry_id": [i for i, c in zip(ids, counts, strict=True) for _ in range(c)],
        "ledger_account": [leg[0] for leg in flat],
        "account_id": [leg[2] for leg in flat],
        "amount": amounts,
        "currency": [cur for cur, c in zip(currencies, counts, strict=True) for _ in range(c)],
    }
    line_table = cast(Table, JournalLine.__table__)
    insert_columns(session, line_table, lines, copy_min_rows=COPY_FROM_ROWS, scaled=("amount",))
    return ids


def _unbalanced(amounts: list[int], counts: list[int]) -> list[int]:
    """Indices of the entries (``counts`` legs each, in order) that are empty or whose
    ``amounts`` do not sum to zero."""
    bad: list[int] = []
    i = 0
    for k, c in enumerate(counts):
        if not c or sum(amounts[i : i + c]) != 0:
            bad.append(k)
        i += c
    return bad


def _insert_entries(
    session: Session, columns: Mapping[str, Sequence[Any]], same: Mapping[str, Any]
) -> list[int]:
    """Insert journal entries given column-wise (``same``: values of every entry) and return
    their ids in order. On PostgreSQL, from ``COPY_FROM_ROWS`` entries on, the ids are drawn from
    the sequence first and the entries copied (``RETURNING`` batches are slow to send)."""
    table = cast(Table, JournalEntry.__table__)
    n = len(next(iter(columns.values())))
    reserved = reserve_ids(session, table, n) if n >= COPY_FROM_ROWS else None
    if reserved is not None:
        insert_columns(session, table, {"id": reserved, **columns}, same=same, copy_min_rows=0)
        return reserved
    stmt = insert(table).returning(table.c.id, sort_by_parameter_order=True)
    return list(session.scalars(stmt, column_rows(columns, same)))


def post_many(session: Session, specs: Sequence[EntrySpec]) -> list[JournalEntry]:
    """Post many balanced entries (see :func:`post_entries`) and return them as ORM objects."""
    ids = post_entries(session, specs)
    return [e for i in ids if (e := session.get(JournalEntry, i)) is not None]


def post(
    session: Session,
    *,
    kind: str,
    effective_date: date,
    reference: str,
    memo: str,
    lines: Sequence[Leg],
    currency: str,
) -> JournalEntry:
    """Post one entry; ``ledger.unbalanced`` unless the amounts sum to zero,
    ``ledger.unknown_account`` for a ledger account not in the chart."""
    return post_many(session, [EntrySpec(kind, effective_date, reference, memo, lines, currency)])[0]


def reverse(
    session: Session, entry_id: int, reason: str, *, effective_date: date | None = None
) -> JournalEntry:
    """Post the reversing entry of ``entry_id`` (every leg negated); an entry reverses only once."""
    entry = session.get(JournalEntry, entry_id)
    if entry is None:
        raise NotFound(f"journal entry {entry_id} does not exist", code="ledger.not_found")
    if session.scalar(select(JournalEntry.id).where(JournalEntry.reverses_id == entry_id)) is not None:
        raise Conflict(f"journal entry {entry_id} is already reversed", code="ledger.already_reversed")
    legs = session.execute(
        select(
            JournalLine.ledger_account, JournalLine.amount, JournalLine.account_id, JournalLine.currency
        ).where(JournalLine.entry_id == entry_id)
    ).all()
    spec = EntrySpec(
        kind="reversal",
        effective_date=effective_date or entry.effective_date,
        reference=entry.reference,
        memo=f"reverses #{entry_id}: {reason}",
        lines=[(code, -amount, acct) for code, amount, acct, _ in legs],
        currency=legs[0][3] if legs else "",
        reverses_id=entry_id,
    )
    return post_many(session, [spec])[0]


@dataclass(slots=True)
class TrialBalanceRow:
    code: str
    name: str
    type: str
    debit: Decimal
    credit: Decimal

    @property
    def balance(self) -> Decimal:
        return self.debit - self.credit


@dataclass(slots=True)
class TrialBalance:
    """Debits and credits per ledger account; ``total`` (debits − credits, all lines) must be 0."""

    rows: list[TrialBalanceRow]
    total_debit: Decimal
    total_credit: Decimal
    total: Decimal

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": [
                {
                    "code": r.code,
                    "name": r.name,
                    "type": r.type,
                    "debit": str(r.debit),
                    "credit": str(r.credit),
                    "balance": str(r.balance),
                }
                for r in self.rows
            ],
            "total_debit": str(self.total_debit),
            "total_credit": str(self.total_credit),
            "total": str(self.total),
        }


def trial_balance(session: Session) -> TrialBalance:
    """The trial balance, summed exactly in SQL."""
    debit = func.sum(case((_RAW > 0, _RAW), else_=0))
    credit = func.sum(case((_RAW < 0, -_RAW), else_=0))
    sums = {
        r[0]: (r[1], r[2])
        for r in session.execute(
            select(JournalLine.ledger_account, debit, credit).group_by(JournalLine.ledger_account)
        )
    }
    rows = [
        TrialBalanceRow(
            a.code, a.name, a.type, _dec(sums.get(a.code, (0, 0))[0]), _dec(sums.get(a.code, (0, 0))[1])
        )
        for a in session.scalars(select(LedgerAccount).order_by(LedgerAccount.code))
    ]
    tot = session.execute(select(debit, credit, func.sum(_RAW))).one()
    return TrialBalance(rows, _dec(tot[0]), _dec(tot[1]), _dec(tot[2]))


def account_balance(session: Session, account_id: int, ledger_account: str = "1100") -> Decimal:
    """Balance of a customer account on one ledger account (debit positive) [currency]."""
    raw = session.scalar(
        select(func.sum(_RAW)).where(
            JournalLine.account_id == account_id, JournalLine.ledger_account == ledger_account
        )
    )
    return _dec(raw)


@dataclass(slots=True)
class StatementLine:
    entry_id: int
    effective_date: date
    kind: str
    reference: str
    memo: str
    ledger_account: str
    amount: Decimal
    balance: Decimal


def statement(session: Session, account_id: int, ledger_account: str | None = None) -> list[StatementLine]:
    """Every ledger line of a customer account, oldest first, with the running balance."""
    stmt = (
        select(
            JournalEntry.id,
            JournalEntry.effective_date,
            JournalEntry.kind,
            JournalEntry.reference,
            JournalEntry.memo,
            JournalLine.ledger_account,
            JournalLine.amount,
        )
        .join(JournalLine, JournalLine.entry_id == JournalEntry.id)
        .where(JournalLine.account_id == account_id)
        .order_by(JournalEntry.effective_date, JournalEntry.id, JournalLine.id)
    )
    if ledger_account is not None:
        stmt = stmt.where(JournalLine.ledger_account == ledger_account)
    out: list[StatementLine] = []
    running = Decimal(0).scaleb(-MONEY_SCALE)
    for eid, eff, kind, ref, memo, code, amount in session.execute(stmt):
        running += amount
        out.append(StatementLine(eid, eff, kind, ref, memo, code, amount, running))
    return out
