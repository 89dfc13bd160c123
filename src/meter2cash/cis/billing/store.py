"""Storing rated bills: bills, lines, segments, journal entries and ``bill.issued`` events.

Bulk inserts; lines are written straight from the rating arrays where possible. Takes a Session,
never commits.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from sqlalchemy import Table, func, insert, select
from sqlalchemy.orm import Session

from meter2cash.cis.billing.models import Bill, BillLine, BillRun, BillSegment
from meter2cash.cis.billing.periods import BillingPeriod
from meter2cash.cis.billing.planning import Job
from meter2cash.cis.billing.results import BillRunResult, RatedChunk, Totals
from meter2cash.cis.ledger.journal import COPY_FROM_ROWS, RECEIVABLE, Leg, ScaledLeg, post_scaled
from meter2cash.cis.rating import payment_terms
from meter2cash.cis.rating.lines import LINE_FIELDS, MONEY_PLACES, line_columns, line_table
from meter2cash.cis.rating.types import RatedBill, RatedLine
from meter2cash.cis.tariffs.components import PaymentTerms
from meter2cash.core.money import quantum
from meter2cash.core.timeutil import utcnow
from meter2cash.db import Money
from meter2cash.db_bulk import column_rows, insert_columns, raw_table, reserve_ids
from meter2cash.events.models import OutboxMessage

#: Core tables: plain executemany inserts (the ORM bulk path groups rows and is slower here).
BILL = cast(Table, Bill.__table__)
BILL_LINE = cast(Table, BillLine.__table__)
OUTBOX = cast(Table, OutboxMessage.__table__)


def bill_entry_legs(bill: RatedBill, account_id: int) -> list[Leg]:
    """Journal legs of a postpaid bill: Dr 1100 receivables of the customer account with the
    bill's total, Cr each ledger account its lines name (revenue, 2200 taxes). Zero legs are left
    out. A prepaid statement posts nothing: the daily prepaid run charged the wallet already."""
    credits: dict[str, Decimal] = defaultdict(Decimal)
    for line in bill.lines:
        credits[line.ledger_account] -= line.amount
    legs: list[Leg] = [(code, amount, None) for code, amount in sorted(credits.items()) if amount]
    if bill.total != 0:
        legs.insert(0, (RECEIVABLE, bill.total, account_id))
    return legs


def _next_seq(session: Session, period: str) -> int:
    """The last bill number of ``period`` (0 if none). The range bounds the fixed-format numbers
    ``B-<period>-NNNNNN`` so that PostgreSQL reads the last one from the unique index on
    ``number`` whatever the database's collation (a ``LIKE`` uses that index only under the C
    collation, and ``max()`` under a ``LIKE`` walks back over every later number); the ``LIKE``
    keeps the match exact. Beyond 999,999 bills in a period the numbers grow a digit and no
    longer sort as text: the longest is looked for then (a scan of the period's numbers)."""
    prefix = f"B-{period}-"
    in_period = (
        Bill.number >= prefix + "0" * 6,
        Bill.number <= prefix + "9" * 6,
        Bill.number.like(prefix + "%"),
    )
    last = session.scalar(select(Bill.number).where(*in_period).order_by(Bill.number.desc()).limit(1))
    seq = int(last.rsplit("-", 1)[1]) if last else 0
    if seq == 10**6 - 1:
        longer = session.scalar(
            select(Bill.number)
            .where(*in_period, func.length(Bill.number) > len(prefix) + 6)
            .order_by(func.length(Bill.number).desc(), Bill.number.desc())
            .limit(1)
        )
        seq = int(longer.rsplit("-", 1)[1]) if longer else seq
    return seq


@dataclass(frozen=True, slots=True)
class Issue:
    """How a run issues its bills: cycle, days to pay, currency, the bills it replaces and the
    utility's default payment terms (for what a tariff leaves out), and when it issues them."""

    cycle: str
    due_days: int
    currency: str
    replacing: dict[int, Replacement]
    payment_defaults: payment_terms.Terms = payment_terms.UTILITY_DEFAULT
    #: When the run issues its bills (UTC): their ``issued_at``; the issue day is the later of
    #: its date and the period's last day.
    issued_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True, slots=True)
