"""The daily prepaid run: each prepaid wallet is charged for a day's consumption through its tariff.

The charge for a day is the rating of the month to date including the day minus the rating of the
month to date before it, so telescopic and non-telescopic slabs, TOU periods, the fixed charge
(prorated by days charged), the prepaid discount, taxes and bill rounding all come out exactly as
the month's bill would: the daily charges of a month add up to the rating of the whole month.

Consumption comes from the measurement store (validated values of the agreement's kWh import
interval channel), read with one :meth:`MeasurementStore.read_window` per chunk of wallets; the
kernels (determinants, rating) run over all wallets of a chunk at once. A wallet whose channel has
no data for the days is not charged (``prepaid.no_data``) and is caught up by a later run in the
same month. Postings: one journal entry per chunk and tariff: Dr 2100 Wallet per customer account,
Cr revenue per component and Cr 2200 taxes.

:func:`run_daily` takes a Session and does NOT commit (the caller owns the transaction).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.orm import Session

from meter2cash.cis.ledger.journal import WALLET, EntrySpec, ensure_chart, post_entries
from meter2cash.cis.parties.models import ServiceAgreement
from meter2cash.cis.parties.terms import Term, contract_terms, sanctioned_kw_days, term_on
from meter2cash.cis.prepaid.models import PrepaidCharge, Wallet
from meter2cash.cis.prepaid.payment_mode import settle_balance
from meter2cash.cis.prepaid.policy import PrepaidPolicy
from meter2cash.cis.rating.rate import rate_arrays
from meter2cash.cis.rating.types import RatingInput, split_wh
from meter2cash.cis.tariffs.definitions import TariffVersionDef
from meter2cash.cis.tariffs.loader import tariff_version_for
from meter2cash.core.errors import NotFound
from meter2cash.core.gcpause import gc_paused
from meter2cash.db_bulk import insert_rows
from meter2cash.mdm.determinants import bill_determinants
from meter2cash.mdm.models import Channel, Installation, ReadingType
from meter2cash.mdm.store import MeasurementStore
from meter2cash.mdm.tou import tou_period_index

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


def local_midnight(day: date, tz: str) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(tz)).astimezone(UTC)


def ensure_wallets(session: Session, on: date) -> int:
    """Create the wallet of every prepaid agreement active on ``on`` that has none; returns how many."""
    rows = session.execute(
        select(ServiceAgreement.id, ServiceAgreement.account_id)
        .outerjoin(Wallet, Wallet.service_agreement_id == ServiceAgreement.id)
        .where(
            Wallet.id.is_(None),
            ServiceAgreement.payment_mode == "prepaid",
            ServiceAgreement.start_date <= on,
            or_(ServiceAgreement.end_date.is_(None), ServiceAgreement.end_date >= on),
        )
    ).all()
    if rows:
        session.execute(insert(Wallet), [{"service_agreement_id": s, "account_id": a} for s, a in rows])
    return len(rows)


def prepaid_channels(session: Session, start: datetime, end: datetime) -> dict[int, tuple[int, int]]:
    """Service point → (channel id, interval_s) of the kWh import interval channel of the meter
    installed during ``[start, end)`` at every prepaid service point (one query; the latest
    installation, then the shortest interval)."""
    rows = session.execute(
        select(Installation.service_point_id, Installation.installed_at, Channel.id, ReadingType.interval_s)
        .join(ServiceAgreement, ServiceAgreement.service_point_id == Installation.service_point_id)
        .join(Channel, Channel.meter_id == Installation.meter_id)
        .join(ReadingType, Channel.reading_type_id == ReadingType.id)
        .where(
            ServiceAgreement.payment_mode == "prepaid",
            Installation.installed_at < end,
            or_(Installation.removed_at.is_(None), Installation.removed_at > start),
            ReadingType.unit == "kWh",
            ReadingType.direction == "import",
            ReadingType.interval_s.is_not(None),
            Channel.active.is_(True),
        )
    )
    best: dict[int, tuple[datetime, int, int]] = {}
    for sp, installed, cid, interval in rows:
        key = (installed, -int(interval or 0), -int(cid))
        if sp not in best or key > best[sp]:
            best[sp] = key
    return {sp: (-k[2], -k[1]) for sp, k in best.items()}


def floor_to(ts: datetime, interval_s: int) -> datetime:
    """``ts`` floored to a multiple of ``interval_s`` seconds since the epoch (UTC)."""
    s = int(ts.timestamp())
    return datetime.fromtimestamp(s - s % interval_s, UTC)


@dataclass(slots=True)
class _W:
    wallet_id: int
    account_id: int
    agreement_id: int
    sp_id: int
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
    channel_id: int = 0
    interval_s: int = 0
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
) -> DailyResult:
    """Charge every prepaid wallet for local day ``day`` (and any uncharged earlier days of the month).

    A wallet already charged for ``day`` is skipped, so a re-run charges nothing twice. With
    ``evaluate``, balances are then checked (:func:`meter2cash.cis.prepaid.wallet.evaluate_wallets`)
    at ``at`` (default: the end of ``day``): alerts, grace, disconnect and reconnect requests.
    """
    ensure_chart(session)
    ensure_wallets(session, day)
    first = day.replace(day=1)
    days_in_month = ((first + timedelta(days=32)).replace(day=1) - first).days
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
            ServiceAgreement.tariff_code,
            ServiceAgreement.sanctioned_load_kw,
            ServiceAgreement.start_date,
            Wallet.last_charged_on,
            ServiceAgreement.payment_mode,
            ServiceAgreement.end_date,
        )
        .join(ServiceAgreement, ServiceAgreement.id == Wallet.service_agreement_id)
        .where(*active)
    ).all()
    # the contract terms of every agreement with a wallet (one query): the payment mode, tariff
    # and load in effect on each day; the agreement's columns hold the latest term
    terms = contract_terms(
        session,
        select(ServiceAgreement.id).join(Wallet, Wallet.service_agreement_id == ServiceAgreement.id),
        day,
    )
    wallets: list[_W] = []
    for *cols, mode, end_date in rows:
        w = _W(*cols)
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
    channels = prepaid_channels(session, local_midnight(first, tz), end)
    versions: dict[tuple[str, date], tuple[int, TariffVersionDef] | None] = {}
    groups: dict[tuple[int, int, date], list[_W]] = defaultdict(list)
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
        elif w.sp_id not in channels:
            result.errors.append(
                _err(w, "prepaid.no_meter", "no meter with a kWh interval channel installed")
            )
        else:
            w.channel_id, w.interval_s = channels[w.sp_id]
            groups[(tv[0], w.interval_s, w.to_day)].append(w)
    store = MeasurementStore(session)
    done, todo = 0, len(wallets)
    for (tv_id, interval_s, to_day), members in groups.items():
        for c in range(0, len(members), CHUNK_WALLETS):
            chunk = members[c : c + CHUNK_WALLETS]
            _charge_chunk(
                session, store, result, chunk, defs[tv_id], interval_s, to_day,
                local_midnight(to_day + timedelta(days=1), tz), days_in_month, tz, currency,
            )  # fmt: skip
            done += len(chunk)
            if on_progress:
                on_progress(done, todo)
    for w in wallets:
        if w.postpaid_now:
            sa = session.get(ServiceAgreement, w.agreement_id)
            if sa is not None:
                settle_balance(session, sa, "postpaid", on=w.to_day + timedelta(days=1), currency=currency)
    if evaluate:
        from meter2cash.cis.prepaid.wallet import evaluate_wallets

        result.evaluation = evaluate_wallets(
            session,
            at or end - timedelta(seconds=1),
            tz=tz,
            policy=policy or PrepaidPolicy(),
            currency=currency,
        ).to_dict()
    session.flush()
    return result


def _err(w: _W, code: str, message: str) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "wallet_id": w.wallet_id,
        "service_agreement_id": w.agreement_id,
    }


def _charge_chunk(
    session: Session,
    store: MeasurementStore,
    result: DailyResult,
    chunk: list[_W],
    vdef: TariffVersionDef,
    interval_s: int,
    day: date,
    end: datetime,
    days_in_month: int,
    tz: str,
    currency: str,
) -> None:
    """Read, rate and post one chunk of wallets of one tariff version and interval length."""
    n_periods = len(vdef.period_names)
    # an interval belongs to the local day in which it starts: where local midnight is not on the
    # interval grid (hourly data at UTC+05:30), both window ends are floored to the grid
    start = floor_to(local_midnight(min(w.from_day for w in chunk), tz), interval_s)
    end = floor_to(end, interval_s)
    ids = sorted({w.channel_id for w in chunk})
    window = store.read_window(ids, start, end, interval_s, include_raw=False)
    starts = window.starts()
    row_of = {cid: r for r, cid in enumerate(window.channel_ids)}
    rows = np.fromiter((row_of[w.channel_id] for w in chunk), dtype=np.int64, count=len(chunk))
    values, flags = window.values[rows], window.flags[rows]
    from_s = np.fromiter(
        (floor_to(local_midnight(w.from_day, tz), interval_s).timestamp() for w in chunk),
        dtype=np.int64,
        count=len(chunk),
    )
    before_start = starts[None, :] < from_s[:, None]
    if before_start.any():
        values = np.where(before_start, np.nan, values)
    has_data = np.any(~np.isnan(values), axis=1)
    for w, ok in zip(chunk, has_data.tolist(), strict=True):
        if not ok:
            result.errors.append(_err(w, "prepaid.no_data", f"no interval data from {w.from_day} to {day}"))
    keep = np.flatnonzero(has_data)
    if keep.size == 0:
        return
    kept = [chunk[i] for i in keep.tolist()]
    values, flags = values[keep], flags[keep]
    demand_s = max(vdef.demand.interval_s, interval_s) if vdef.demand else interval_s
    pidx = tou_period_index(starts, vdef.tou, tz)
    det = bill_determinants(values, flags, pidx, n_periods, interval_s, demand_s)
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
    dim = np.full(n, days_in_month, dtype=np.int64)
    prepaid = np.ones(n, dtype=bool)
    after_wh, after_dem, after_days = prev_wh + wh_day, np.maximum(prev_dem, day_dem), prev_days + covered
    before = rate_arrays(vdef, RatingInput(prev_wh, prev_dem, sanctioned_before, dim, prev_days, prepaid))
    after = rate_arrays(vdef, RatingInput(after_wh, after_dem, sanctioned, dim, after_days, prepaid))
    charge = after.total - before.total  # [10^-scale]
    credits: dict[str, int] = defaultdict(int)
    for la, lb in zip(after.lines, before.lines, strict=True):
        credits[la.ledger_account] += int((la.amount - lb.amount).sum())
    scale = after.scale
    if sum(credits.values()) != int(charge.sum()):  # pragma: no cover - the kernel's own invariant
        raise AssertionError("prepaid charge components do not add up to the total")
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
