"""Bill cycles and billing periods, and what a bill run reads around the interval data: the
agreements of a cycle, their meters' channels, earlier bills, and the segments to rate.

A period is one local calendar month (``2026-10``) or two (a bimonthly cycle's period is named
by its first month). Cycles are rows of :class:`~meter2cash.cis.models.BillCycle`; agreements
without an assignment are billed monthly. Cycles are run by command (``m2c bill-run``), by date
(:func:`cycles_due` on a cycle's ``bill_day``), or by event (a final bill when an agreement
ends is part of the next run of its cycle). Functions taking a Session never commit.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from meter2cash.cis.models import (
    Account,
    Bill,
    BillCycle,
    BillCycleAssignment,
    ServiceAgreement,
    TariffVersion,
)
from meter2cash.cis.tariffs.model import TariffVersionDef
from meter2cash.core.timeutil import local_month_bounds
from meter2cash.mdm.models import Channel, Installation, ReadingType
from meter2cash.mdm.store import CHUNK

MONTHLY = "monthly"


@dataclass(frozen=True, slots=True)
class BillingPeriod:
    """``months`` local calendar months from ``code`` (``YYYY-MM``): dates and UTC bounds."""

    code: str
    months: int
    first: date
    last: date
    start: datetime
    end: datetime

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def month_codes(self) -> list[str]:
        y, m = self.first.year, self.first.month
        return [f"{y + (m - 1 + k) // 12}-{(m - 1 + k) % 12 + 1:02d}" for k in range(self.months)]


def add_months(code: str, k: int) -> str:
    y, m = (int(p) for p in code.split("-"))
    idx = y * 12 + (m - 1) + k
    return f"{idx // 12}-{idx % 12 + 1:02d}"


def billing_period(code: str, tz: str, months: int = 1) -> BillingPeriod:
    """The period of ``months`` local months starting with month ``code``."""
    start, _ = local_month_bounds(code, tz)
    last_code = add_months(code, months - 1)
    _, end = local_month_bounds(last_code, tz)
    y, m = (int(p) for p in code.split("-"))
    ly, lm = (int(p) for p in last_code.split("-"))
    last = date(ly + (lm == 12), lm % 12 + 1, 1) - timedelta(days=1)
    return BillingPeriod(code, months, date(y, m, 1), last, start, end)


def cycle_period(cycle: BillCycle | None, month: str, tz: str) -> BillingPeriod | None:
    """The period of ``cycle`` that starts in ``month``; ``None`` if no period starts then
    (a bimonthly cycle starts a period every other month)."""
    if cycle is None or cycle.frequency == MONTHLY:
        return billing_period(month, tz)
    if int(month[5:7]) % 2 != cycle.start_month_parity % 2:
        return None
    return billing_period(month, tz, 2)


def cycles_due(session: Session, on: date) -> list[tuple[str, str]]:
    """Date-driven schedule: ``(cycle code, period code)`` of every cycle whose ``bill_day`` is
    ``on``'s day and whose period ended in the previous month."""
    prev = add_months(f"{on.year}-{on.month:02d}", -1)
    out = []
    for c in session.scalars(select(BillCycle).where(BillCycle.bill_day == on.day)):
        months = 1 if c.frequency == MONTHLY else 2
        first = add_months(prev, -(months - 1))
        if months == 1 or int(first[5:7]) % 2 == c.start_month_parity % 2:
            out.append((c.code, first))
    if on.day == 1 and not any(code == MONTHLY for code, _ in out):
        out.insert(0, (MONTHLY, prev))
    return out


def cycle_members(session: Session, cycle: str) -> set[int] | None:
    """Agreement ids assigned to ``cycle``; for ``monthly``: ``None`` and the caller excludes
    every agreement assigned elsewhere (see :func:`assigned_elsewhere`)."""
    if cycle == MONTHLY:
        return None
    return set(
        session.scalars(
            select(BillCycleAssignment.service_agreement_id).where(BillCycleAssignment.cycle_code == cycle)
        )
    )


def assigned_elsewhere(session: Session) -> set[int]:
    return set(
        session.scalars(
            select(BillCycleAssignment.service_agreement_id).where(BillCycleAssignment.cycle_code != MONTHLY)
        )
    )