class Replacement:
    """A cancelled bill being billed again: ``paid`` is what payments had applied to it, now
    moved to its replacement (:func:`meter2cash.cis.payments.allocation.cancel_item`); the new bill shows
    it as a line "paid against the cancelled bill", and its amount due is ``total − paid``."""

    bill: Bill
    paid: Decimal


@dataclass(slots=True)
class _Heads:
    """What the bill rows need besides their lines, column-wise: money as the stored integers
    of 10⁻⁴ (``total`` also as the ``Decimal`` the outbox and the run totals carry), kWh as
    integers of 10⁻³ (Wh), determinants with the payment terms, journal legs (scaled)."""

    jobs: list[Job]
    tariff_code: list[str]
    currency: list[str]
    subtotal: list[int]
    tax: list[int]
    total: list[Decimal]
    total_scaled: list[int]
    det: list[dict[str, Any]]
    wh: list[int]
    estimated: list[bool]
    legs: list[list[ScaledLeg]]
    n_lines: list[int]
    #: The payment terms of each bill's tariff version (what it states; ``None`` fields take
    #: the utility's defaults).
    stated_terms: list[PaymentTerms | None]


#: Bill line columns as stored (:data:`LINE_FIELDS` → values, scaled integers) for the bill ids.
LineTable = Callable[[list[int]], dict[str, list[Any]]]
#: The bill columns given as stored scaled integers.
_SCALED_BILL = ("subtotal", "tax", "total", "total_kwh", "adjustment")
_SCALED_LINE = ("quantity", "rate", "amount")


def store_bills(
    session: Session,
    run: BillRun,
    result: BillRunResult,
    billing_period: BillingPeriod,
    chunk: RatedChunk,
    idx: list[int],
    issue: Issue,
) -> None:
    """Store the bills ``idx`` of a rated chunk (one segment each) straight from the rating
    arrays: lines, totals and journal legs are written as the scaled integers the rating gives,
    column-wise; one ``Decimal`` per bill total only (the outbox event and the run totals)."""
    rated = chunk.rated
    n = rated.inputs.n
    selected = np.asarray(idx, dtype=np.int64)
    version = rated.version
    currency_quantum = quantum(version.currency)
    to_money = _to_money(rated.scale)

    cols = line_columns(rated)
    position = np.full(n, -1, dtype=np.int64)  # bill → its row among the selected, -1 if not selected
    position[selected] = np.arange(selected.size)
    keep = position[cols.bill] >= 0
    codes = sorted({line.ledger_account for line in rated.lines})
    code_of_line = np.asarray([codes.index(line.ledger_account) for line in rated.lines], dtype=np.int64)
    credit = np.zeros((selected.size, max(len(codes), 1)), dtype=np.int64)
    np.add.at(credit, (position[cols.bill[keep]], code_of_line[cols.line[keep]]), -cols.amount[keep])
    n_lines = np.bincount(position[cols.bill[keep]], minlength=selected.size).tolist()
    rows, credited = np.nonzero(credit)
    bounds = np.searchsorted(rows, np.arange(selected.size + 1)).tolist()
    credit_amounts = to_money(credit[rows, credited])
    credit_codes = [codes[c] for c in credited.tolist()]
    subtotal, tax = to_money(rated.subtotal[selected]), to_money(rated.tax[selected])
    # quantize only appends zeros when the rating's places fit the currency's and the column's
    exact = rated.scale <= -int(currency_quantum.as_tuple().exponent) <= MONEY_PLACES
    totals = [
        Decimal(t).scaleb(-rated.scale).quantize(currency_quantum) for t in rated.total[selected].tolist()
    ]
    totals_scaled = to_money(rated.total[selected]) if exact else [_money_int(d) for d in totals]
    has_bank = version.net_metering is not None
    jobs = [chunk.jobs[k] for k in idx]
    dets = [chunk.determinants[k] for k in idx]
    legs: list[list[ScaledLeg]] = []
    for j, job in enumerate(jobs):
        entry: list[ScaledLeg] = []
        if job.a.kind != "prepaid":  # a prepaid statement posts nothing (see bill_entry_legs)
            entry = [(credit_codes[i], credit_amounts[i], None) for i in range(bounds[j], bounds[j + 1])]
            if totals_scaled[j] != 0:
                entry.insert(0, (RECEIVABLE, totals_scaled[j], job.a.account_id))
        legs.append(entry)
        if has_bank:
            bank = rated.terms(idx[j], totals[j]).get("banked_kwh")
            if bank is not None:
                dets[j] = {**dets[j], "terms": {"banked_kwh": bank}}
    m = len(idx)
    heads = _Heads(
        jobs, [version.code] * m, [version.currency or issue.currency] * m, subtotal, tax, totals,
        totals_scaled, dets, rated.inputs.wh_total[selected].tolist(), [chunk.estimated[k] for k in idx],
        legs, n_lines, [version.payment_terms] * m,
    )  # fmt: skip

    def lines(ids: list[int]) -> dict[str, list[Any]]:
        bill_ids = np.full(n, -1, dtype=np.int64)
        bill_ids[selected] = ids
        return line_table(rated, bill_ids, stored=True, skip_negative=selected.size != n)

    _insert(session, run, result, billing_period, heads, lines, issue, None)


