"""The daily prepaid run: each prepaid wallet is charged for a day's consumption through its tariff.

The charge for a day is the rating of the month to date including the day minus the rating of the
month to date before it, so telescopic and non-telescopic slabs, TOU periods, the fixed charge
(prorated by days charged), the prepaid discount, taxes and bill rounding all come out exactly as
the month's bill would: the daily charges of a month add up to the rating of the whole month.

Consumption comes from the usage port (:mod:`meter2cash.mdm.usage.port`: the measured energy of
each wallet's days, by TOU period, in batches of wallets); the rating kernel runs over all
wallets of a batch at once. A wallet whose channel has
no data for the days is not charged (``prepaid.no_data``) and is caught up by a later run in the
same month. Postings: one journal entry per chunk and tariff: Dr 2100 Wallet per customer account,
Cr revenue per component and Cr 2200 taxes.

:func:`run_daily` takes a Session and does NOT commit (the caller owns the transaction).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from meter2cash.cis.ledger.journal import WALLET, EntrySpec, ensure_chart, post_entries
from meter2cash.cis.parties.models import ServiceAgreement, ServicePoint
from meter2cash.cis.parties.terms import Term, contract_terms, sanctioned_kw_days, term_on
from meter2cash.cis.prepaid.models import PrepaidCharge, Wallet
from meter2cash.cis.prepaid.policy import PrepaidPolicy
from meter2cash.cis.prepaid.settlement import settle_balance
from meter2cash.cis.prepaid.wallet import ensure_wallets, evaluate_wallets
from meter2cash.cis.rating.rate import rate_arrays
from meter2cash.cis.rating.types import RatingInput, split_wh
from meter2cash.cis.tariffs.definitions import TariffVersionDef
from meter2cash.cis.tariffs.loader import tariff_version_for
from meter2cash.core.errors import NotFound
from meter2cash.core.gcpause import gc_paused
from meter2cash.core.timeutil import days_in_month, local_midnight, month_start
from meter2cash.db_bulk import insert_rows
from meter2cash.mdm.determinants import Determinants
from meter2cash.mdm.usage.port import UsageBatch, UsageFactory, UsageQuery

CHUNK_WALLETS = 5000
Progress = Callable[[int, int], None]


@dataclass(slots=True)
class DailyResult:
    """What a daily run did: wallets charged, total charged [currency], energy [kWh], errors."""

    day: date
    charged: int = 0
    already: int = 0
    amount: Decimal = Decimal("0.0000")
    kwh: Decimal = Decimal("0.000")
    errors: list[dict[str, Any]] = field(default_factory=list)
    evaluation: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        codes: dict[str, int] = defaultdict(int)
        for e in self.errors:
            codes[e["code"]] += 1
        return {
            "day": self.day.isoformat(),
            "charged": self.charged,
            "already_charged": self.already,
            "amount": str(self.amount),
            "kwh": str(self.kwh),
            "errors": dict(codes),
            **self.evaluation,
        }


@dataclass(slots=True)
class WalletDay:
    """A wallet as the daily run charges it: its agreement, service point and tariff, the days
    it charges (``from_day..to_day``) and what the month's earlier charges left (``mtd_*``)."""

    wallet_id: int
    account_id: int
    agreement_id: int
    sp_id: int
    sp_code: str
    tariff: str
    sanctioned_kw: Decimal
    start: date
    last: date | None
    mtd_wh: list[int] | None = None
    mtd_demand_w: int = 0
    mtd_days: int = 0
    from_day: date = date.min
    #: The last day charged by this run (before ``day`` when the agreement stops being prepaid).
    to_day: date = date.min
    #: The agreement is postpaid on the run's day: what its last prepaid days leave in the
    #: wallet moves to receivables after they are charged.
    postpaid_now: bool = False
    #: From contract terms: the sanctioned load [W] of the month to date after and before the
    #: days charged (see :func:`month_loads_w`); ``None``: the agreement's own column.
    load_w: tuple[int, int] | None = None


def _avg_w(kw_days: Decimal, days: int) -> int:
    """An average load [W] over ``days`` from kW·days (half up)."""
    total = int(kw_days * 1000)  # quantities have 3 places: exact
    return (2 * total + days) // (2 * days)


def _after(last: date | None) -> date:
    return date.min if last is None else last + timedelta(days=1)