@dataclass(slots=True)
class MeterChannels:
    """The interval channels billed at a service point: kWh import (required), kVAh import and
    kWh export (optional, only at the kWh channel's interval length)."""

    kwh: int
    interval_s: int
    kvah: int | None = None
    export: int | None = None


def service_point_channels(
    session: Session, sp_ids: list[int], start: datetime, end: datetime
) -> dict[int, MeterChannels]:
    """Service point → its billed channels of the meter installed during ``[start, end)`` (the
    latest installation; the shortest kWh interval)."""
    found: dict[int, list[tuple[Any, int, int, str, str]]] = defaultdict(list)
    for i in range(0, len(sp_ids), CHUNK):
        rows = session.execute(
            select(
                Installation.service_point_id,
                Installation.installed_at,
                Channel.id,
                ReadingType.interval_s,
                ReadingType.unit,
                ReadingType.direction,
            )
            .join(Channel, Channel.meter_id == Installation.meter_id)
            .join(ReadingType, Channel.reading_type_id == ReadingType.id)
            .where(
                Installation.service_point_id.in_(sp_ids[i : i + CHUNK]),
                Installation.installed_at < end,
                or_(Installation.removed_at.is_(None), Installation.removed_at > start),
                ReadingType.unit.in_(("kWh", "kVAh")),
                ReadingType.interval_s.is_not(None),
                Channel.active.is_(True),
            )
        )
        for sp, inst, cid, interval, unit, direction in rows:
            if interval:
                found[sp].append((inst, int(interval), int(cid), unit, direction))
    out: dict[int, MeterChannels] = {}
    for sp, chans in found.items():
        latest = max(c[0] for c in chans)
        mine = [c for c in chans if c[0] == latest]
        kwh = sorted((iv, cid) for _, iv, cid, unit, d in mine if unit == "kWh" and d == "import")
        if not kwh:
            continue
        interval, cid = kwh[0]
        mc = MeterChannels(cid, interval)
        for _, iv, other, unit, d in sorted(mine, key=lambda c: c[2]):
            if iv != interval:
                continue
            if unit == "kVAh" and d == "import" and mc.kvah is None:
                mc.kvah = other
            elif unit == "kWh" and d == "export" and mc.export is None:
                mc.export = other
        out[sp] = mc
    return out


@dataclass(slots=True)
class History:
    """From an agreement's earlier bills: highest maximum demand of the ratchet months [kW]
    and the net-metering bank carried in [kWh]."""

    ratchet_kw: dict[int, float] = field(default_factory=dict)
    bank_kwh: dict[int, float] = field(default_factory=dict)


def bill_history(session: Session, sa_ids: list[int], period: str, ratchet_months: int) -> History:
    """Read the ratchet demand and the bank from the agreements' bills before ``period``
    (cancelled bills are ignored; the latest bill's bank is carried in)."""
    h = History()
    back = max(ratchet_months, 12)
    since = add_months(period, -back)
    latest: dict[int, str] = {}
    for i in range(0, len(sa_ids), CHUNK):
        rows = session.execute(
            select(Bill.service_agreement_id, Bill.period, Bill.determinants).where(
                Bill.service_agreement_id.in_(sa_ids[i : i + CHUNK]),
                Bill.period < period,
                Bill.period >= since,
                Bill.status != "cancelled",
                Bill.status != "shadow",
            )
        )
        for sa, p, det in rows:
            det = det or {}
            if ratchet_months and p >= add_months(period, -ratchet_months):
                md = float(det.get("max_demand_kw") or 0)
                h.ratchet_kw[sa] = max(h.ratchet_kw.get(sa, 0.0), md)
            if "banked_kwh" in det and p > latest.get(sa, ""):
                latest[sa] = p
                h.bank_kwh[sa] = float(det["banked_kwh"])
    return h


@dataclass(slots=True)
class Agreement:
    id: int
    number: str
    account_id: int
    service_point_id: int
    tariff_code: str
    kind: str
    sanctioned_kw: Decimal
    contract_kva: Decimal | None
    start: date
    end: date | None
    customer_class: str
    channels: MeterChannels | None = None