def _to_money(scale: int) -> Callable[[npt.NDArray[np.int64]], list[int]]:
    """Integers of 10^-scale → the stored integers of 10⁻⁴ (exact; more places are refused)."""
    if scale <= MONEY_PLACES:
        factor = 10 ** (MONEY_PLACES - scale)
        return lambda a: (np.asarray(a, dtype=np.int64) * factor).tolist()
    return lambda a: [_money_int(Decimal(int(x)).scaleb(-scale)) for x in np.asarray(a).tolist()]


def _money_int(d: Decimal) -> int:
    """The stored integer of a money amount (the ``Money`` column's own bind conversion)."""
    out = Money.process_bind_param(d, _NO_DIALECT)
    assert out is not None
    return out


_NO_DIALECT: Any = None


def store_segmented(
    session: Session,
    run: BillRun,
    result: BillRunResult,
    billing_period: BillingPeriod,
    pending: dict[int, list[tuple[Job, RatedChunk, int]]],
    issue: Issue,
) -> None:
    """Merge the segments of each agreement into one bill (lines prefixed with the dates)."""
    heads = _Heads([], [], [], [], [], [], [], [], [], [], [], [], [])
    segments: list[list[dict[str, Any]]] = []
    merged_lines: list[list[tuple[RatedLine, int]]] = []
    for parts in pending.values():
        parts.sort(key=lambda t: t[0].seg)
        lines: list[tuple[RatedLine, int]] = []
        subtotal = tax = total = Decimal(0)
        kwh = Decimal(0)
        det: dict[str, Any] = {"segments": []}
        bill_segments = []
        for job, chunk, k in parts:
            segment_bill = chunk.rated.bill(k)
            label = f"{job.first:%d %b}–{job.last:%d %b}"
            for ln in segment_bill.lines:
                lines.append(
                    (RatedLine(ln.component, f"{label}: {ln.description}", ln.quantity, ln.unit, ln.rate,
                               ln.amount, ln.ledger_account), job.seg)
                )  # fmt: skip
            segment_kwh = Decimal(int(chunk.rated.inputs.wh_total[k])).scaleb(-3)
            subtotal += segment_bill.subtotal
            tax += segment_bill.tax
            total += segment_bill.total
            kwh += segment_kwh
            det["segments"].append(
                {"first": str(job.first), "last": str(job.last), "tariff_code": chunk.rated.version.code,
                 **chunk.determinants[k]}
            )  # fmt: skip
            bill_segments.append(
                {"first": job.first, "last": job.last, "tv": job.tv_id, "kwh": segment_kwh,
                 "total": segment_bill.total}
            )  # fmt: skip
        det.update(merge_determinants(det["segments"]))
        first_job, first_chunk, first_k = parts[0]
        first_bill = first_chunk.rated.bill(first_k)
        merged = RatedBill(
            first_bill.tariff_code, first_bill.currency, [ln for ln, _ in lines], subtotal, tax, total
        )
        agreement = first_job.a
        heads.jobs.append(first_job)
        heads.tariff_code.append(merged.tariff_code)
        heads.currency.append(merged.currency or issue.currency)
        heads.subtotal.append(_money_int(subtotal))
        heads.tax.append(_money_int(tax))
        heads.total.append(total)
        heads.total_scaled.append(_money_int(total))
        heads.det.append(det)
        heads.stated_terms.append(parts[-1][1].rated.version.payment_terms)
        heads.wh.append(int(kwh.scaleb(3)))
        heads.estimated.append(any(chunk.estimated[k] for _, chunk, k in parts))
        heads.legs.append(
            []
            if agreement.kind == "prepaid"  # a prepaid statement posts nothing (see bill_entry_legs)
            else [(c, _money_int(x), acct) for c, x, acct in bill_entry_legs(merged, agreement.account_id)]
        )
        heads.n_lines.append(len(lines))
        segments.append(bill_segments)
        merged_lines.append(lines)

    def rows(ids: list[int]) -> dict[str, list[Any]]:
        out = [
            (bill_id, i + 1, ln.component, ln.description, _scaled(ln.quantity, 3), ln.unit,
             _scaled(ln.rate, 6), _scaled(ln.amount, 4), ln.ledger_account, seg)
            for bill_id, lines in zip(ids, merged_lines, strict=True)
            for i, (ln, seg) in enumerate(lines)
        ]  # fmt: skip
        return {f: list(c) for f, c in zip(LINE_FIELDS, zip(*out, strict=True), strict=True)} if out else {}

    _insert(session, run, result, billing_period, heads, rows, issue, segments)