def prepaid_span(
    terms: list[Term] | None, mode: str, from_day: date, to_day: date
) -> tuple[date, date, str | None] | None:
    """The days a daily run charges a wallet: from the first prepaid day on or after
    ``from_day`` through the last day of that run of prepaid days under one tariff, at most
    ``to_day``; with the tariff of those days (``None``: the agreement's). ``None`` when no day
    of ``from_day..to_day`` is prepaid. Without contract terms the agreement's ``mode`` holds on
    every day."""
    if from_day > to_day:
        return None
    if not terms:
        return (from_day, to_day, None) if mode == "prepaid" else None
    day = from_day
    while day <= to_day:
        t = term_on(terms, day)
        nxt = next((u.effective_from for u in terms if u.effective_from > day), None)
        if t.payment_mode == "prepaid":
            last = to_day
            for u in terms:  # the run ends where the mode or the tariff changes
                if u.effective_from > day and (u.payment_mode != "prepaid" or u.tariff_code != t.tariff_code):
                    last = min(to_day, u.effective_from - timedelta(days=1))
                    break
            return day, last, t.tariff_code
        if nxt is None:
            return None
        day = nxt
    return None


def month_loads_w(terms: list[Term], charged_days: int, from_day: date, day: date) -> tuple[int, int]:
    """The sanctioned load [W] to rate the month to date with, after and before charging the
    days ``from_day..day`` (``charged_days`` days of the month were charged before them, up to
    the day before ``from_day``): the average over those days of the load in effect on each day
    (contract terms). So a day's charge per kW is at the load in effect on that day, a change
    dated in the future changes nothing before its date, and the charges of a month still add
    up to the rating of the month."""
    before = sanctioned_kw_days(terms, from_day - timedelta(days=charged_days), from_day - timedelta(days=1))
    after_days = charged_days + (day - from_day).days + 1
    after = _avg_w(before + sanctioned_kw_days(terms, from_day, day), after_days)
    return after, (_avg_w(before, charged_days) if charged_days else after)


@gc_paused()
def run_daily(
    session: Session,
    day: date,
    *,
    tz: str,
    currency: str,
    policy: PrepaidPolicy | None = None,
    at: datetime | None = None,
    evaluate: bool = True,
    on_progress: Progress | None = None,
    usage: UsageFactory,
) -> DailyResult:
    """Charge every prepaid wallet for local day ``day`` (and any uncharged earlier days of the month).

    A wallet already charged for ``day`` is skipped, so a re-run charges nothing twice. With
    ``evaluate``, balances are then checked (:func:`meter2cash.cis.prepaid.wallet.evaluate_wallets`)
    at ``at`` (default: the end of ``day``): alerts, grace, disconnect and reconnect requests.
    """
    ensure_chart(session)
    ensure_wallets(session, day)
    first = month_start(day)
    month_days = days_in_month(day)
    result = DailyResult(day)
    active = (
        ServiceAgreement.start_date <= day,
        or_(ServiceAgreement.end_date.is_(None), ServiceAgreement.end_date >= first),
    )
    rows = session.execute(
        select(
            Wallet.id,
            Wallet.account_id,
            ServiceAgreement.id,
            ServiceAgreement.service_point_id,
            ServicePoint.code,
            ServiceAgreement.tariff_code,
            ServiceAgreement.sanctioned_load_kw,
            ServiceAgreement.start_date,
            Wallet.last_charged_on,
            ServiceAgreement.payment_mode,
            ServiceAgreement.end_date,
        )
        .join(ServiceAgreement, ServiceAgreement.id == Wallet.service_agreement_id)
        .join(ServicePoint, ServicePoint.id == ServiceAgreement.service_point_id)
        .where(*active)
    ).all()
    # the contract terms of every agreement with a wallet (one query): the payment mode, tariff
    # and load in effect on each day; the agreement's columns hold the latest term
    terms = contract_terms(
        session,
        select(ServiceAgreement.id).join(Wallet, Wallet.service_agreement_id == ServiceAgreement.id),
        day,
    )
    wallets: list[WalletDay] = []
    for *cols, mode, end_date in rows:
        w = WalletDay(*cols)
        span = prepaid_span(
            terms.get(w.agreement_id), mode, max(first, w.start, _after(w.last)), min(day, end_date or day)
        )
        if span is None:
            if mode == "prepaid" and w.last is not None and w.last >= day:
                result.already += 1
            continue
        w.from_day, w.to_day, tariff = span
        w.tariff = tariff or w.tariff
        mine = terms.get(w.agreement_id)
        w.postpaid_now = (term_on(mine, day).payment_mode if mine else mode) == "postpaid"
        wallets.append(w)
    prev = {
        wid: (wh, dem, n, code)
        for wid, wh, dem, n, code in session.execute(
            select(
                PrepaidCharge.wallet_id,
                PrepaidCharge.mtd_wh,
                PrepaidCharge.mtd_demand_w,
                PrepaidCharge.mtd_days,
                PrepaidCharge.tariff_code,
            )
            .join(
                Wallet,
                and_(Wallet.id == PrepaidCharge.wallet_id, Wallet.last_charged_on == PrepaidCharge.day),
            )
            .where(PrepaidCharge.day >= first, PrepaidCharge.day < day)
        )
    }
    for w in wallets:
        # the month to date goes on from the last charge when it was on the same tariff and
        # the day before (a tariff change or postpaid days in between start it afresh)
        if w.wallet_id in prev and prev[w.wallet_id][3] == w.tariff and _after(w.last) == w.from_day:
            w.mtd_wh, w.mtd_demand_w, w.mtd_days = prev[w.wallet_id][:3]
        mine = terms.get(w.agreement_id)
        if mine:
            w.load_w = month_loads_w(mine, w.mtd_days, w.from_day, w.to_day)
    end = local_midnight(day + timedelta(days=1), tz)
    versions: dict[tuple[str, date], tuple[int, TariffVersionDef] | None] = {}
    groups: dict[tuple[int, date], list[WalletDay]] = defaultdict(list)
    defs: dict[int, TariffVersionDef] = {}
    for w in wallets:
        key = (w.tariff, w.to_day)
        if key not in versions:
            try:
                row, vdef = tariff_version_for(session, w.tariff, w.to_day)
                versions[key] = (row.id, vdef)
                defs[row.id] = vdef
            except NotFound:
                versions[key] = None
        tv = versions[key]
        if tv is None:
            result.errors.append(
                _err(w, "prepaid.no_tariff", f"no version of tariff {w.tariff} on {w.to_day}")
            )
        else:
            groups[(tv[0], w.to_day)].append(w)
    source = usage(session)
    done, todo = 0, len(wallets)
    for (tv_id, to_day), members in groups.items():
        vdef = defs[tv_id]
        # the measured energy of each wallet's days (gaps are not estimated: a day not yet
        # received is charged when a later run of the month catches it up)
        query = UsageQuery(
            service_point_ids=[w.sp_id for w in members],
            service_point_codes=[w.sp_code for w in members],
            first=[w.from_day for w in members],
            last=[to_day] * len(members),
            start=local_midnight(min(w.from_day for w in members), tz),
            end=local_midnight(to_day + timedelta(days=1), tz),
            tz=tz,
            tou=vdef.tou,
            period_names=vdef.period_names,
            demand_interval_s=vdef.demand.interval_s if vdef.demand else None,
            estimate_gaps=False,
            companions=False,
            details=False,
            chunk_rows=CHUNK_WALLETS,
        )
        for batch in source.usage(query):
            for problem in batch.problems:
                result.errors.append(_err(members[problem.row], problem.code_for("prepaid"), problem.message))
            if len(batch):
                chunk = [members[r] for r in batch.rows.tolist()]
                _charge_batch(session, result, chunk, batch, vdef, to_day, month_days, currency)
                done += len(chunk)
                if on_progress:
                    on_progress(done, todo)
    for w in wallets:
        if w.postpaid_now:
            sa = session.get(ServiceAgreement, w.agreement_id)
            if sa is not None:
                settle_balance(session, sa, "postpaid", on=w.to_day + timedelta(days=1), currency=currency)
    if evaluate:
        result.evaluation = evaluate_wallets(
            session,
            at or end - timedelta(seconds=1),
            tz=tz,
            policy=policy or PrepaidPolicy(),
            currency=currency,
        ).to_dict()
    session.flush()
    return result


