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
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    and_,
    any_,
    bindparam,
    cast,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.types import NullType

from meter2cash.cis.models import (
    Account,
    Bill,
    BillCycle,
    BillCycleAssignment,
    ContractTerm,
    Person,
    Premise,
    ServiceAgreement,
    ServicePoint,
    TariffVersion,
)
from meter2cash.cis.tariffs.loader import stored_version
from meter2cash.cis.tariffs.model import TariffVersionDef
from meter2cash.core.timeutil import local_month_bounds
from meter2cash.db import Quantity
from meter2cash.mdm.models import Channel, Installation, Meter, ReadingType
from meter2cash.mdm.store import CHUNK

MONTHLY = "monthly"
ONE_DAY = timedelta(days=1)


def id_filters(session: Session, column: Any, ids: Sequence[int]) -> list[ColumnElement[bool]]:
    """``column`` in ``ids`` as WHERE clauses, one per query to run (none for no ids). On
    PostgreSQL one array parameter (``column = ANY(:ids)``): a single bound value however many
    ids, where an IN list expands into a parameter per id when the statement is executed and
    costs Python time per id; elsewhere IN lists of at most ``CHUNK`` ids."""
    if not ids:
        return []
    if session.get_bind().dialect.name == "postgresql":
        # The array's text, untyped and cast to integer[] in the statement: PostgreSQL folds it
        # into a constant when planning (so a scan hashes it), and Python makes it in one join.
        # A list would be adapted element by element, as smallint[] for small ids: a cross-type
        # comparison PostgreSQL neither hashes nor matches to the index (measured 100x slower).
        array = "{" + ",".join(map(str, ids)) + "}"
        return [column == any_(cast(bindparam(None, array, type_=NullType()), ARRAY(Integer)))]
    return [column.in_(ids[i : i + CHUNK]) for i in range(0, len(ids), CHUNK)]