#: Determinants of a split bill that add up over its segments, and those that take their largest.
_SUMMED = ("kwh_total", "kvah_total", "kwh_export", "days_active")
_LARGEST = ("max_demand_kw",)


def daily_series(daily: dict[str, Any] | None) -> tuple[list[str], list[float]]:
    """The local days (ISO dates) and kWh of a bill's ``daily_kwh``: stored as the first day and
    the kWh of each consecutive day (bills issued before that list every date)."""
    if not daily or not daily.get("kwh"):
        return [], []
    kwh = list(daily["kwh"])
    if "dates" in daily:
        return list(daily["dates"])[: len(kwh)], kwh[: len(daily["dates"])]
    first = date.fromisoformat(str(daily["first"]))
    return [(first + timedelta(days=i)).isoformat() for i in range(len(kwh))], kwh


def merge_determinants(segments: list[dict[str, Any]]) -> dict[str, Any]:
    """The determinants of a bill from those of its segments (each computed over its own days):
    energy per TOU period and per day summed, demands the largest, estimated and missing
    shares weighted by the days of each segment; the rest (interval, channel, fingerprint) from
    the first segment, the sanctioned load and bank from the last. So the bill's tables add up
    to what was billed."""
    first, last = segments[0], segments[-1]
    out: dict[str, Any] = {k: v for k, v in first.items() if k not in ("first", "last", "tariff_code")}
    for key in _SUMMED:
        if any(key in sg for sg in segments):
            out[key] = round(sum(float(sg.get(key) or 0) for sg in segments), 3)
    for key in _LARGEST:
        out[key] = max(float(sg.get(key) or 0) for sg in segments)
    for key, pick in (("kwh_by_period", sum), ("max_demand_kw_by_period", max)):
        names = list(dict.fromkeys(n for sg in segments for n in (sg.get(key) or {})))
        out[key] = {n: round(pick(float((sg.get(key) or {}).get(n, 0)) for sg in segments), 3) for n in names}
    days = [max(int(sg.get("days_active") or 0), 0) for sg in segments]
    for key in ("estimated_share", "missing_share"):
        weighted = sum(float(sg.get(key) or 0) * d for sg, d in zip(segments, days, strict=True))
        out[key] = round(weighted / sum(days), 4) if sum(days) else 0.0
    daily: dict[str, float] = {}
    for sg in segments:
        for d, v in zip(*daily_series(sg.get("daily_kwh")), strict=True):
            daily[d] = daily.get(d, 0.0) + float(v)
    if daily:
        dates = sorted(daily)
        out["daily_kwh"] = {"first": dates[0], "kwh": [round(daily[d], 3) for d in dates]}
    for key in ("sanctioned_load_kw", "contract_demand_kva", "banked_kwh"):
        if key in last:
            out[key] = last[key]
    return out


