"""Storing rated bills: bills, lines, segments, journal entries and ``bill.issued`` events.

Bulk inserts; lines are written straight from the rating arrays where possible. Takes a Session,
never commits.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from sqlalchemy import BigInteger, Column, MetaData, Table, func, insert, select
from sqlalchemy.orm import Session

from meter2cash.cis.bulk import insert_rows, reserve_ids
from meter2cash.cis.ledger import COPY_FROM_ROWS, EntrySpec, post_entries
from meter2cash.cis.models import Bill, BillLine, BillRun, BillSegment
from meter2cash.cis.rating import RatedBill, RatedLine
from meter2cash.cis.rating_lines import LINE_FIELDS, line_columns, line_rows
from meter2cash.core.money import quantum
from meter2cash.core.timeutil import utcnow
from meter2cash.db import ScaledDecimal
from meter2cash.integration.models import OutboxMessage

#: Core tables: plain executemany inserts (the ORM bulk path groups rows and is slower here).
BILL = cast(Table, Bill.__table__)
BILL_LINE = cast(Table, BillLine.__table__)
OUTBOX = cast(Table, OutboxMessage.__table__)

if TYPE_CHECKING:
    from meter2cash.cis.billing import BillRunResult, Job, RatedChunk
    from meter2cash.cis.cycles import BillingPeriod


def bill_entry_legs(bill: RatedBill, kind: str, account_id: int) -> list[tuple[str, Decimal, int | None]]:
    """Journal legs of a bill: Dr 1100 (postpaid) or 2100 (prepaid) for the customer account,
    Cr each line's ledger account (revenue, 2200 taxes). Zero legs are left out."""
    credits: dict[str, Decimal] = defaultdict(Decimal)
    for ln in bill.lines:
        credits[ln.ledger_account] -= ln.amount
    legs: list[tuple[str, Decimal, int | None]] = [
        (c, amt, None) for c, amt in sorted(credits.items()) if amt
    ]
    if bill.total != 0:
        legs.insert(0, ("2100" if kind == "prepaid" else "1100", bill.total, account_id))
    return legs


def _next_seq(session: Session, period: str) -> int:
    prefix = f"B-{period}-"
    last = session.scalar(select(func.max(Bill.number)).where(Bill.number.like(prefix + "%")))
    return int(last.rsplit("-", 1)[1]) if last else 0


@dataclass(slots=True)
class _Head:
    """What a bill row needs besides its lines: totals, terms, determinants and journal legs."""

    job: Job
    tariff_code: str
    currency: str
    subtotal: Decimal
    tax: Decimal
    total: Decimal
    terms: dict[str, Any]
    det: dict[str, Any]
    kwh: Decimal
    estimated: bool
    legs: list[tuple[str, Decimal, int | None]]
    n_lines: int


#: Bill line rows as stored (LINE_FIELDS order, scaled integers) for the given bill ids.
LineRows = Callable[[list[int]], list[tuple[Any, ...]]]


