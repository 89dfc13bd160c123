"""The monthly bill run: determinants from the measurement store, rating, bills and ledger postings.

:func:`run_bills` takes a Session and does NOT commit (the caller owns the transaction). Queries
are batched per run (agreements, meters, channels, tariff versions) and per chunk of agreements
(interval data); bills, bill lines, journal entries and outbox events are bulk inserted.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from sqlalchemy import func, insert, or_, select
from sqlalchemy.orm import Session

from meter2cash.cis.ledger import EntrySpec, ensure_chart, post_many
from meter2cash.cis.models import Account, Bill, BillLine, BillRun, ServiceAgreement
from meter2cash.cis.rating import RatedBill, RatingInput, rate_arrays
from meter2cash.cis.tariffs.loader import tariff_version_for
from meter2cash.cis.tariffs.model import TariffVersionDef
from meter2cash.core.errors import NotFound
from meter2cash.core.quality import Quality
from meter2cash.core.timeutil import local_frame, local_month_bounds, utcnow
from meter2cash.integration.models import OutboxMessage
from meter2cash.mdm.determinants import bill_determinants, daily_kwh
from meter2cash.mdm.models import Channel, Installation, ReadingType
from meter2cash.mdm.store import CHUNK, MeasurementStore
from meter2cash.mdm.tou import tou_period_index

#: Agreements rated per read of interval data (bounds memory: CHUNK_AGREEMENTS × intervals × 8 B).
CHUNK_AGREEMENTS = 1000
Progress = Callable[[int, int], None]


@dataclass(slots=True)
class Totals:
    count: int = 0
    kwh: Decimal = Decimal("0.000")
    amount: Decimal = Decimal("0.00")


@dataclass(slots=True)
class BillRunResult:
    """What a bill run did: ``bills`` are the new bill ids; ``skipped`` counts agreements already
    billed for the period; ``errors`` name agreements that could not be billed, with a code."""

    run_id: int
    period: str
    bills: list[int] = field(default_factory=list)
    skipped: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    totals: dict[tuple[str, str], Totals] = field(default_factory=dict)

    @property
    def total_amount(self) -> Decimal:
        return sum((t.amount for t in self.totals.values()), Decimal("0.00"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "period": self.period,
            "bills": len(self.bills),
            "bill_ids": self.bills,
            "skipped": self.skipped,
            "errors": self.errors,
            "totals": [
                {"customer_class": c, "kind": k, "count": t.count, "kwh": str(t.kwh), "amount": str(t.amount)}
                for (c, k), t in sorted(self.totals.items())
            ],
            "total_amount": str(self.total_amount),
        }


@dataclass(slots=True)
class _Agreement:
    id: int
    number: str
    account_id: int
    service_point_id: int
    tariff_code: str
    kind: str
    sanctioned_kw: Decimal
    start: date
    end: date | None
    customer_class: str
    channel_id: int = 0
    interval_s: int = 0


def _month(period: str) -> tuple[date, date]:
    year, month = (int(p) for p in period.split("-"))
    first = date(year, month, 1)
    return first, date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)


def _kwh_channels(session: Session, sp_ids: list[int], start: Any, end: Any) -> dict[int, tuple[int, int]]:
    """Service point → (channel_id, interval_s) of the kWh import interval channel of the meter
    installed there during the period (the latest installation; the shortest interval)."""
    best: dict[int, tuple[Any, int, int, int]] = {}
    found: list[tuple[int, Any, int, int]] = []
    for i in range(0, len(sp_ids), CHUNK):
        rows = session.execute(
            select(
                Installation.service_point_id, Installation.installed_at, Channel.id, ReadingType.interval_s
            )
            .join(Channel, Channel.meter_id == Installation.meter_id)
            .join(ReadingType, Channel.reading_type_id == ReadingType.id)
            .where(
                Installation.service_point_id.in_(sp_ids[i : i + CHUNK]),
                Installation.installed_at < end,
                or_(Installation.removed_at.is_(None), Installation.removed_at > start),
                ReadingType.unit == "kWh",
                ReadingType.direction == "import",
                ReadingType.interval_s.is_not(None),
                Channel.active.is_(True),
            )
        )
        found.extend((sp, inst, cid, interval) for sp, inst, cid, interval in rows if interval)
    for sp, installed, cid, interval in found:
        key = (installed, -interval, -cid, interval)
        if sp not in best or key[:3] > best[sp][:3]:
            best[sp] = key
    return {sp: (-v[2], v[3]) for sp, v in best.items()}


def _error(a: _Agreement, code: str, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "service_agreement": a.number, "service_agreement_id": a.id}


def run_bills(
    session: Session,
    period: str,
    *,
    tz: str,
    currency: str,
    on_progress: Progress | None = None,
    due_days: int = 15,
) -> BillRunResult:
    """Bill every service agreement active in the local month ``period`` (``YYYY-MM``).

    Agreements already billed for the period are skipped, so a re-run changes nothing. Each bill
    posts one journal entry: Dr 1100 (postpaid) or 2100 (prepaid wallet) with the customer
    account as sub-ledger, Cr revenue per component and Cr 2200 taxes. Emits ``bill.issued`` per
    bill through the outbox. Does not commit.
    """
    start, end = local_month_bounds(period, tz)
    first, last = _month(period)
    days_in_period = (last - first).days + 1
    ensure_chart(session)
    run = BillRun(period=period, period_start=start, period_end=end)
    session.add(run)
    session.flush()
    result = BillRunResult(run_id=run.id, period=period)

    rows = session.execute(
        select(
            ServiceAgreement.id,
            ServiceAgreement.number,
            ServiceAgreement.account_id,
            ServiceAgreement.service_point_id,
            ServiceAgreement.tariff_code,
            ServiceAgreement.payment_mode,
            ServiceAgreement.sanctioned_load_kw,
            ServiceAgreement.start_date,
            ServiceAgreement.end_date,
            Account.customer_class,
        )
        .join(Account, Account.id == ServiceAgreement.account_id)
        .where(
            ServiceAgreement.start_date <= last,
            or_(ServiceAgreement.end_date.is_(None), ServiceAgreement.end_date >= first),
        )
        .order_by(ServiceAgreement.id)
    ).all()
    billed = set(session.scalars(select(Bill.service_agreement_id).where(Bill.period == period)))
    agreements = [_Agreement(*r) for r in rows if r[0] not in billed]
    result.skipped = len(rows) - len(agreements)

    channels = _kwh_channels(session, sorted({a.service_point_id for a in agreements}), start, end)
    versions: dict[str, tuple[int, TariffVersionDef] | None] = {}
    by_id: dict[int, TariffVersionDef] = {}
    groups: dict[tuple[int, int], list[_Agreement]] = defaultdict(list)
    for a in agreements:
        if a.tariff_code not in versions:
            try:
                row, vdef = tariff_version_for(session, a.tariff_code, first)
                versions[a.tariff_code] = (row.id, vdef)
                by_id[row.id] = vdef
            except NotFound:
                versions[a.tariff_code] = None
        tv = versions[a.tariff_code]
        if tv is None:
            result.errors.append(
                _error(a, "billing.no_tariff", f"no version of tariff {a.tariff_code} on {first}")
            )
            continue
        if a.service_point_id not in channels:
            result.errors.append(
                _error(a, "billing.no_meter", "no meter with a kWh interval channel installed")
            )
            continue
        a.channel_id, a.interval_s = channels[a.service_point_id]
        groups[(tv[0], a.interval_s)].append(a)

    prefix = f"B-{period}-"
    last_number = session.scalar(select(func.max(Bill.number)).where(Bill.number.like(prefix + "%")))
    seq = int(last_number.rsplit("-", 1)[1]) if last_number else 0
    store = MeasurementStore(session)
    todo, done = len(agreements), result.skipped
    for (tv_id, interval_s), members in groups.items():
        vdef = by_id[tv_id]
        names = vdef.period_names
        demand_s = max(vdef.demand.interval_s, interval_s) if vdef.demand else interval_s
        pidx = None
        for c in range(0, len(members), CHUNK_AGREEMENTS):
            chunk = members[c : c + CHUNK_AGREEMENTS]
            ids = sorted({a.channel_id for a in chunk})
            window = store.read_window(ids, start, end, interval_s)
            starts = window.starts()
            if pidx is None:
                pidx = tou_period_index(starts, vdef.tou, tz)
            rows_of = np.asarray([window.row(a.channel_id) for a in chunk], dtype=np.int64)
            values, flags = active_only(window.values[rows_of], window.flags[rows_of], starts, chunk, tz)
            has_data: np.ndarray = np.any(~np.isnan(values), axis=1)
            for a, ok in zip(chunk, has_data.tolist(), strict=True):
                if not ok:
                    result.errors.append(_error(a, "billing.no_data", f"no interval data in {period}"))
            keep = np.flatnonzero(has_data)
            if keep.size:
                kept = [chunk[i] for i in keep.tolist()]
                det = bill_determinants(values[keep], flags[keep], pidx, len(names), interval_s, demand_s)
                dates, daily = daily_kwh(values[keep], starts, tz)
                days_active = [
                    ((min(a.end, last) if a.end else last) - max(a.start, first)).days + 1 for a in kept
                ]
                inp = RatingInput.from_kwh(
                    det.kwh_by_period,
                    det.max_demand_kw,
                    [float(a.sanctioned_kw) for a in kept],
                    days_in_period,
                    days_active,
                    [a.kind == "prepaid" for a in kept],
                    kwh_total=det.kwh_total,
                )
                rated = rate_arrays(vdef, inp).bills()
                extras = []
                for j, a in enumerate(kept):
                    d = det.as_dict(j, names)
                    d.update(
                        interval_s=interval_s,
                        channel_id=a.channel_id,
                        sanctioned_load_kw=str(a.sanctioned_kw),
                        days_in_period=days_in_period,
                        days_active=days_active[j],
                        daily_kwh={"dates": dates, "kwh": np.round(daily[j], 3).tolist()},
                    )
                    extras.append(d)
                wh_total = inp.wh_total.tolist()
                seq = _store_bills(
                    session,
                    run,
                    result,
                    kept,
                    rated,
                    extras,
                    wh_total,
                    tv_id,
                    seq,
                    start,
                    end,
                    last,
                    due_days,
                    currency,
                )
            done += len(chunk)
            if on_progress:
                on_progress(done - result.skipped, todo)

    run.finished_at = utcnow()
    run.status = "completed"
    run.bills = len(result.bills)
    run.skipped = result.skipped + len(result.errors)
    run.total = result.total_amount
    run.errors = result.errors[:1000]
    session.flush()
    return result


def active_only(
    values: np.ndarray, flags: np.ndarray, starts: np.ndarray, agreements: list[_Agreement], tz: str
) -> tuple[np.ndarray, np.ndarray]:
    """Blank out intervals outside each agreement's local start and end dates (inclusive).

    Consumption before an agreement starts or after it ends belongs to no bill of it.
    """
    local_day = local_frame(starts, tz)["date"].to_numpy().astype("datetime64[D]")
    first = np.array([a.start for a in agreements], dtype="datetime64[D]")
    last = np.array([a.end or date.max for a in agreements], dtype="datetime64[D]")
    active = (local_day[None, :] >= first[:, None]) & (local_day[None, :] <= last[:, None])
    if active.all():
        return values, flags
    return np.where(active, values, np.nan), np.where(active, flags, Quality.MISSING).astype(flags.dtype)


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


def _store_bills(
    session: Session,
    run: BillRun,
    result: BillRunResult,
    agreements: list[_Agreement],
    rated: list[RatedBill],
    determinants: list[dict[str, Any]],
    wh_total: list[int],
    tariff_version_id: int,
    seq: int,
    start: Any,
    end: Any,
    last: date,
    due_days: int,
    currency: str,
) -> int:
    """Insert bills, their lines, journal entries and ``bill.issued`` events; returns the last seq."""
    issue_day = max(utcnow().date(), last)
    numbers = [f"B-{run.period}-{seq + k + 1:06d}" for k in range(len(agreements))]
    specs, with_entry = [], []
    for k, (a, rb) in enumerate(zip(agreements, rated, strict=True)):
        legs = bill_entry_legs(rb, a.kind, a.account_id)
        if legs:
            memo = f"{a.kind} bill {numbers[k]} {run.period} {rb.tariff_code}"
            specs.append(EntrySpec("bill", last, numbers[k], memo, legs, rb.currency or currency))
            with_entry.append(k)
    entries = dict(zip(with_entry, (e.id for e in post_many(session, specs)), strict=True))
    bills = [
        Bill(
            number=numbers[k],
            bill_run_id=run.id,
            service_agreement_id=a.id,
            account_id=a.account_id,
            kind=a.kind,
            period=run.period,
            period_start=start,
            period_end=end,
            due_date=None if a.kind == "prepaid" else issue_day + timedelta(days=due_days),
            tariff_code=a.tariff_code,
            tariff_version_id=tariff_version_id,
            currency=rb.currency or currency,
            total_kwh=Decimal(wh_total[k]).scaleb(-3),
            estimated_share=determinants[k]["estimated_share"],
            subtotal=rb.subtotal,
            tax=rb.tax,
            total=rb.total,
            determinants=determinants[k],
            journal_entry_id=entries.get(k),
        )
        for k, (a, rb) in enumerate(zip(agreements, rated, strict=True))
    ]
    session.add_all(bills)
    session.flush()
    session.execute(
        insert(BillLine),
        [
            {
                "bill_id": b.id,
                "seq": i + 1,
                "component": ln.component,
                "description": ln.description,
                "quantity": ln.quantity,
                "unit": ln.unit,
                "rate": ln.rate,
                "amount": ln.amount,
                "ledger_account": ln.ledger_account,
            }
            for b, rb in zip(bills, rated, strict=True)
            for i, ln in enumerate(rb.lines)
        ],
    )
    session.execute(
        insert(OutboxMessage),
        [
            {
                "message_id": str(uuid.uuid4()),
                "topic": "bill.issued",
                "key": b.number,
                "payload": {
                    "bill_id": b.id,
                    "number": b.number,
                    "account_id": b.account_id,
                    "kind": b.kind,
                    "period": b.period,
                    "total": str(b.total),
                    "currency": b.currency,
                    "due_date": b.due_date.isoformat() if b.due_date else None,
                },
            }
            for b in bills
        ],
    )
    for a, b in zip(agreements, bills, strict=True):
        result.bills.append(b.id)
        t = result.totals.setdefault((a.customer_class, a.kind), Totals())
        t.count += 1
        t.kwh += b.total_kwh
        t.amount += b.total
    return seq + len(agreements)