def _scaled(v: Decimal | None, places: int) -> int | None:
    return None if v is None else int(v.scaleb(places))


def _insert(
    session: Session,
    run: BillRun,
    result: BillRunResult,
    billing_period: BillingPeriod,
    heads: _Heads,
    lines: LineTable,
    issue: Issue,
    segments: list[list[dict[str, Any]]] | None,
) -> None:
    period = run.period
    seq = _next_seq(session, period)
    issue_day = max(issue.issued_at.date(), billing_period.last)
    m = len(heads.jobs)
    numbers = [f"B-{period}-{seq + k + 1:06d}" for k in range(m)]
    agreements = [job.a for job in heads.jobs]
    kinds = [agreement.kind for agreement in agreements]
    posted = [k for k in range(m) if kinds[k] != "prepaid" and heads.legs[k]]  # prepaid: charged daily
    entry_ids = post_scaled(
        session, "bill", billing_period.last, [numbers[k] for k in posted],
        [f"bill {numbers[k]} {period} {heads.tariff_code[k]}" for k in posted],
        [heads.currency[k] for k in posted], [heads.legs[k] for k in posted],
    )  # fmt: skip
    entry: list[int | None] = [None] * m
    for k, e in zip(posted, entry_ids, strict=True):
        entry[k] = e
    now = issue.issued_at
    due = _due(issue_day, issue.due_days)
    replaced = [issue.replacing.get(agreement.id) for agreement in agreements]
    adjustment = [Decimal(0) if r is None else -r.paid for r in replaced]
    _record_terms(heads, kinds, issue, issue_day, due)
    columns: dict[str, list[Any]] = {
        "number": numbers,
        "service_agreement_id": [a.id for a in agreements],
        "account_id": [a.account_id for a in agreements],
        "kind": kinds,
        "status": ["statement" if k == "prepaid" else "issued" for k in kinds],
        "estimated": heads.estimated,
        "due_date": [None if k == "prepaid" else due for k in kinds],
        "tariff_code": [a.tariff_code for a in agreements],
        "tariff_version_id": [j.tv_id for j in heads.jobs],
        "currency": heads.currency,
        "total_kwh": heads.wh,
        "estimated_share": [d["estimated_share"] for d in heads.det],
        "subtotal": heads.subtotal,
        "tax": heads.tax,
        "total": heads.total_scaled,
        "determinants": heads.det,
        "journal_entry_id": entry,
        "issued_to": [
            {**a.party, "payment_mode": k, "tariff_code": a.tariff_code}
            for a, k in zip(agreements, kinds, strict=True)
        ],
        "replaces_bill_id": [None if r is None else r.bill.id for r in replaced],
        "adjustment": [_money_int(x) for x in adjustment],
    }
    same = {
        "bill_run_id": run.id, "period": period, "period_start": billing_period.start,
        "period_end": billing_period.end,
        "issued_at": now, "cycle": issue.cycle, "cancel_reason": "",
    }  # fmt: skip
    ids = _insert_bill_columns(session, columns, same)
    rows = lines(ids)
    for k in range(m):
        prior = replaced[k]
        if prior is not None and adjustment[k]:
            extra = (
                ids[k], heads.n_lines[k] + 1, "adjustment",
                f"Paid against bill {prior.bill.number}, cancelled ({prior.bill.cancel_reason})"[:200],
                None, "", None, columns["adjustment"][k], RECEIVABLE, 0,
            )  # fmt: skip
            for f, x in zip(LINE_FIELDS, extra, strict=True):
                rows.setdefault(f, []).append(x)
    if rows:
        insert_lines_columns(session, rows)
    if segments:
        session.execute(
            insert(BillSegment),
            [
                {"bill_id": b, "seq": s + 1, "start_date": seg["first"], "end_date": seg["last"],
                 "tariff_version_id": seg["tv"], "total_kwh": seg["kwh"], "total": seg["total"]}
                for b, segs in zip(ids, segments, strict=True)
                for s, seg in enumerate(segs)
            ],
        )  # fmt: skip
    payloads = [
        {"bill_id": i, "number": num, "account_id": a.account_id, "kind": a.kind, "status": st,
         "estimated": est, "period": period, "total": str(t), "adjustment": str(adj),
         "replaces_bill_id": rep, "currency": cur, "due_date": None if d is None else d.isoformat()}
        for i, num, a, st, est, t, adj, rep, cur, d in zip(
            ids, numbers, agreements, columns["status"], heads.estimated, heads.total, adjustment,
            columns["replaces_bill_id"], heads.currency, columns["due_date"], strict=True,
        )
    ]  # fmt: skip
    insert_columns(
        session, OUTBOX, {"message_id": _uuid4s(m), "key": numbers, "payload": payloads},
        same={"topic": "bill.issued", "created_at": now}, copy_min_rows=COPY_FROM_ROWS,
    )  # fmt: skip
    result.bills.extend(ids)
    result.estimated += sum(heads.estimated)
    result.statements += kinds.count("prepaid")
    for a, wh, t in zip(agreements, heads.wh, heads.total, strict=True):
        key = (a.customer_class, a.kind)
        tot = result.totals.get(key)
        if tot is None:
            tot = result.totals[key] = Totals()
        tot.count += 1
        tot.kwh += Decimal(wh).scaleb(-3)
        tot.amount += t