@dataclass(slots=True)
class Job:
    """One agreement × one segment of the period under one tariff version."""

    a: Agreement
    seg: int
    first: date
    last: date
    tv_id: int


def error(a: Agreement, code: str, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "service_agreement": a.number, "service_agreement_id": a.id}


def select_agreements(
    session: Session, p: BillingPeriod, cycle: str = MONTHLY, agreement_ids: list[int] | None = None
) -> list[Agreement]:
    """Agreements active in the period (in the cycle, or the given ids), by id."""
    stmt = (
        select(
            ServiceAgreement.id,
            ServiceAgreement.number,
            ServiceAgreement.account_id,
            ServiceAgreement.service_point_id,
            ServiceAgreement.tariff_code,
            ServiceAgreement.payment_mode,
            ServiceAgreement.sanctioned_load_kw,
            ServiceAgreement.contract_demand_kva,
            ServiceAgreement.start_date,
            ServiceAgreement.end_date,
            Account.customer_class,
        )
        .join(Account, Account.id == ServiceAgreement.account_id)
        .where(
            ServiceAgreement.start_date <= p.last,
            or_(ServiceAgreement.end_date.is_(None), ServiceAgreement.end_date >= p.first),
        )
        .order_by(ServiceAgreement.id)
    )
    if agreement_ids is not None:
        ids = sorted(set(agreement_ids))
        return [
            Agreement(*r)
            for i in range(0, len(ids), 500)
            for r in session.execute(stmt.where(ServiceAgreement.id.in_(ids[i : i + 500])))
        ]
    rows = [Agreement(*r) for r in session.execute(stmt)]
    members = cycle_members(session, cycle)
    if members is None:
        other = assigned_elsewhere(session)
        return [a for a in rows if a.id not in other]
    return [a for a in rows if a.id in members]


def plan_jobs(
    session: Session,
    agreements: list[Agreement],
    p: BillingPeriod,
    errors: list[dict[str, Any]],
    versions: dict[int, TariffVersionDef],
    override: tuple[int, TariffVersionDef] | None = None,
) -> list[Job]:
    """Split each agreement's active days into segments by the tariff versions in effect
    (``override``: one given version for the whole period, for shadow billing)."""
    by_code: dict[str, list[TariffVersion]] = defaultdict(list)
    codes = sorted({a.tariff_code for a in agreements})
    if override is None and codes:
        for tv in session.scalars(
            select(TariffVersion)
            .where(
                TariffVersion.code.in_(codes),
                TariffVersion.effective_from <= p.last,
                or_(TariffVersion.effective_to.is_(None), TariffVersion.effective_to >= p.first),
            )
            .order_by(TariffVersion.effective_from)
        ):
            by_code[tv.code].append(tv)
            if tv.id not in versions:
                versions[tv.id] = TariffVersionDef.model_validate(tv.definition)
    elif override is not None:
        versions[override[0]] = override[1]
    channels = service_point_channels(
        session, sorted({a.service_point_id for a in agreements}), p.start, p.end
    )
    jobs: list[Job] = []
    for a in agreements:
        first, last = max(a.start, p.first), min(a.end or p.last, p.last)
        a.channels = channels.get(a.service_point_id)
        if a.channels is None:
            errors.append(error(a, "billing.no_meter", "no meter with a kWh interval channel installed"))
            continue
        if override is not None:
            jobs.append(Job(a, 1, first, last, override[0]))
            continue
        segs = []
        for tv in by_code.get(a.tariff_code, []):
            s, e = max(first, tv.effective_from), min(last, tv.effective_to or last)
            if s <= e:
                segs.append((s, e, tv.id))
        covered = sum((e - s).days + 1 for s, e, _ in segs)
        if not segs or covered < (last - first).days + 1:
            errors.append(error(a, "billing.no_tariff", f"no version of tariff {a.tariff_code} for {p.code}"))
            continue
        jobs.extend(Job(a, k + 1, s, e, tv) for k, (s, e, tv) in enumerate(segs))
    return jobs