class ScaledValues(dict[int, Decimal]):
    """Stored scaled integers (see :class:`meter2cash.db.ScaledDecimal`) → ``Decimal``, each
    distinct value converted once: a fleet shares a few loads, so a bill run reading thousands
    of agreements makes a few Decimals instead of one per row."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = -scale

    def __missing__(self, raw: int) -> Decimal:
        value = self[raw] = Decimal(raw).scaleb(self.scale)
        return value

    def get_or_none(self, raw: int | None) -> Decimal | None:
        return None if raw is None else self[raw]


def _raw(column: Any) -> Any:
    """A :class:`~meter2cash.db.ScaledDecimal` column read as its stored integer."""
    return type_coerce(column, BigInteger)


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
    session: Session, sp_ids: Sequence[int], start: datetime, end: datetime
) -> dict[int, list[MeterUse]]:
    """Service point → the meters installed during ``[start, end)`` with their billed channels
    (the shortest kWh import interval of each meter), in installation order. Installations
    without a kWh import interval channel are left out."""
    inst, meter, chan, rt = (m.__table__.c for m in (Installation, Meter, Channel, ReadingType))
    stmt = (
        select(
            inst.id,
            inst.service_point_id,
            inst.installed_at,
            inst.removed_at,
            meter.serial,
            chan.id,
            rt.interval_s,
            rt.unit,
            rt.direction,
        )
        .join_from(Installation.__table__, Meter.__table__, meter.id == inst.meter_id)
        .join(Channel.__table__, chan.meter_id == inst.meter_id)
        .join(ReadingType.__table__, chan.reading_type_id == rt.id)
        .where(
            inst.installed_at < end,
            or_(inst.removed_at.is_(None), inst.removed_at > start),
            rt.unit.in_(("kWh", "kVAh")),
            rt.interval_s.is_not(None),
            chan.active.is_(True),
        )
    )
    # installation id → (service point, installed, removed, serial, [(interval, channel, unit, direction)])
    found: dict[int, tuple[int, datetime, datetime | None, str, list[tuple[int, int, str, str]]]] = {}
    for where in id_filters(session, inst.service_point_id, sp_ids):
        for inst_id, sp, installed, removed, serial, cid, interval, unit, direction in session.execute(
            stmt.where(where)
        ).all():
            if interval:
                rec = found.get(inst_id)
                if rec is None:
                    found[inst_id] = rec = (sp, installed, removed, serial, [])
                rec[4].append((interval, cid, unit, direction))
    out: dict[int, list[tuple[datetime, int, MeterUse]]] = defaultdict(list)
    for inst_id, (sp, installed, removed, serial, chans) in found.items():
        if len(chans) == 1:  # the usual meter: one kWh import channel
            interval, cid, unit, d = chans[0]
            if unit != "kWh" or d != "import":
                continue
            mc = MeterChannels(cid, interval)
        else:
            kwh = [(iv, cid) for iv, cid, unit, d in chans if unit == "kWh" and d == "import"]
            if not kwh:
                continue
            interval, cid = min(kwh)
            mc = MeterChannels(cid, interval)
            for iv, other, unit, d in sorted(chans, key=lambda c: c[1]):
                if iv != interval:
                    continue
                if unit == "kVAh" and d == "import" and mc.kvah is None:
                    mc.kvah = other
                elif unit == "kWh" and d == "export" and mc.export is None:
                    mc.export = other
        out[sp].append((installed, inst_id, MeterUse(serial, mc, installed, removed)))
    return {sp: [u for _, _, u in sorted(uses, key=lambda x: x[:2])] for sp, uses in out.items()}


def service_point_channels(
    session: Session, sp_ids: Sequence[int], start: datetime, end: datetime
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
    #: The customer and supply as the bill records them when issued (name, account, address,
    #: service point, agreement): see ``Bill.issued_to``.
    party: dict[str, str] = field(default_factory=dict)


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
        """The interval the job is billed at: its meters' longest (after an exchange between
        a 30-minute and a 15-minute meter, the 15-minute intervals are summed in pairs)."""
        assert self.meters, "a job is planned with at least one meter"
        return max(m.channels.interval_s for m in self.meters)

    @property
    def channel_ids(self) -> list[int]:
        return sorted({c for m in self.meters for c in m.channels.ids})


@dataclass(frozen=True, slots=True)
class Term:
    """A contract term as billing reads it."""

    effective_from: date
    sanctioned_kw: Decimal
    contract_kva: Decimal | None
    payment_mode: str = "postpaid"
    tariff_code: str = ""


def contract_terms(
    session: Session, sa_ids: Sequence[int] | Select[int], until: date
) -> dict[int, list[Term]]:
    """Agreement → its contract terms effective on or before ``until``, oldest first. The
    agreements are given by id or as a query of their ids (read in the same statement)."""
    ct = ContractTerm.__table__.c
    stmt = select(
        ct.service_agreement_id, ct.effective_from, _raw(ct.sanctioned_load_kw), _raw(ct.contract_demand_kva),
        ct.payment_mode, ct.tariff_code,
    ).where(ct.effective_from <= until)  # fmt: skip
    wheres: list[ColumnElement[bool]]
    if isinstance(sa_ids, Select):
        wheres = [ct.service_agreement_id.in_(sa_ids.scalar_subquery())]
    else:
        wheres = id_filters(session, ct.service_agreement_id, sa_ids)
    qty = ScaledValues(Quantity.scale)
    out: dict[int, list[Term]] = defaultdict(list)
    for where in wheres:
        for sa, frm, kw, kva, mode, tariff in session.execute(
            stmt.where(where).order_by(ct.service_agreement_id, ct.effective_from)
        ).all():
            out[sa].append(Term(frm, qty[kw], qty.get_or_none(kva), mode, tariff))
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


def sanctioned_kw_days(terms: list[Term], first: date, last: date) -> Decimal:
    """The sanctioned load in effect on each day of ``first..last`` (see :func:`term_on`),
    added up [kW·day]; 0 for no days."""
    total = Decimal(0)
    for k, t in enumerate(terms):
        lo = first if k == 0 else max(first, t.effective_from)
        hi = last if k + 1 == len(terms) else min(last, terms[k + 1].effective_from - ONE_DAY)
        if lo <= hi:
            total += t.sanctioned_kw * ((hi - lo).days + 1)
    return total


def error(a: Agreement, code: str, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "service_agreement": a.number, "service_agreement_id": a.id}


def select_agreements(
    session: Session, p: BillingPeriod, cycle: str = MONTHLY, agreement_ids: list[int] | None = None
) -> list[Agreement]:
    """Agreements active in the period (in the cycle, or the given ids), by id. The cycle's
    agreements come from one query: those assigned to the cycle, or for ``monthly`` those
    assigned to no other cycle."""
    sa, acc, asg = ServiceAgreement.__table__.c, Account.__table__.c, BillCycleAssignment.__table__.c
    per, sp, pr = Person.__table__.c, ServicePoint.__table__.c, Premise.__table__.c
    stmt = (
        select(
            sa.id,
            sa.number,
            sa.account_id,
            sa.service_point_id,
            sa.tariff_code,
            sa.payment_mode,
            _raw(sa.sanctioned_load_kw),
            _raw(sa.contract_demand_kva),
            sa.start_date,
            sa.end_date,
            acc.customer_class,
            acc.number,
            per.name,
            sp.code,
            pr.address,
            pr.city,
            pr.postcode,
        )
        .join_from(ServiceAgreement.__table__, Account.__table__, acc.id == sa.account_id)
        .join(Person.__table__, per.id == acc.person_id)
        .join(ServicePoint.__table__, sp.id == sa.service_point_id)
        .join(Premise.__table__, pr.id == sp.premise_id)
        .where(sa.start_date <= p.last, or_(sa.end_date.is_(None), sa.end_date >= p.first))
        .order_by(sa.id)
    )
    queries: list[Select[Any]]
    if agreement_ids is not None:
        queries = [stmt.where(w) for w in id_filters(session, sa.id, sorted(set(agreement_ids)))]
    elif cycle == MONTHLY:
        stmt = stmt.outerjoin(BillCycleAssignment.__table__, asg.service_agreement_id == sa.id)
        queries = [stmt.where(or_(asg.cycle_code.is_(None), asg.cycle_code == MONTHLY))]
    else:
        on = and_(asg.service_agreement_id == sa.id, asg.cycle_code == cycle)
        queries = [stmt.join(BillCycleAssignment.__table__, on)]
    qty = ScaledValues(Quantity.scale)
    return [
        Agreement(
            i, num, acc_id, sp_id, code, kind, qty[kw], None if kva is None else qty[kva], first, last, cls,
            party={"name": name, "account": acc_num, "customer_class": cls, "address": address, "city": city,
                   "postcode": postcode, "service_point": sp_code, "agreement": num},
        )
        for q in queries
        for (i, num, acc_id, sp_id, code, kind, kw, kva, first, last, cls, acc_num, name, sp_code, address,
             city, postcode) in session.execute(q).all()
    ]  # fmt: skip


def plan_jobs(
    session: Session,
    agreements: list[Agreement],
    p: BillingPeriod,
    errors: list[dict[str, Any]],
    versions: dict[int, TariffVersionDef],
    override: tuple[int, TariffVersionDef] | None = None,
) -> list[Job]:
    """Split each agreement's active days into segments: by its contract terms (a change of
    sanctioned load, contract demand, tariff or payment mode starts a segment on its date) and
    by the versions of the tariff in effect (``override``: one given version for the whole
    period, for shadow billing). Only the days of the bill's kind are billed: a period with
    postpaid days is a postpaid bill of those days (the prepaid engine charged the others);
    a period wholly prepaid is a statement (``a.kind``, ``a.tariff_code``: the period's). Every
    segment reads the meters installed at the service point during the period, each inside its
    own installation window, so a meter exchange needs no segment of its own."""
    by_code: dict[str, list[tuple[int, date, date | None]]] = defaultdict(list)
    terms = contract_terms(session, [a.id for a in agreements], p.last)
    codes = sorted({a.tariff_code for a in agreements} | {t.tariff_code for ts in terms.values() for t in ts})
    if override is None and codes:
        tv = TariffVersion.__table__.c
        for tv_id, code, frm, to in session.execute(
            select(tv.id, tv.code, tv.effective_from, tv.effective_to)
            .where(
                tv.code.in_(codes),
                tv.effective_from <= p.last,
                or_(tv.effective_to.is_(None), tv.effective_to >= p.first),
            )
            .order_by(tv.effective_from)
        ):
            by_code[code].append((tv_id, frm, to))
        missing = [v for vs in by_code.values() for v, _, _ in vs if v not in versions]
        if missing:
            for tv_id, definition in session.execute(select(tv.id, tv.definition).where(tv.id.in_(missing))):
                versions[tv_id] = stored_version(definition, f"tariff version {tv_id}")
    elif override is not None:
        versions[override[0]] = override[1]
    meters = service_point_meters(session, sorted({a.service_point_id for a in agreements}), p.start, p.end)
    # (tariff, first, last) → the segments by version, or None where a day has no version:
    # most agreements of a run share their tariff and days
    seg_cache: dict[tuple[str, date, date], list[tuple[date, date, int]] | None] = {}
    jobs: list[Job] = []
    for a in agreements:
        first = a.start if a.start > p.first else p.first
        last = p.last if a.end is None or a.end > p.last else a.end
        # Meters installed around the agreement's days (a day's margin either side: the exact
        # installation windows mask the intervals when they are read).
        lo, hi = first - ONE_DAY, last + ONE_DAY
        uses = [
            u
            for u in meters.get(a.service_point_id, ())
            if u.installed_at.date() <= hi and (u.removed_at is None or u.removed_at.date() >= lo)
        ]
        a.channels = uses[-1].channels if uses else None
        if not uses:
            errors.append(error(a, "billing.no_meter", "no meter with a kWh interval channel installed"))
            continue
        if len(uses) > 1 and any(
            max(u.channels.interval_s for u in uses) % u.channels.interval_s for u in uses
        ):
            # meters of different interval lengths are billed at the longest, which the others
            # must divide (15 and 30 minutes); 10 and 15 minutes have no common interval
            serials = ", ".join(f"{u.serial} ({u.channels.interval_s} s)" for u in uses)
            errors.append(
                error(
                    a,
                    "billing.interval_mismatch",
                    f"meters of interval lengths that do not divide each other in {p.code}: {serials}",
                )
            )
            continue
        mine = terms.get(a.id)
        if mine:
            pieces = _termed_pieces(a, mine, first, last, by_code, override, errors, p.code)
            if pieces is None:
                continue
            split = len(pieces) > 1
            jobs.extend(
                Job(a, k + 1, s, e, tv_id, kw, kva, uses, split, True)
                for k, (s, e, tv_id, kw, kva) in enumerate(pieces)
            )
            continue
        key = (a.tariff_code, first, last)
        segs: list[tuple[date, date, int]] | None
        if override is not None:
            segs = [(first, last, override[0])]
        elif key in seg_cache:
            segs = seg_cache[key]
        else:
            segs = seg_cache[key] = _tariff_segments(by_code.get(a.tariff_code, []), first, last)
        if segs is None:
            errors.append(error(a, "billing.no_tariff", f"no version of tariff {a.tariff_code} for {p.code}"))
            continue
        if len(segs) == 1:
            s, e, tv_id = segs[0]
            jobs.append(Job(a, 1, s, e, tv_id, a.sanctioned_kw, a.contract_kva, uses))
        else:
            jobs.extend(
                Job(a, k + 1, s, e, tv_id, a.sanctioned_kw, a.contract_kva, uses, True)
                for k, (s, e, tv_id) in enumerate(segs)
            )
    return jobs


def _tariff_segments(
    versions: list[tuple[int, date, date | None]], first: date, last: date
) -> list[tuple[date, date, int]] | None:
    """The days ``first..last`` cut by the tariff versions in effect (``None``: some day has
    no version)."""
    segs = []
    for tv_id, frm, to in versions:
        s, e = max(first, frm), min(last, to or last)
        if s <= e:
            segs.append((s, e, tv_id))
    covered = sum((e - s).days + 1 for s, e, _ in segs)
    if not segs or covered < (last - first).days + 1:
        return None
    return segs


def _termed_pieces(
    a: Agreement,
    terms: list[Term],
    first: date,
    last: date,
    by_code: dict[str, list[tuple[int, date, date | None]]],
    override: tuple[int, TariffVersionDef] | None,
    errors: list[dict[str, Any]],
    period: str,
) -> list[tuple[date, date, int, Decimal, Decimal | None]] | None:
    """The segments of an agreement with contract terms: the days ``first..last`` cut at the
    terms' dates, only the days of the bill's kind (postpaid when any day is), each cut again by
    the versions of its term's tariff; neighbours under the same version and contract are
    joined (a term restating the contract starts no segment). Sets ``a.kind`` and
    ``a.tariff_code`` to the period's. ``None`` (an error recorded) when a day has no tariff
    version."""
    cuts = [t.effective_from for t in terms if first < t.effective_from <= last]
    spans = [
        (lo, hi, term_on(terms, lo))
        for lo, hi in zip([first, *cuts], [*(c - ONE_DAY for c in cuts), last], strict=True)
    ]
    a.kind = "postpaid" if any(t.payment_mode == "postpaid" for _, _, t in spans) else "prepaid"
    spans = [sp for sp in spans if sp[2].payment_mode == a.kind]
    a.tariff_code = spans[-1][2].tariff_code
    out: list[tuple[date, date, int, Decimal, Decimal | None]] = []
    for lo, hi, t in spans:
        segs = (
            [(lo, hi, override[0])]
            if override is not None
            else _tariff_segments(by_code.get(t.tariff_code, []), lo, hi)
        )
        if segs is None:
            errors.append(error(a, "billing.no_tariff", f"no version of tariff {t.tariff_code} for {period}"))
            return None
        for s, e, tv in segs:
            if (
                out
                and out[-1][2] == tv
                and out[-1][3:] == (t.sanctioned_kw, t.contract_kva)
                and out[-1][1] + ONE_DAY == s
            ):
                out[-1] = (out[-1][0], e, tv, t.sanctioned_kw, t.contract_kva)
            else:
                out.append((s, e, tv, t.sanctioned_kw, t.contract_kva))
    return out