def _record_terms(heads: _Heads, kinds: list[str], issue: Issue, issue_day: date, due: date) -> None:
    """Record each postpaid bill's payment terms as issued (its tariff's, the utility's default
    for what the tariff leaves out) with their amounts and dates, in ``determinants.terms``."""
    resolved: dict[int, payment_terms.Terms] = {}
    for k, stated in enumerate(heads.stated_terms):
        if kinds[k] == "prepaid":
            continue
        terms = resolved.get(id(stated))
        if terms is None:
            terms = resolved[id(stated)] = payment_terms.resolve(stated, issue.payment_defaults)
        record = payment_terms.bill_terms(heads.total[k], terms, heads.currency[k], issue_day, due)
        if record:
            det = heads.det[k]
            heads.det[k] = {**det, "terms": {**det.get("terms", {}), **record}}


def _uuid4s(n: int) -> list[str]:
    """``n`` random (version 4) UUIDs as text, from one read of the system's random source."""
    b = np.frombuffer(os.urandom(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    b[:, 6] = (b[:, 6] & 0x0F) | 0x40
    b[:, 8] = (b[:, 8] & 0x3F) | 0x80
    h = b.tobytes().hex()
    return [
        f"{h[o : o + 8]}-{h[o + 8 : o + 12]}-{h[o + 12 : o + 16]}-{h[o + 16 : o + 20]}-{h[o + 20 : o + 32]}"
        for o in range(0, 32 * n, 32)
    ]


def _insert_bill_columns(session: Session, columns: dict[str, list[Any]], same: dict[str, Any]) -> list[int]:
    """Insert bills given column-wise (scaled columns as stored integers) and return their ids in
    order. PostgreSQL: ids drawn from the sequence first, then one ``COPY`` (a batched ``INSERT …
    RETURNING`` is slow to send); others: ``INSERT … RETURNING``."""
    ids = reserve_ids(session, BILL, len(columns["number"]))
    if ids is None:
        stored = raw_table(BILL, _SCALED_BILL)
        stmt = insert(stored).returning(stored.c.id, sort_by_parameter_order=True)
        return list(session.scalars(stmt, column_rows(columns, same)))
    insert_columns(session, BILL, {"id": ids, **columns}, same=same, copy_min_rows=0, scaled=_SCALED_BILL)
    return ids


def insert_lines_columns(session: Session, columns: dict[str, list[Any]]) -> None:
    """Insert bill lines given column-wise (:data:`LINE_FIELDS` → values; quantity, rate and
    amount as scaled integers of 10⁻³, 10⁻⁶, 10⁻⁴): PostgreSQL ``COPY``, others executemany."""
    insert_columns(session, BILL_LINE, columns, copy_min_rows=0, scaled=_SCALED_LINE)


def _due(issue_day: date, due_days: int) -> date:
    return issue_day + timedelta(days=due_days)