def store_bills(
    session: Session,
    run: BillRun,
    result: BillRunResult,
    p: BillingPeriod,
    rc: RatedChunk,
    idx: list[int],
    cycle: str,
    due_days: int,
    currency: str,
    replacing: dict[int, Bill],
) -> None:
    """Store the bills ``idx`` of a rated chunk (one segment each) straight from the rating
    arrays: lines and journal legs are built column-wise, with one ``Decimal`` per distinct
    amount rather than an object per line."""
    ra = rc.rated
    n = ra.inputs.n
    sel = np.asarray(idx, dtype=np.int64)
    v = ra.version
    q = quantum(v.currency)
    cache: dict[int, Decimal] = {}

    def money(x: int) -> Decimal:
        d = cache.get(x)
        if d is None:
            d = cache[x] = Decimal(x).scaleb(-ra.scale)
        return d

    cols = line_columns(ra)
    pos = np.full(n, -1, dtype=np.int64)
    pos[sel] = np.arange(sel.size)
    keep = pos[cols.bill] >= 0
    codes = sorted({ln.ledger_account for ln in ra.lines})
    acct = np.asarray([codes.index(ln.ledger_account) for ln in ra.lines], dtype=np.int64)
    credit = np.zeros((sel.size, max(len(codes), 1)), dtype=np.int64)
    np.add.at(credit, (pos[cols.bill[keep]], acct[cols.line[keep]]), -cols.amount[keep])
    n_lines = np.bincount(pos[cols.bill[keep]], minlength=sel.size).tolist()
    rows, accts = np.nonzero(credit)
    bounds = np.searchsorted(rows, np.arange(sel.size + 1)).tolist()
    accts_l, credit_l = accts.tolist(), credit[rows, accts].tolist()
    wh = ra.inputs.wh_total
    sub, tax, tot = ra.subtotal[sel].tolist(), ra.tax[sel].tolist(), ra.total[sel].tolist()
    has_terms = bool(v.payment_terms.prompt_percent or v.payment_terms.late_percent or v.net_metering)
    heads = []
    for j, k in enumerate(idx):
        job = rc.jobs[k]
        total = money(tot[j]).quantize(q)
        legs: list[tuple[str, Decimal, int | None]] = [
            (codes[accts_l[i]], money(credit_l[i]), None) for i in range(bounds[j], bounds[j + 1])
        ]
        if total != 0:
            legs.insert(0, ("2100" if job.a.kind == "prepaid" else "1100", total, job.a.account_id))
        heads.append(
            _Head(
                job, v.code, v.currency, money(sub[j]), money(tax[j]), total,
                ra.terms(k, total) if has_terms else {}, rc.determinants[k],
                Decimal(int(wh[k])).scaleb(-3), rc.estimated[k], legs, n_lines[j],
            )
        )  # fmt: skip

    def lines(ids: list[int]) -> list[tuple[Any, ...]]:
        full = np.full(n, -1, dtype=np.int64)
        full[sel] = ids
        out = line_rows(ra, full, stored=True)
        return out if sel.size == n else [r for r in out if r[0] >= 0]

    _insert(session, run, result, p, heads, lines, cycle, due_days, currency, replacing, None)


def store_segmented(
    session: Session,
    run: BillRun,
    result: BillRunResult,
    p: BillingPeriod,
    pending: dict[int, list[tuple[Job, RatedChunk, int]]],
    cycle: str,
    due_days: int,
    currency: str,
    replacing: dict[int, Bill],
) -> None:
    """Merge the segments of each agreement into one bill (lines prefixed with the dates)."""
    heads: list[_Head] = []
    segments: list[list[dict[str, Any]]] = []
    merged_lines: list[list[tuple[RatedLine, int]]] = []
    for parts in pending.values():
        parts.sort(key=lambda t: t[0].seg)
        lines: list[tuple[RatedLine, int]] = []
        sub = tax = total = Decimal(0)
        kwh = Decimal(0)
        det: dict[str, Any] = {"segments": []}
        segs = []
        for job, rc, k in parts:
            rb = rc.rated.bill(k)
            label = f"{job.first:%d %b}–{job.last:%d %b}"
            for ln in rb.lines:
                lines.append(
                    (RatedLine(ln.component, f"{label}: {ln.description}", ln.quantity, ln.unit, ln.rate,
                               ln.amount, ln.ledger_account), job.seg)
                )  # fmt: skip
            seg_kwh = Decimal(int(rc.rated.inputs.wh_total[k])).scaleb(-3)
            sub, tax, total, kwh = sub + rb.subtotal, tax + rb.tax, total + rb.total, kwh + seg_kwh
            d = rc.determinants[k]
            det["segments"].append({"first": str(job.first), "last": str(job.last), **d})
            segs.append(
                {"first": job.first, "last": job.last, "tv": job.tv_id, "kwh": seg_kwh, "total": rb.total}
            )
        first_det = parts[0][1].determinants[parts[0][2]]
        det.update({k: v for k, v in first_det.items() if k not in det})
        rb0 = parts[0][1].rated.bill(parts[0][2])
        merged = RatedBill(rb0.tariff_code, rb0.currency, [ln for ln, _ in lines], sub, tax, total)
        a = parts[0][0].a
        heads.append(
            _Head(
                parts[0][0], merged.tariff_code, merged.currency, sub, tax, total, merged.terms, det, kwh,
                any(rc.estimated[k] for _, rc, k in parts), bill_entry_legs(merged, a.kind, a.account_id),
                len(lines),
            )
        )  # fmt: skip
        segments.append(segs)
        merged_lines.append(lines)

    def rows(ids: list[int]) -> list[tuple[Any, ...]]:
        return [
            (bill_id, i + 1, ln.component, ln.description, _scaled(ln.quantity, 3), ln.unit,
             _scaled(ln.rate, 6), _scaled(ln.amount, 4), ln.ledger_account, seg)
            for bill_id, lines in zip(ids, merged_lines, strict=True)
            for i, (ln, seg) in enumerate(lines)
        ]  # fmt: skip

    _insert(session, run, result, p, heads, rows, cycle, due_days, currency, replacing, segments)


