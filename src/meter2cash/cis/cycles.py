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
    ContractTerm,
    ServiceAgreement,
    TariffVersion,
)
from meter2cash.cis.tariffs.model import TariffVersionDef
from meter2cash.core.timeutil import local_month_bounds
from meter2cash.mdm.models import Channel, Installation, Meter, ReadingType
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

    @property
    def ids(self) -> list[int]:
        return [c for c in (self.kwh, self.kvah, self.export) if c]


@dataclass(slots=True)
class MeterUse:
    """One installation of a meter at a service point: the meter's serial, its billed channels
    and the installation window ``[installed_at, removed_at)`` (UTC; ``removed_at`` ``None``
    while installed). A bill reads each meter's intervals inside its own window only."""

    serial: str
    channels: MeterChannels
    installed_at: datetime
    removed_at: datetime | None = None

    def covers(self, start: datetime, end: datetime) -> bool:
        """Installed over the whole of ``[start, end)``."""
        return self.installed_at <= start and (self.removed_at is None or self.removed_at >= end)


def service_point_meters(
    session: Session, sp_ids: list[int], start: datetime, end: datetime
) -> dict[int, list[MeterUse]]:
    """Service point → the meters installed during ``[start, end)`` with their billed channels
    (the shortest kWh import interval of each meter), in installation order. Installations
    without a kWh import interval channel are left out."""
    found: dict[tuple[int, int], list[tuple[int, int, str, str]]] = defaultdict(list)
    inst_of: dict[tuple[int, int], tuple[str, datetime, datetime | None]] = {}
    for i in range(0, len(sp_ids), CHUNK):
        rows = session.execute(
            select(
                Installation.service_point_id,
                Installation.id,
                Installation.installed_at,
                Installation.removed_at,
                Meter.serial,
                Channel.id,
                ReadingType.interval_s,
                ReadingType.unit,
                ReadingType.direction,
            )
            .join(Meter, Meter.id == Installation.meter_id)
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
        for sp, inst_id, installed, removed, serial, cid, interval, unit, direction in rows:
            if interval:
                found[(sp, inst_id)].append((int(interval), int(cid), unit, direction))
                inst_of[(sp, inst_id)] = (serial, installed, removed)
    out: dict[int, list[MeterUse]] = defaultdict(list)
    for key, chans in found.items():
        kwh = sorted((iv, cid) for iv, cid, unit, d in chans if unit == "kWh" and d == "import")
        if not kwh:
            continue
        interval, cid = kwh[0]
        mc = MeterChannels(cid, interval)
        for iv, other, unit, d in sorted(chans, key=lambda c: c[1]):
            if iv != interval:
                continue
            if unit == "kVAh" and d == "import" and mc.kvah is None:
                mc.kvah = other
            elif unit == "kWh" and d == "export" and mc.export is None:
                mc.export = other
        serial, installed, removed = inst_of[key]
        out[key[0]].append(MeterUse(serial, mc, installed, removed))
    for uses in out.values():
        uses.sort(key=lambda u: u.installed_at)
    return dict(out)


def service_point_channels(
    session: Session, sp_ids: list[int], start: datetime, end: datetime
) -> dict[int, MeterChannels]:
    """Service point → the billed channels of the meter installed last during ``[start, end)``."""
    return {sp: uses[-1].channels for sp, uses in service_point_meters(session, sp_ids, start, end).items()}


@dataclass(slots=True)
class History:
    """From an agreement's earlier bills: highest maximum demand of the ratchet months [kW]
    and the net-metering bank carried in [kWh]."""

    ratchet_kw: dict[int, float] = field(default_factory=dict)
    bank_kwh: dict[int, float] = field(default_factory=dict)


def bill_history(session: Session, sa_ids: list[int], period: str, ratchet_months: int) -> History:
    """Read the ratchet demand and the bank from the agreements' bills before ``period``
    (cancelled bills are ignored; the latest bill's bank is carried in; a split bill counts the
    highest demand of its segments and the bank all of them left)."""
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
            # A split bill: the highest demand of its segments, the bank left by all of them.
            parts = det.get("segments") or [det]
            if ratchet_months and p >= add_months(period, -ratchet_months):
                md = max(float(d.get("max_demand_kw") or 0) for d in parts)
                h.ratchet_kw[sa] = max(h.ratchet_kw.get(sa, 0.0), md)
            if any("banked_kwh" in d for d in parts) and p > latest.get(sa, ""):
                latest[sa] = p
                h.bank_kwh[sa] = sum(float(d.get("banked_kwh") or 0) for d in parts)
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
    """One agreement × one segment of the period: one tariff version, one contract term.

    ``sanctioned_kw``/``contract_kva`` are the contract in effect over the segment (the
    agreement's own columns when it has no :class:`ContractTerm`); ``meters`` are the meters
    installed at the service point during the period (their intervals count inside their own
    installation windows); ``split``: the bill has more than one segment."""

    a: Agreement
    seg: int
    first: date
    last: date
    tv_id: int
    sanctioned_kw: Decimal = Decimal(0)
    contract_kva: Decimal | None = None
    meters: list[MeterUse] = field(default_factory=list)
    split: bool = False
    termed: bool = False

    @property
    def interval_s(self) -> int:
        assert self.meters, "a job is planned with at least one meter"
        return self.meters[0].channels.interval_s

    @property
    def channel_ids(self) -> list[int]:
        return sorted({c for m in self.meters for c in m.channels.ids})


@dataclass(frozen=True, slots=True)
class Term:
    """A contract term as billing reads it."""

    effective_from: date
    sanctioned_kw: Decimal
    contract_kva: Decimal | None


def contract_terms(session: Session, sa_ids: list[int], until: date) -> dict[int, list[Term]]:
    """Agreement → its contract terms effective on or before ``until``, oldest first."""
    out: dict[int, list[Term]] = defaultdict(list)
    for i in range(0, len(sa_ids), CHUNK):
        rows = session.execute(
            select(
                ContractTerm.service_agreement_id,
                ContractTerm.effective_from,
                ContractTerm.sanctioned_load_kw,
                ContractTerm.contract_demand_kva,
            )
            .where(
                ContractTerm.service_agreement_id.in_(sa_ids[i : i + CHUNK]),
                ContractTerm.effective_from <= until,
            )
            .order_by(ContractTerm.service_agreement_id, ContractTerm.effective_from)
        )
        for sa, frm, kw, kva in rows:
            out[sa].append(Term(frm, kw, kva))
    return dict(out)


def term_on(terms: list[Term], day: date) -> Term:
    """The term in effect on ``day``: the latest one from ``day`` or before (the earliest one
    before the first term's date)."""
    current = terms[0]
    for t in terms:
        if t.effective_from > day:
            break
        current = t
    return current


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
    """Split each agreement's active days into segments: by the tariff versions in effect
    (``override``: one given version for the whole period, for shadow billing) and by its
    contract terms (a change of sanctioned load or contract demand starts a segment on its
    date). Every segment reads the meters installed at the service point during the period,
    each inside its own installation window, so a meter exchange needs no segment of its own."""
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
    meters = service_point_meters(session, sorted({a.service_point_id for a in agreements}), p.start, p.end)
    terms = contract_terms(session, [a.id for a in agreements], p.last)
    jobs: list[Job] = []
    for a in agreements:
        first, last = max(a.start, p.first), min(a.end or p.last, p.last)
        # Meters installed around the agreement's days (a day's margin either side: the exact
        # installation windows mask the intervals when they are read).
        lo, hi = first - timedelta(days=1), last + timedelta(days=1)
        uses = [
            u
            for u in meters.get(a.service_point_id, [])
            if u.installed_at.date() <= hi and (u.removed_at is None or u.removed_at.date() >= lo)
        ]
        a.channels = uses[-1].channels if uses else None
        if not uses:
            errors.append(error(a, "billing.no_meter", "no meter with a kWh interval channel installed"))
            continue
        if len({u.channels.interval_s for u in uses}) > 1:
            serials = ", ".join(f"{u.serial} ({u.channels.interval_s} s)" for u in uses)
            errors.append(
                error(
                    a,
                    "billing.interval_mismatch",
                    f"meters of different interval lengths in {p.code}: {serials}",
                )
            )
            continue
        if override is not None:
            segs = [(first, last, override[0])]
        else:
            segs = []
            for tv in by_code.get(a.tariff_code, []):
                s, e = max(first, tv.effective_from), min(last, tv.effective_to or last)
                if s <= e:
                    segs.append((s, e, tv.id))
            covered = sum((e - s).days + 1 for s, e, _ in segs)
            if not segs or covered < (last - first).days + 1:
                errors.append(
                    error(a, "billing.no_tariff", f"no version of tariff {a.tariff_code} for {p.code}")
                )
                continue
        mine = terms.get(a.id)
        pieces = (
            _split_by_terms(segs, mine)
            if mine
            else [(s, e, tv, a.sanctioned_kw, a.contract_kva) for s, e, tv in segs]
        )
        split = len(pieces) > 1
        jobs.extend(
            Job(a, k + 1, s, e, tv, kw, kva, uses, split, bool(mine))
            for k, (s, e, tv, kw, kva) in enumerate(pieces)
        )
    return jobs


def _split_by_terms(
    segs: list[tuple[date, date, int]], terms: list[Term]
) -> list[tuple[date, date, int, Decimal, Decimal | None]]:
    """Cut the tariff segments at the terms' dates; neighbours under the same version and the
    same contract are joined again (a term restating the contract starts no segment)."""
    out: list[tuple[date, date, int, Decimal, Decimal | None]] = []
    for s, e, tv in segs:
        cuts = [t.effective_from for t in terms if s < t.effective_from <= e]
        for lo, hi in zip([s, *cuts], [*(c - timedelta(days=1) for c in cuts), e], strict=True):
            t = term_on(terms, lo)
            if out and out[-1][2] == tv and out[-1][3:] == (t.sanctioned_kw, t.contract_kva):
                out[-1] = (out[-1][0], hi, tv, t.sanctioned_kw, t.contract_kva)
            else:
                out.append((lo, hi, tv, t.sanctioned_kw, t.contract_kva))
    return out
