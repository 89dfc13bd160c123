"""The bill run: determinants from the usage port, rating, bills and ledger postings.

:func:`run_bills` takes a Session and does NOT commit (the caller owns the transaction), and the
usage source it reads determinants from (:mod:`meter2cash.mdm.usage.port`: the MDM's, or an
external MDM's). Queries are batched per run (agreements, tariff versions, earlier bills) and
usage per batch of agreements; bills, lines, journal entries and outbox events are bulk inserted
(:mod:`meter2cash.cis.billing.store`). Rating a chunk (:func:`rate_jobs`) is shared with shadow
billing and rebilling.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import ExitStack
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from meter2cash.cis.billing.models import Bill, BillCycle, BillRun
from meter2cash.cis.billing.periods import MONTHLY, BillingPeriod, billing_period
from meter2cash.cis.billing.planning import (
    History,
    Job,
    bill_history,
    error,
    plan_jobs,
    select_agreements,
)
from meter2cash.cis.billing.results import BillRunResult, RatedChunk
from meter2cash.cis.billing.store import Issue, Replacement, store_bills, store_segmented
from meter2cash.cis.ledger.journal import ensure_chart
from meter2cash.cis.payments.allocation import apply_credit
from meter2cash.cis.rating.payment_terms import UTILITY_DEFAULT, Terms
from meter2cash.cis.rating.rate import rate_arrays
from meter2cash.cis.rating.types import RatingInput
from meter2cash.cis.tariffs.definitions import TariffVersionDef
from meter2cash.core.gcpause import gc_paused
from meter2cash.core.timeutil import Clock, utcnow
from meter2cash.dbthread import SessionThread, snapshot_session
from meter2cash.mdm.usage.port import UsageBatch, UsageFactory, UsageQuery, UsageSource

#: Agreements rated per read of interval data (bounds memory: CHUNK_AGREEMENTS × intervals × 8 B).
CHUNK_AGREEMENTS = 1000
#: Chunks read ahead of the one being rated when reads go through a :class:`SessionThread`.
READ_AHEAD = 1
Progress = Callable[[int, int], None]


def rate_jobs(
    session: Session,
    jobs: list[Job],
    p: BillingPeriod,
    tz: str,
    versions: dict[int, TariffVersionDef],
    errors: list[dict[str, Any]],
    usage: UsageSource,
    db: SessionThread | None = None,
    reads: SessionThread | None = None,
) -> Iterator[RatedChunk]:
    """Ask ``usage`` for the jobs' determinants and rate them per tariff version and batch.

    Segments of a split bill share the month's slab limits and demand charges by their days
    (slabs as if the tariff said ``prorate_slabs``), so a split never gives a second first slab
    nor charges the month's demand twice. With ``db`` (a :class:`SessionThread` over
    ``session``) every database call goes through it, and usage is read READ_AHEAD batches
    ahead of the one being rated, through ``reads`` if given (a :class:`SessionThread` over the
    session ``usage`` reads, see :func:`~meter2cash.dbthread.snapshot_session`), else through
    ``db``."""
    groups: dict[tuple[int, bool], list[Job]] = defaultdict(list)
    for j in jobs:
        groups[(j.tv_id, j.split)].append(j)
    db = db or SessionThread(session, enabled=False)  # without one: every call at once
    reads = reads or db
    rated: dict[tuple[int, bool], TariffVersionDef] = {}
    for tv_id, split in groups:
        vdef = versions[tv_id]
        if split and vdef.energy is not None and not vdef.energy.prorate_slabs:
            energy = vdef.energy.model_copy(update={"prorate_slabs": True})
            vdef = vdef.model_copy(update={"energy": energy})
        rated[(tv_id, split)] = vdef

    def batches() -> Iterator[tuple[TariffVersionDef, list[Job], UsageBatch]]:
        for key, members in groups.items():
            vdef = rated[key]
            query = UsageQuery(
                service_point_ids=[j.a.service_point_id for j in members],
                service_point_codes=[j.a.party.get("service_point", "") for j in members],
                first=[j.first for j in members],
                last=[j.last for j in members],
                start=p.start,
                end=p.end,
                tz=tz,
                tou=vdef.tou,
                period_names=vdef.period_names,
                demand_interval_s=vdef.demand.interval_s if vdef.demand else None,
                chunk_rows=CHUNK_AGREEMENTS,
            )
            for batch in usage.usage(query):
                yield vdef, members, batch

    source = batches()
    ahead: deque[Future[tuple[TariffVersionDef, list[Job], UsageBatch] | None]] = deque()
    while True:
        while len(ahead) <= READ_AHEAD:
            ahead.append(reads.submit(next, source, None))
        item = ahead.popleft().result()
        if item is None:
            break
        vdef, members, batch = item
        for problem in batch.problems:
            j = members[problem.row]
            errors.append(error(j.a, problem.code_for("billing"), f"{problem.message} in {p.code}"))
        if len(batch):
            rc = _rate_batch(
                session, batch, [members[r] for r in batch.rows.tolist()], p, vdef, errors, db.call
            )
            if rc is not None:
                yield rc


def _rate_batch(
    session: Session,
    batch: UsageBatch,
    chunk: list[Job],
    p: BillingPeriod,
    vdef: TariffVersionDef,
    errors: list[dict[str, Any]],
    query: Callable[..., Any],
) -> RatedChunk | None:
    """Rating of one batch of jobs of one tariff version (``None``: no job of the batch has
    data; each is named in ``errors``)."""
    names = vdef.period_names
    split = chunk[0].split
    ratchet = vdef.demand.ratchet_months if vdef.demand and vdef.demand.ratchet_percent else 0
    has = batch.valid > 0
    for j, ok in zip(chunk, has.tolist(), strict=True):
        if not ok:
            errors.append(error(j.a, "billing.no_data", f"no interval data in {p.code}"))
    keep = np.flatnonzero(has)
    if not keep.size:
        return None
    kept = [chunk[i] for i in keep.tolist()]
    whole = keep.size == len(chunk)
    det = batch.det if whole else batch.det.take(keep)
    kvah = None if batch.kvah_total is None else batch.kvah_total[keep]
    export = None if batch.kwh_export is None else batch.kwh_export[keep]
    needs_history = bool(ratchet) or vdef.net_metering is not None
    hist = (
        query(bill_history, session, [j.a.id for j in kept], p.code, ratchet) if needs_history else History()
    )
    dates, daily = batch.days, batch.daily_kwh if whole else batch.daily_kwh[keep]
    days_active = [(j.last - j.first).days + 1 for j in kept]
    inp = RatingInput.from_kwh(
        det.kwh_by_period,
        det.max_demand_kw,
        [float(j.sanctioned_kw) for j in kept],
        p.days,
        days_active,
        [j.a.kind == "prepaid" for j in kept],
        kwh_total=det.kwh_total,
        kvah=kvah,
        export_kwh=export,
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
    est_share = det.estimated_share.tolist()
    daily_rows = np.round(daily, 3).tolist()
    for k, (j, i) in enumerate(zip(kept, keep.tolist(), strict=True)):
        d = det.as_dict(k, names)
        d.update(
            interval_s=batch.interval_s,
            channel_id=batch.channel_ids[i],
            sanctioned_load_kw=str(j.sanctioned_kw),
            days_in_period=p.days,
            days_active=days_active[k],
            daily_kwh={"first": dates[0], "kwh": daily_rows[k]} if dates else {"kwh": []},
            data_version=batch.versions[i],
        )
        if j.termed:
            d["contract_demand_kva"] = None if j.contract_kva is None else str(j.contract_kva)
        if batch.meters[i]:
            d["meters"] = batch.meters[i]
        if kvah is not None:
            d["kvah_total"] = round(float(kvah[k]), 3)
        if export is not None:
            d["kwh_export"] = round(float(export[k]), 3)
        if vdef.net_metering is not None and rated.bank_wh is not None:
            d["banked_kwh"] = int(rated.bank_wh[k]) / 1000
        dets.append(d)
    return RatedChunk(kept, rated, dets, [s > 0 for s in est_share])


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
    usage: UsageFactory,
    clock: Clock = utcnow,
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
    per bill. Does not commit. ``usage`` builds the usage source determinants come from (see
    :mod:`meter2cash.mdm.usage.port`); ``clock`` says when the run starts and issues its bills.

    On PostgreSQL the database work overlaps the rating: while a chunk of agreements is rated,
    the next chunk's interval data is read on a second connection that shares the
    transaction's snapshot (when the transaction has written nothing before the run; see
    :func:`~meter2cash.dbthread.snapshot_session`) and the previous chunk's bills are stored.
    """
    with snapshot_session(session) as snap:
        return _run_bills(
            session, snap, period, tz=tz, currency=currency, on_progress=on_progress, due_days=due_days,
            cycle=cycle, agreement_ids=agreement_ids, replacing=replacing, payment_defaults=payment_defaults,
            usage=usage, clock=clock,
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
    usage: UsageFactory,
    clock: Clock,
) -> BillRunResult:
    cyc = session.get(BillCycle, cycle) if cycle != MONTHLY else None
    p = billing_period(period, tz, 2 if cyc is not None and cyc.frequency == "bimonthly" else 1)
    ensure_chart(session)
    run = BillRun(period=period, period_start=p.start, period_end=p.end, started_at=clock())
    session.add(run)
    session.flush()
    result = BillRunResult(run_id=run.id, period=period)
    everyone = select_agreements(session, p, cycle, agreement_ids)
    replacing = replacing or {}
    issue = Issue(cycle, due_days, currency, replacing, payment_defaults, issued_at=clock())
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
        source = usage(session if snap is None else snap)
        for rc in rate_jobs(session, jobs, p, tz, versions, result.errors, source, db, reads):
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
        store_segmented(session, run, result, p, pending, issue)
    if result.bills:
        # credit already on an account (an overpayment, a cancelled bill's payments) settles
        # the new bills: ageing, collections and statements see what is really open
        apply_credit(session)
    run.finished_at = clock()
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