def _scaled(v: Decimal | None, places: int) -> int | None:
    return None if v is None else int(v.scaleb(places))


def _insert(
    session: Session,
    run: BillRun,
    result: BillRunResult,
    p: BillingPeriod,
    heads: list[_Head],
    lines: LineRows,
    cycle: str,
    due_days: int,
    currency: str,
    replacing: dict[int, Bill],
    segments: list[list[dict[str, Any]]] | None,
) -> None:
    seq = _next_seq(session, run.period)
    issue_day = max(utcnow().date(), p.last)
    numbers = [f"B-{run.period}-{seq + k + 1:06d}" for k in range(len(heads))]
    specs, with_entry = [], []
    for k, h in enumerate(heads):
        if h.job.a.kind == "prepaid":
            continue  # charged daily by the prepaid engine; the statement posts nothing
        if h.legs:
            memo = f"bill {numbers[k]} {run.period} {h.tariff_code}"
            specs.append(EntrySpec("bill", p.last, numbers[k], memo, h.legs, h.currency or currency))
            with_entry.append(k)
    entries = dict(zip(with_entry, post_entries(session, specs), strict=True))
    now = utcnow()
    values = []
    for k, h in enumerate(heads):
        a = h.job.a
        old = replacing.get(a.id)
        det = {**h.det, "terms": h.terms} if h.terms else h.det
        values.append(
            {
                "number": numbers[k], "bill_run_id": run.id, "service_agreement_id": a.id,
                "account_id": a.account_id, "kind": a.kind,
                "status": "statement" if a.kind == "prepaid" else "issued", "estimated": h.estimated,
                "period": run.period, "period_start": p.start, "period_end": p.end, "issued_at": now,
                "due_date": None if a.kind == "prepaid" else _due(issue_day, due_days),
                "tariff_code": a.tariff_code, "tariff_version_id": h.job.tv_id,
                "currency": h.currency or currency, "total_kwh": h.kwh,
                "estimated_share": det["estimated_share"], "subtotal": h.subtotal, "tax": h.tax,
                "total": h.total, "determinants": det, "journal_entry_id": entries.get(k), "cycle": cycle,
                "replaces_bill_id": None if old is None else old.id,
                "adjustment": Decimal(0) if old is None or old.journal_entry_id is None else -old.total,
                "cancel_reason": "",
            }
        )  # fmt: skip
    ids = insert_bills(session, values)
    bills = [_Row(i, v) for i, v in zip(ids, values, strict=True)]
    rows = lines(ids)
    for b, h in zip(bills, heads, strict=True):
        if b.replaces_bill_id is not None and b.adjustment:
            old = replacing[b.service_agreement_id]
            rows.append(
                (b.id, h.n_lines + 1, "adjustment",
                 f"Bill {old.number} cancelled and reversed ({old.cancel_reason})"[:200],
                 None, "", None, _scaled(b.adjustment, 4), "1100", 0)
            )  # fmt: skip
    if rows:
        insert_lines(session, rows)
    if segments:
        session.execute(
            insert(BillSegment),
            [
                {"bill_id": b.id, "seq": s + 1, "start_date": seg["first"], "end_date": seg["last"],
                 "tariff_version_id": seg["tv"], "total_kwh": seg["kwh"], "total": seg["total"]}
                for b, segs in zip(bills, segments, strict=True)
                for s, seg in enumerate(segs)
            ],
        )  # fmt: skip
    insert_rows(session, OUTBOX, [_issued(b) for b in bills], copy_min_rows=COPY_FROM_ROWS)
    for h, b in zip(heads, bills, strict=True):
        result.bills.append(b.id)
        result.estimated += b.estimated
        result.statements += b.kind == "prepaid"
        t = result.totals.setdefault((h.job.a.customer_class, h.job.a.kind), _totals())
        t.count += 1
        t.kwh += b.total_kwh
        t.amount += b.total