@dataclass(slots=True)
class DayCharges:
    """What a run charges ``n`` wallets for their days: the energy charged [Wh] by TOU period
    (n, P), the month to date after them (energy (n, P) [Wh], demand (n,) [W], days (n,)), the
    amount of each wallet (n,) and the credit to each ledger account, in 10^-``scale`` currency."""

    wh: npt.NDArray[np.int64]
    mtd_wh: npt.NDArray[np.int64]
    mtd_demand_w: npt.NDArray[np.int64]
    mtd_days: npt.NDArray[np.int64]
    amount: npt.NDArray[np.int64]
    credits: dict[str, int]
    scale: int


def charge_days(
    vdef: TariffVersionDef, det: Determinants, wallets: list[WalletDay], day: date, month_days: int
) -> DayCharges:
    """The charge of each wallet for its days ``from_day..day`` (``det``: their determinants):
    the rating of the month to date with those days minus the rating without them. Pure."""
    n_periods = len(vdef.period_names)
    kept = wallets
    wh_day = split_wh(det.kwh_by_period, det.kwh_total)
    n = len(kept)
    prev_wh = np.zeros((n, n_periods), dtype=np.int64)
    for j, w in enumerate(kept):
        if w.mtd_wh and len(w.mtd_wh) == n_periods:
            prev_wh[j] = w.mtd_wh
    prev_dem = np.fromiter((w.mtd_demand_w for w in kept), dtype=np.int64, count=n)
    prev_days = np.fromiter((w.mtd_days for w in kept), dtype=np.int64, count=n)
    covered = np.fromiter(((day - w.from_day).days + 1 for w in kept), dtype=np.int64, count=n)
    day_dem = np.rint(np.asarray(det.max_demand_kw, dtype=np.float64) * 1000).astype(np.int64)
    sanctioned = np.rint(np.asarray([float(w.sanctioned_kw) for w in kept]) * 1000).astype(np.int64)
    sanctioned_before = sanctioned
    termed = [(j, w.load_w) for j, w in enumerate(kept) if w.load_w is not None]
    if termed:
        sanctioned_before = sanctioned.copy()
        for j, (after_w, before_w) in termed:
            sanctioned[j], sanctioned_before[j] = after_w, before_w
    dim = np.full(n, month_days, dtype=np.int64)
    prepaid = np.ones(n, dtype=bool)
    after_wh, after_dem, after_days = prev_wh + wh_day, np.maximum(prev_dem, day_dem), prev_days + covered
    before = rate_arrays(vdef, RatingInput(prev_wh, prev_dem, sanctioned_before, dim, prev_days, prepaid))
    after = rate_arrays(vdef, RatingInput(after_wh, after_dem, sanctioned, dim, after_days, prepaid))
    charge = after.total - before.total  # [10^-scale]
    credits: dict[str, int] = defaultdict(int)
    for la, lb in zip(after.lines, before.lines, strict=True):
        credits[la.ledger_account] += int((la.amount - lb.amount).sum())
    if sum(credits.values()) != int(charge.sum()):  # pragma: no cover - the kernel's own invariant
        raise AssertionError("prepaid charge components do not add up to the total")
    return DayCharges(wh_day, after_wh, after_dem, after_days, charge, dict(credits), after.scale)


