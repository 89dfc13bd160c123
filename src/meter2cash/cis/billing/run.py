"""The bill run: determinants from the measurement store, rating, bills and ledger postings.

:func:`run_bills` takes a Session and does NOT commit (the caller owns the transaction). Queries
are batched per run (agreements, meters, channels, tariff versions, earlier bills) and per chunk
of agreements (interval data); bills, lines, journal entries and outbox events are bulk inserted
(:mod:`meter2cash.cis.billing.store`). Rating a chunk (:func:`rate_jobs`) is shared with shadow
billing and rebilling.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from contextlib import ExitStack
from dataclasses import dataclass, field, fields
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from meter2cash.cis.billing.models import Bill, BillCycle, BillRun
from meter2cash.cis.billing.periods import MONTHLY, BillingPeriod, billing_period
from meter2cash.cis.billing.planning import (
    Agreement,
    History,
    Job,
    bill_history,
    error,
    plan_jobs,
    select_agreements,
)
from meter2cash.cis.ledger.journal import ensure_chart
from meter2cash.cis.payments.allocation import apply_credit
from meter2cash.cis.rating.payment_terms import UTILITY_DEFAULT, Terms
from meter2cash.cis.rating.rate import rate_arrays
from meter2cash.cis.rating.types import RatedArrays, RatingInput
from meter2cash.cis.tariffs.definitions import TariffVersionDef
from meter2cash.core.gcpause import gc_paused
from meter2cash.core.quality import Quality
from meter2cash.core.timeutil import epoch_seconds, local_frame, utcnow
from meter2cash.dbthread import SessionThread, snapshot_session
from meter2cash.mdm.determinants import Determinants, WindowDeterminants, window_determinants
from meter2cash.mdm.store import MeasurementStore, Window
from meter2cash.mdm.tou import tou_period_index
from meter2cash.mdm.usage.channels import MeterChannels, MeterUse

if TYPE_CHECKING:
    from meter2cash.cis.billing.store import Replacement

#: Agreements rated per read of interval data (bounds memory: CHUNK_AGREEMENTS × intervals × 8 B).
CHUNK_AGREEMENTS = 1000
#: Chunks read ahead of the one being rated when reads go through a :class:`SessionThread`.
READ_AHEAD = 1
Progress = Callable[[int, int], None]
__all__ = ["Agreement", "Job", "billing_period", "plan_jobs", "rate_jobs", "run_bills", "select_agreements"]


@dataclass(slots=True)
class Totals:
    count: int = 0
    kwh: Decimal = Decimal("0.000")
    amount: Decimal = Decimal("0.00")


@dataclass(slots=True)
class BillRunResult:
    """What a bill run did: ``bills`` are the new bill ids (prepaid statements included);
    ``skipped`` counts agreements already billed for the period; ``errors`` name agreements
    that could not be billed, with a code; ``estimated`` counts bills marked estimated."""

    run_id: int
    period: str
    bills: list[int] = field(default_factory=list)
    skipped: int = 0
    estimated: int = 0
    statements: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    totals: dict[tuple[str, str], Totals] = field(default_factory=dict)

    @property
    def total_amount(self) -> Decimal:
        return sum((t.amount for (_, k), t in self.totals.items() if k != "prepaid"), Decimal("0.00"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "period": self.period,
            "bills": len(self.bills),
            "bill_ids": self.bills,
            "skipped": self.skipped,
            "estimated": self.estimated,
            "prepaid_statements": self.statements,
            "errors": self.errors,
            "totals": [
                {"customer_class": c, "kind": k, "count": t.count, "kwh": str(t.kwh), "amount": str(t.amount)}
                for (c, k), t in sorted(self.totals.items())
            ],
            "total_amount": str(self.total_amount),
        }


@dataclass(slots=True)
class RatedChunk:
    """Rated jobs of one tariff version: arrays, inputs and per-bill determinants (JSON)."""

    jobs: list[Job]
    rated: RatedArrays
    determinants: list[dict[str, Any]]
    estimated: list[bool]


def rate_jobs(
    session: Session,
    jobs: list[Job],
    p: BillingPeriod,
    tz: str,
    versions: dict[int, TariffVersionDef],
    errors: list[dict[str, Any]],
    db: SessionThread | None = None,
    reads: SessionThread | None = None,
) -> Iterator[RatedChunk]:
    """Read interval data and rate jobs per tariff version, interval length and chunk.

    Segments of a split bill share the month's slab limits and demand charges by their days
    (slabs as if the tariff said ``prorate_slabs``), so a split never gives a second first slab
    nor charges the month's demand twice. With ``db`` (a :class:`SessionThread` over
    ``session``) every database call goes through it, and interval data is read READ_AHEAD
    chunks ahead of the one being rated, through ``reads`` if given (a :class:`SessionThread`
    over a session that sees what ``session`` does, see
    :func:`~meter2cash.dbthread.snapshot_session`), else through ``db``."""
    groups: dict[tuple[int, int, bool], list[Job]] = defaultdict(list)
    for j in jobs:
        groups[(j.tv_id, j.interval_s, j.split)].append(j)
    db = db or SessionThread(session, enabled=False)  # without one: every call at once
    reads = reads or db
    store = MeasurementStore(reads.session)
    chunks = [
        (key, members[c : c + CHUNK_AGREEMENTS])
        for key, members in groups.items()
        for c in range(0, len(members), CHUNK_AGREEMENTS)
    ]

    def read(k: int) -> Future[Window]:
        (_, interval_s, _), chunk = chunks[k]
        return reads.submit(read_chunk, store, chunk, p, interval_s)

    ahead: deque[Future[Window]] = deque()
    prepared: dict[tuple[int, int, bool], _Calendar] = {}
    for k, ((tv_id, interval_s, split), chunk) in enumerate(chunks):
        while len(ahead) <= READ_AHEAD and k + len(ahead) < len(chunks):
            ahead.append(read(k + len(ahead)))
        window = ahead.popleft().result()
        starts = window.starts()
        key = (tv_id, interval_s, split)
        if key not in prepared:
            vdef = versions[tv_id]
            if split and vdef.energy is not None and not vdef.energy.prorate_slabs:
                energy = vdef.energy.model_copy(update={"prorate_slabs": True})
                vdef = vdef.model_copy(update={"energy": energy})
            local_days = local_frame(starts, tz)["date"].to_numpy().astype("datetime64[D]")
            dates, day_index = np.unique(local_days, return_inverse=True)
            prepared[key] = _Calendar(
                vdef, tou_period_index(starts, vdef.tou, tz), local_days, day_index, [str(d) for d in dates]
            )
        rc = _rate_chunk(session, window, starts, chunk, p, tz, prepared[key], errors, db.call)
        if rc is not None:
            yield rc


def read_chunk(store: MeasurementStore, jobs: list[Job], p: BillingPeriod, interval_s: int) -> Window:
    """The interval data of every channel of ``jobs`` over the period at ``interval_s``.

    Channels of meters with shorter intervals (a 15-minute meter that replaced a 30-minute one)
    are read at their own length and summed to ``interval_s``: a billed interval is missing
    if any of its parts is, and carries the flags of all of them."""
    by_length: dict[int, set[int]] = defaultdict(set)
    for j in jobs:
        for m in j.meters:
            by_length[m.channels.interval_s].update(m.channels.ids)
    window = store.read_window(
        sorted(by_length.pop(interval_s, set())), p.start, p.end, interval_s, include_raw=False
    )
    for length, ids in sorted(by_length.items()):
        fine = store.read_window(sorted(ids), p.start, p.end, length, include_raw=False)
        window = _append_rows(window, _coarsen(fine, interval_s))
    return window


def _coarsen(w: Window, interval_s: int) -> Window:
    """A window summed to a longer interval (a multiple of its own)."""
    k = interval_s // w.interval_s
    n, t = w.values.shape
    parts = w.values.reshape(n, t // k, k)
    values = np.where(np.isnan(parts).any(axis=2), np.nan, np.nansum(parts, axis=2))
    flags = np.bitwise_or.reduce(w.flags.reshape(n, t // k, k), axis=2).astype(w.flags.dtype)
    return Window(
        w.channel_ids, w.start, interval_s, values, flags, np.broadcast_to(np.nan, values.shape), w.versions
    )


def _append_rows(w: Window, other: Window) -> Window:
    """One window with the rows of both (same start and interval)."""
    versions = {**dict(w.versions.items()), **dict(other.versions.items())}
    values = np.vstack((w.values, other.values))
    flags = np.vstack((w.flags, other.flags))
    raw = np.broadcast_to(np.nan, values.shape)  # the received values are not read for billing
    return Window(w.channel_ids + other.channel_ids, w.start, w.interval_s, values, flags, raw, versions)


@dataclass(slots=True)
class _Calendar:
    """What every chunk of one tariff version and interval length shares: the version to rate
    with, each interval's TOU period, local day and day number, and the local days' ISO dates."""

    vdef: TariffVersionDef
    period_index: np.ndarray
    local_days: np.ndarray
    day_index: np.ndarray
    dates: list[str]


def _rate_chunk(
    session: Session,
    window: Window,
    starts: np.ndarray,
    chunk: list[Job],
    p: BillingPeriod,
    tz: str,
    cal: _Calendar,
    errors: list[dict[str, Any]],
    query: Callable[..., Any],
) -> RatedChunk | None:
    """Determinants and rating of one chunk of jobs of one tariff version (``None``: no job of
    the chunk has data; each is named in ``errors``)."""
    vdef = cal.vdef
    names = vdef.period_names
    interval_s = window.interval_s
    split = chunk[0].split
    demand_s = max(vdef.demand.interval_s, interval_s) if vdef.demand else interval_s
    ratchet = vdef.demand.ratchet_months if vdef.demand and vdef.demand.ratchet_percent else 0
    row = {cid: r for r, cid in enumerate(window.channel_ids)}
    per_channel = window.version_totals()
    # each job's active days are one span of columns: the local days ascend
    lo = np.searchsorted(cal.local_days, np.array([j.first for j in chunk], dtype="datetime64[D]"), "left")
    hi = np.searchsorted(cal.local_days, np.array([j.last for j in chunk], dtype="datetime64[D]"), "right")
    wd = _determinants(window, row, chunk, starts, lo, hi, cal, len(names), demand_s)
    has = wd.valid > 0
    for j, ok in zip(chunk, has.tolist(), strict=True):
        if not ok:
            errors.append(error(j.a, "billing.no_data", f"no interval data in {p.code}"))
    keep = np.flatnonzero(has)
    if not keep.size:
        return None
    kept = [chunk[i] for i in keep.tolist()]
    det = _take(wd.det, keep)
    cols = np.arange(len(starts))
    active = (cols[None, :] >= lo[keep, None]) & (cols[None, :] < hi[keep, None])
    extra = _other_channels(window, row, kept, starts, active)
    needs_history = bool(ratchet) or vdef.net_metering is not None
    hist = (
        query(bill_history, session, [j.a.id for j in kept], p.code, ratchet) if needs_history else History()
    )
    dates, daily = cal.dates, wd.daily[keep]
    days_active = [(j.last - j.first).days + 1 for j in kept]
    inp = RatingInput.from_kwh(
        det.kwh_by_period,
        det.max_demand_kw,
        [float(j.sanctioned_kw) for j in kept],
        p.days,
        days_active,
        [j.a.kind == "prepaid" for j in kept],
        kwh_total=det.kwh_total,
        kvah=extra["kvah"],
        export_kwh=extra["export"],
        # The bank carried in offsets the first segment's imports only (never twice).
        bank_kwh=[hist.bank_kwh.get(j.a.id, 0.0) if j.seg == 1 else 0.0 for j in kept]
        if vdef.net_metering
        else None,
        max_demand_kw_by_period=det.max_demand_kw_by_period,
        contract_kva=[float(j.contract_kva or 0) for j in kept],
        ratchet_kw=[hist.ratchet_kw.get(j.a.id, 0.0) for j in kept] if ratchet else None,
        months=p.months,
        period=p.code,
        prorate_demand=split,
    )
    rated = rate_arrays(vdef, inp)
    dets = []
    # channels of meters installed or removed inside the window count on their own days only
    spans = {k: sp for k, j in enumerate(kept) if (sp := _spans(j, window))}
    days_of = window.days_of({c for sp in spans.values() for c in sp}) if spans else {}
    est_share = det.estimated_share.tolist()
    daily_rows = np.round(daily, 3).tolist()
    for k, j in enumerate(kept):
        d = det.as_dict(k, names)
        d.update(
            interval_s=interval_s,
            channel_id=j.a.channels.kwh if j.a.channels else None,
            sanctioned_load_kw=str(j.sanctioned_kw),
            days_in_period=p.days,
            days_active=days_active[k],
            daily_kwh={"first": dates[0], "kwh": daily_rows[k]} if dates else {"kwh": []},
            data_version=data_version(per_channel, j.channel_ids, spans.get(k), days_of),
        )
        if j.termed:
            d["contract_demand_kva"] = None if j.contract_kva is None else str(j.contract_kva)
        if len(j.meters) > 1:
            used = meters_used(window, row, j, starts, active[k], tz)
            if len(used) > 1:
                d["meters"] = used
        if extra["kvah"] is not None:
            d["kvah_total"] = round(float(extra["kvah"][k]), 3)
        if extra["export"] is not None:
            d["kwh_export"] = round(float(extra["export"][k]), 3)
        if vdef.net_metering is not None and rated.bank_wh is not None:
            d["banked_kwh"] = int(rated.bank_wh[k]) / 1000
        dets.append(d)
    return RatedChunk(kept, rated, dets, [s > 0 for s in est_share])


def _determinants(
    window: Window,
    row: dict[int, int],
    jobs: list[Job],
    starts: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    cal: _Calendar,
    n_periods: int,
    demand_s: int,
) -> WindowDeterminants:
    """Determinants of every job of a chunk over its active span ``[lo, hi)`` (gaps estimated
    by the span's mean, see :func:`~meter2cash.mdm.determinants.fill_missing`): straight from
    the window's rows for a job read from one meter over the whole window, from combined rows
    (:func:`meter_rows`) for the others (meter exchanges)."""
    lo_w, hi_w = window.start, window.start + timedelta(seconds=len(starts) * window.interval_s)
    rows = np.empty(len(jobs), dtype=np.int64)
    mixed: list[int] = []
    for k, j in enumerate(jobs):
        m = j.meters[0]
        if len(j.meters) == 1 and m.channels.kwh and m.covers(lo_w, hi_w):
            rows[k] = row[m.channels.kwh]
        else:
            mixed.append(k)
    values, flags = window.values, window.flags
    if mixed:  # their combined rows go below the window's
        combined, combined_flags = meter_rows(window, row, [jobs[k] for k in mixed], starts, "kwh")
        rows[mixed] = len(window.channel_ids) + np.arange(len(mixed))
        values, flags = np.vstack((values, combined)), np.vstack((flags, combined_flags))
    return window_determinants(
        values, flags, rows, lo, hi, cal.period_index, n_periods, cal.day_index, len(cal.dates),
        window.interval_s, demand_s,
    )  # fmt: skip


def _take(det: Determinants, idx: np.ndarray) -> Determinants:
    """The determinants of the jobs ``idx``."""
    return Determinants(*(getattr(det, f.name)[idx] for f in fields(Determinants)))


def _pick(mc: MeterChannels, name: str) -> int | None:
    """The channel of ``name`` on a meter; kVAh falls back to kWh (power factor 1)."""
    if name == "kwh":
        return mc.kwh
    if name == "kvah":
        return mc.kvah or mc.kwh
    return mc.export


def _installed(m: MeterUse, starts: np.ndarray) -> np.ndarray:
    """Intervals starting inside the meter's installation window."""
    mask = starts >= epoch_seconds(m.installed_at)
    if m.removed_at is not None:
        mask &= starts < epoch_seconds(m.removed_at)
    return np.asarray(mask, dtype=bool)


def meter_rows(
    window: Window, row: dict[int, int], jobs: list[Job], starts: np.ndarray, name: str
) -> tuple[np.ndarray, np.ndarray]:
    """Each job's interval values and flags of channel ``name`` (``kwh``, ``kvah``, ``export``)
    over the window, combined over the service point's meters.

    Each meter counts only inside its installation window; where windows overlap the meter
    installed later wins, so no interval is counted twice, and an exchange in the middle of a
    day keeps both meters' intervals of that day. A meter without the channel gives 0 (export)
    or its kWh (kVAh). The usual case, one meter installed over the whole window, is one take
    of rows."""
    n, t = len(jobs), window.values.shape[1]
    lo, hi = window.start, window.start + timedelta(seconds=t * window.interval_s)
    plain: list[int] = []
    rows: list[int] = []
    mixed: list[int] = []
    for k, j in enumerate(jobs):
        cid = _pick(j.meters[0].channels, name)
        if len(j.meters) == 1 and cid and j.meters[0].covers(lo, hi):
            plain.append(k)
            rows.append(row[cid])
        else:
            mixed.append(k)
    if not mixed:
        return window.values[rows], window.flags[rows]
    values = np.full((n, t), np.nan)
    flags = np.full((n, t), Quality.MISSING, dtype=window.flags.dtype)
    values[plain], flags[plain] = window.values[rows], window.flags[rows]
    zeros = np.zeros(t)
    for k in mixed:
        for m in jobs[k].meters:
            cid = _pick(m.channels, name)
            mask = _installed(m, starts)
            values[k] = np.where(mask, window.values[row[cid]] if cid else zeros, values[k])
            flags[k] = np.where(mask, window.flags[row[cid]] if cid else 0, flags[k])
    return values, flags


def meters_used(
    window: Window, row: dict[int, int], j: Job, starts: np.ndarray, active: np.ndarray, tz: str
) -> list[dict[str, Any]]:
    """The meters whose intervals count in a job's active days: serial, kWh channel, the local
    day of installation/removal inside the period (``None`` outside it) and the kWh read."""
    zone = ZoneInfo(tz)
    out = []
    lo, hi = window.start, window.start + timedelta(seconds=len(starts) * window.interval_s)
    for m in j.meters:
        mask = _installed(m, starts) & active
        if not mask.any():
            continue
        kwh = float(np.nansum(np.where(mask, window.values[row[m.channels.kwh]], np.nan)))
        out.append(
            {
                "serial": m.serial,
                "channel_id": m.channels.kwh,
                "from": str(m.installed_at.astimezone(zone).date()) if m.installed_at > lo else None,
                "until": str(m.removed_at.astimezone(zone).date())
                if m.removed_at is not None and m.removed_at < hi
                else None,
                "kwh": round(kwh, 3),
            }
        )
    return out


def _other_channels(
    window: Window, row: dict[int, int], jobs: list[Job], starts: np.ndarray, active: np.ndarray
) -> dict[str, np.ndarray | None]:
    """kVAh and export totals [kWh] over the active window; meters without such a channel
    give their kWh for kVAh (PF 1) and 0 export."""
    out: dict[str, np.ndarray | None] = {}
    for name in ("kvah", "export"):
        if not any(getattr(m.channels, name) for j in jobs for m in j.meters):
            out[name] = None
            continue
        values, _ = meter_rows(window, row, jobs, starts, name)
        out[name] = np.nansum(np.where(active, values, np.nan), axis=1)
    return out


def data_version(
    per_channel: dict[int, tuple[int, int]],
    ids: list[int],
    spans: dict[int, tuple[date, date | None]] | None = None,
    days_of: Mapping[int, list[tuple[date, int]]] | None = None,
) -> dict[str, Any]:
    """Fingerprint of the stored channel-days read (``per_channel``: channel → (days, sum of
    versions)): their count and version sum over the bill's channels (every meter's). A later
    correction or late data changes it (see :mod:`meter2cash.cis.billing.rebill`).

    ``spans`` (channel → its meter's first and last UTC day at the service point, ``None``
    while installed) limits a channel to those days, counted from ``days_of`` (channel → its
    (day, version) pairs read): data a removed
    meter sends later, or a new meter sent before it was installed, is not billed and must not
    make the bill stale. They are recorded as ``spans`` (ISO days) for the staleness check."""
    spans = spans or {}
    days = total = 0
    for c in ids:
        span = spans.get(c)
        if span is None or days_of is None:
            n, v = per_channel.get(c, (0, 0))
        else:
            n, v = span_totals(days_of.get(c, []), *span)
        days, total = days + n, total + v
    out: dict[str, Any] = {"channels": ids, "days": days, "sum": total}
    if spans:
        out["spans"] = {
            str(c): [str(a), None if b is None else str(b)] for c, (a, b) in sorted(spans.items())
        }
    return out


def span_totals(days: list[tuple[date, int]], first: date, last: date | None) -> tuple[int, int]:
    """How many of a channel's ``(day, version)`` pairs fall from ``first`` to ``last`` (open
    when ``None``), and the sum of their versions."""
    vs = [v for d, v in days if d >= first and (last is None or d <= last)]
    return len(vs), sum(vs)


def _spans(j: Job, window: Window) -> dict[int, tuple[date, date | None]]:
    """The UTC days of each meter of a job that was not installed over the whole window."""
    lo = window.start
    hi = lo + timedelta(seconds=window.n_intervals * window.interval_s)
    out: dict[int, tuple[date, date | None]] = {}
    for m in j.meters:
        if m.covers(lo, hi):
            continue
        last = None if m.removed_at is None else (m.removed_at - timedelta(microseconds=1)).date()
        for c in m.channels.ids:
            out[c] = (m.installed_at.date(), last)
    return out


@gc_paused()
def run_bills(
    session: Session,
    period: str,
    *,
    tz: str,
    currency: str,
    on_progress: Progress | None = None,
    due_days: int = 15,
    cycle: str = MONTHLY,
    agreement_ids: list[int] | None = None,
    replacing: dict[int, Replacement] | None = None,
    payment_defaults: Terms = UTILITY_DEFAULT,
) -> BillRunResult:
    """Bill every service agreement of ``cycle`` active in the period starting ``period``.

    Postpaid agreements get a bill posted to the ledger (Dr 1100 with the customer account as
    sub-ledger, Cr revenue per component, Cr 2200 taxes). Prepaid agreements are charged
    daily by the prepaid engine, so they get a monthly *statement* (kind ``prepaid``, status
    ``statement``, lines for information, no journal entry). Agreements already billed for the
    period are skipped (a re-run changes nothing) unless they are being rebilled
    (``replacing``: agreement id → the cancelled bill and what was paid on it; see
    :mod:`meter2cash.cis.billing.rebill`).
    A version change inside the period splits the bill into segments. Emits ``bill.issued``
    per bill. Does not commit.

    On PostgreSQL the database work overlaps the rating: while a chunk of agreements is rated,
    the next chunk's interval data is read on a second connection that shares the
    transaction's snapshot (when the transaction has written nothing before the run; see
    :func:`~meter2cash.dbthread.snapshot_session`) and the previous chunk's bills are stored.
    """
    with snapshot_session(session) as snap:
        return _run_bills(
            session, snap, period, tz=tz, currency=currency, on_progress=on_progress, due_days=due_days,
            cycle=cycle, agreement_ids=agreement_ids, replacing=replacing, payment_defaults=payment_defaults,
        )  # fmt: skip


def _run_bills(
    session: Session,
    snap: Session | None,
    period: str,
    *,
    tz: str,
    currency: str,
    on_progress: Progress | None,
    due_days: int,
    cycle: str,
    agreement_ids: list[int] | None,
    replacing: dict[int, Replacement] | None,
    payment_defaults: Terms,
) -> BillRunResult:
    from meter2cash.cis.billing.store import Issue, store_bills

    cyc = session.get(BillCycle, cycle) if cycle != MONTHLY else None
    p = billing_period(period, tz, 2 if cyc is not None and cyc.frequency == "bimonthly" else 1)
    ensure_chart(session)
    run = BillRun(period=period, period_start=p.start, period_end=p.end)
    session.add(run)
    session.flush()
    result = BillRunResult(run_id=run.id, period=period)
    everyone = select_agreements(session, p, cycle, agreement_ids)
    replacing = replacing or {}
    issue = Issue(cycle, due_days, currency, replacing, payment_defaults)
    billed = set(
        session.scalars(
            select(Bill.service_agreement_id).where(Bill.period == period, Bill.status != "cancelled")
        )
    )
    agreements = [a for a in everyone if a.id not in billed or a.id in replacing]
    result.skipped = len(everyone) - len(agreements)
    versions: dict[int, TariffVersionDef] = {}
    jobs = plan_jobs(session, agreements, p, result.errors, versions)
    segmented = {a for a, n in _count(j.a.id for j in jobs).items() if n > 1}
    pending: dict[int, list[tuple[Job, RatedChunk, int]]] = defaultdict(list)
    done = 0
    # Reads and stores run on database threads: chunk k is rated while k-1 is stored and k+1
    # read (on the snapshot's connection if there is one), so Python and the database overlap.
    with ExitStack() as stack:
        db = stack.enter_context(SessionThread(session))
        reads = None if snap is None else stack.enter_context(SessionThread(snap))
        for rc in rate_jobs(session, jobs, p, tz, versions, result.errors, db, reads):
            whole = [k for k, j in enumerate(rc.jobs) if j.a.id not in segmented]
            if whole:
                args = (run, result, p, rc, whole, issue)
                db.submit(store_bills, session, *args)
            for k, j in enumerate(rc.jobs):
                if j.a.id in segmented:
                    pending[j.a.id].append((j, rc, k))
            done += len(rc.jobs)
            if on_progress:
                on_progress(done, len(jobs))
    if pending:
        from meter2cash.cis.billing.store import store_segmented

        store_segmented(session, run, result, p, pending, issue)
    if result.bills:
        # credit already on an account (an overpayment, a cancelled bill's payments) settles
        # the new bills: ageing, collections and statements see what is really open
        apply_credit(session)
    run.finished_at = utcnow()
    run.status = "completed"
    run.bills = len(result.bills)
    run.skipped = result.skipped + len(result.errors)
    run.total = result.total_amount
    run.errors = result.errors[:1000]
    session.flush()
    return result


def _count(items: Iterator[int]) -> dict[int, int]:
    out: dict[int, int] = defaultdict(int)
    for i in items:
        out[i] += 1
    return out
