"""Storing rated bills: bills, lines, segments, journal entries and ``bill.issued`` events.

Bulk inserts; lines are written straight from the rating arrays where possible. Takes a Session,
never commits.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, func, insert, select
from sqlalchemy.orm import Session

from meter2cash.cis.bulk import insert_rows, reserve_ids
from meter2cash.cis.ledger import COPY_FROM_ROWS, EntrySpec, post_entries
from meter2cash.cis.models import Bill, BillLine, BillRun, BillSegment
from meter2cash.cis.rating import RatedBill, RatedLine
from meter2cash.core.timeutil import utcnow
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
    """Store the bills ``idx`` of a rated chunk (one segment each)."""
    rated = rc.rated.bills(idx)
    wh = rc.rated.inputs.wh_total
    items = [
        (
            rc.jobs[k],
            rb,
            rc.determinants[k],
            Decimal(int(wh[k])).scaleb(-3),
            rc.estimated[k],
            rc.rated.version,
        )
        for k, rb in zip(idx, rated, strict=True)
    ]
    _insert(session, run, result, p, items, cycle, due_days, currency, replacing, None, None)


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
    items = []
    segments: list[list[dict[str, Any]]] = []
    line_segments: list[list[int]] = []
    for parts in pending.values():
        parts.sort(key=lambda t: t[0].seg)
        lines: list[RatedLine] = []
        seg_of_line: list[int] = []
        sub = tax = total = Decimal(0)
        kwh = Decimal(0)
        det: dict[str, Any] = {"segments": []}
        segs = []
        for job, rc, k in parts:
            rb = rc.rated.bill(k)
            label = f"{job.first:%d %b}–{job.last:%d %b}"
            for ln in rb.lines:
                seg_of_line.append(job.seg)
                lines.append(
                    RatedLine(ln.component, f"{label}: {ln.description}", ln.quantity, ln.unit, ln.rate,
                              ln.amount, ln.ledger_account)
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
        merged = RatedBill(rb0.tariff_code, rb0.currency, lines, sub, tax, total)
        est = any(rc.estimated[k] for _, rc, k in parts)
        items.append((parts[0][0], merged, det, kwh, est, parts[-1][1].rated.version))
        segments.append(segs)
        line_segments.append(seg_of_line)
    _insert(session, run, result, p, items, cycle, due_days, currency, replacing, segments, line_segments)


def _insert(
    session: Session,
    run: BillRun,
    result: BillRunResult,
    p: BillingPeriod,
    items: list[tuple[Job, RatedBill, dict[str, Any], Decimal, bool, Any]],
    cycle: str,
    due_days: int,
    currency: str,
    replacing: dict[int, Bill],
    segments: list[list[dict[str, Any]]] | None,
    line_segments: list[list[int]] | None,
) -> None:
    seq = _next_seq(session, run.period)
    issue_day = max(utcnow().date(), p.last)
    numbers = [f"B-{run.period}-{seq + k + 1:06d}" for k in range(len(items))]
    specs, with_entry = [], []
    for k, (job, rb, _, _, _, _) in enumerate(items):
        a = job.a
        if a.kind == "prepaid":
            continue  # charged daily by the prepaid engine; the statement posts nothing
        legs = bill_entry_legs(rb, a.kind, a.account_id)
        if legs:
            memo = f"bill {numbers[k]} {run.period} {rb.tariff_code}"
            specs.append(EntrySpec("bill", p.last, numbers[k], memo, legs, rb.currency or currency))
            with_entry.append(k)
    entries = dict(zip(with_entry, post_entries(session, specs), strict=True))
    now = utcnow()
    values = []
    for k, (job, rb, det, kwh, est, _) in enumerate(items):
        a = job.a
        old = replacing.get(a.id)
        if rb.terms:
            det = {**det, "terms": rb.terms}
        values.append(
            {
                "number": numbers[k], "bill_run_id": run.id, "service_agreement_id": a.id,
                "account_id": a.account_id, "kind": a.kind,
                "status": "statement" if a.kind == "prepaid" else "issued", "estimated": est,
                "period": run.period, "period_start": p.start, "period_end": p.end, "issued_at": now,
                "due_date": None if a.kind == "prepaid" else _due(issue_day, due_days),
                "tariff_code": a.tariff_code, "tariff_version_id": job.tv_id,
                "currency": rb.currency or currency, "total_kwh": kwh,
                "estimated_share": det["estimated_share"], "subtotal": rb.subtotal, "tax": rb.tax,
                "total": rb.total, "determinants": det, "journal_entry_id": entries.get(k), "cycle": cycle,
                "replaces_bill_id": None if old is None else old.id,
                "adjustment": Decimal(0) if old is None or old.journal_entry_id is None else -old.total,
                "cancel_reason": "",
            }
        )  # fmt: skip
    ids = insert_bills(session, values)
    bills = [_Row(i, v) for i, v in zip(ids, values, strict=True)]
    rows: list[dict[str, Any]] = []
    for n, (b, (_, rb, _, _, _, _)) in enumerate(zip(bills, items, strict=True)):
        segs_of = line_segments[n] if line_segments else [1] * len(rb.lines)
        rows.extend(
            {
                "bill_id": b.id, "seq": i + 1, "component": ln.component, "description": ln.description,
                "quantity": ln.quantity, "unit": ln.unit, "rate": ln.rate, "amount": ln.amount,
                "ledger_account": ln.ledger_account, "segment": segs_of[i],
            }
            for i, ln in enumerate(rb.lines)
        )  # fmt: skip
        if b.replaces_bill_id is not None and b.adjustment:
            old = replacing[b.service_agreement_id]
            rows.append(
                {
                    "bill_id": b.id, "seq": len(rb.lines) + 1, "component": "adjustment",
                    "description": f"Bill {old.number} cancelled and reversed ({old.cancel_reason})"[:200],
                    "quantity": None, "unit": "", "rate": None, "amount": b.adjustment,
                    "ledger_account": "1100", "segment": 0,
                }
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
    for (job, *_), b in zip(items, bills, strict=True):
        result.bills.append(b.id)
        result.estimated += b.estimated
        result.statements += b.kind == "prepaid"
        t = result.totals.setdefault((job.a.customer_class, job.a.kind), _totals())
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


_LINE_COLS = ("bill_id", "seq", "component", "description", "quantity", "unit", "rate", "amount",
              "ledger_account", "segment")  # fmt: skip
_SCALE = {"quantity": 3, "rate": 6, "amount": 4}


def insert_lines(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert bill lines: PostgreSQL ``COPY`` with the stored scaled integers (the column types'
    own encoding, see :mod:`meter2cash.db`); other databases a Core executemany."""
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        session.execute(insert(BILL_LINE), rows)
        return
    scaled = [(c, _SCALE.get(c)) for c in _LINE_COLS]
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(f"COPY bill_line ({', '.join(_LINE_COLS)}) FROM STDIN") as copy:
        for r in rows:
            copy.write_row([None if (v := r[c]) is None else int(v.scaleb(k)) if k else v for c, k in scaled])


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