def _err(w: WalletDay, code: str, message: str) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "wallet_id": w.wallet_id,
        "service_agreement_id": w.agreement_id,
    }


def _charge_batch(
    session: Session,
    result: DailyResult,
    chunk: list[WalletDay],
    batch: UsageBatch,
    vdef: TariffVersionDef,
    day: date,
    month_days: int,
    currency: str,
) -> None:
    """Rate and post one batch of wallets of one tariff version."""
    has_data = batch.valid > 0
    for w, ok in zip(chunk, has_data.tolist(), strict=True):
        if not ok:
            result.errors.append(_err(w, "prepaid.no_data", f"no interval data from {w.from_day} to {day}"))
    keep = np.flatnonzero(has_data)
    if keep.size == 0:
        return
    kept = [chunk[i] for i in keep.tolist()]
    n = len(kept)
    det = batch.det if keep.size == len(chunk) else batch.det.take(keep)
    day_charge = charge_days(vdef, det, kept, day, month_days)
    charge, credits, scale = day_charge.amount, day_charge.credits, day_charge.scale
    wh_day, after_wh, after_dem, after_days = (
        day_charge.wh,
        day_charge.mtd_wh,
        day_charge.mtd_demand_w,
        day_charge.mtd_days,
    )
    charges = charge.tolist()
    dec = {v: Decimal(v).scaleb(-scale) for v in set(charges)}
    legs: list[tuple[str, Decimal, int | None]] = [
        (WALLET, dec[a], w.account_id) for w, a in zip(kept, charges, strict=True) if a
    ]
    legs += [(code, -Decimal(v).scaleb(-scale), None) for code, v in sorted(credits.items()) if v]
    entry_id = None
    if legs:
        spec = EntrySpec(
            "prepaid.charge",
            day,
            f"PPD-{day.isoformat()}-{vdef.code}"[:64],
            f"prepaid daily charge {day} {vdef.code} ({n} wallets)",
            legs,
            vdef.currency or currency,
        )
        entry_id = post_entries(session, [spec])[0]
    insert_rows(
        session,
        PrepaidCharge.__table__,  # type: ignore[arg-type]
        [
            {
                "wallet_id": w.wallet_id,
                "account_id": w.account_id,
                "day": day,
                "tariff_code": vdef.code,
                "wh": int(wd),
                "mtd_wh": aw,
                "mtd_demand_w": int(ad),
                "mtd_days": int(dd),
                "amount": dec[a],
                "journal_entry_id": entry_id,
            }
            for w, wd, aw, ad, dd, a in zip(
                kept,
                wh_day.sum(axis=1).tolist(),
                after_wh.tolist(),
                after_dem.tolist(),
                after_days.tolist(),
                charges,
                strict=True,
            )
        ],
    )
    ids_kept = [w.wallet_id for w in kept]
    for i in range(0, len(ids_kept), 2000):
        session.execute(
            update(Wallet).where(Wallet.id.in_(ids_kept[i : i + 2000])).values(last_charged_on=day)
        )
    result.charged += n
    result.amount += Decimal(int(charge.sum())).scaleb(-scale)
    result.kwh += Decimal(int(wh_day.sum())).scaleb(-3)