class _Row:
    """A stored bill's id and column values (no ORM object is built for speed)."""

    __slots__ = ("id", "v")

    def __init__(self, id_: int, v: dict[str, Any]) -> None:
        self.id, self.v = id_, v

    def __getattr__(self, name: str) -> Any:
        return self.v[name]


def insert_bills(session: Session, values: list[dict[str, Any]]) -> list[int]:
    """Insert bills and return their ids in order. PostgreSQL: ids drawn from the sequence first,
    then one ``COPY`` (a batched ``INSERT … RETURNING`` is slow to send); others: RETURNING."""
    if not values:
        return []
    ids = reserve_ids(session, BILL, len(values))
    if ids is None:
        stmt = insert(Bill).returning(Bill.id, sort_by_parameter_order=True)
        return list(session.execute(stmt, values).scalars())
    insert_rows(session, BILL, [{**v, "id": i} for i, v in zip(ids, values, strict=True)], copy_min_rows=0)
    return ids


#: ``bill_line`` with its scaled-decimal columns as the integers they are stored as.
_RAW_LINE = Table(
    "bill_line",
    MetaData(),
    *(Column(c.name, BigInteger if isinstance(c.type, ScaledDecimal) else c.type) for c in BILL_LINE.c),
)


def insert_lines(session: Session, rows: list[tuple[Any, ...]]) -> None:
    """Insert bill lines given as stored tuples (:data:`LINE_FIELDS` order; quantity, rate and
    amount as scaled integers of 10⁻³, 10⁻⁶, 10⁻⁴): PostgreSQL ``COPY``, others executemany."""
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        session.execute(insert(_RAW_LINE), [dict(zip(LINE_FIELDS, r, strict=True)) for r in rows])
        return
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(f"COPY bill_line ({', '.join(LINE_FIELDS)}) FROM STDIN") as copy:
        for r in rows:
            copy.write_row(r)


def _due(issue_day: date, due_days: int) -> date:
    return issue_day + timedelta(days=due_days)


def _totals() -> Any:
    from meter2cash.cis.billing import Totals

    return Totals()


def _issued(b: Any) -> dict[str, Any]:
    return {
        "message_id": str(uuid.uuid4()),
        "topic": "bill.issued",
        "key": b.number,
        "payload": {
            "bill_id": b.id,
            "number": b.number,
            "account_id": b.account_id,
            "kind": b.kind,
            "status": b.status,
            "estimated": b.estimated,
            "period": b.period,
            "total": str(b.total),
            "adjustment": str(b.adjustment),
            "replaces_bill_id": b.replaces_bill_id,
            "currency": b.currency,
            "due_date": b.due_date.isoformat() if b.due_date else None,
        },
    }
