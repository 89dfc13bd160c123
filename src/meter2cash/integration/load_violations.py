"""Load violations: demand above the sanctioned load of the agreement's contract terms.

Three sources: the meter's own load-violation event (routed by :mod:`.event_routing`), interval
energy (kWh per block × 3600 / block length, a whole day of channel-day arrays at once) and the
maximum-demand register (``kw_md_register``: a new maximum above the sanctioned load). Each new
violation is a ``load_violation`` row, a ``cis.load_violation`` message in the outbox and an SMS
to the consumer through the notification queue (as the rules' ``[load_violation]`` targets say).
Functions take a Session, flush and never commit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from meter2cash.cis.parties.models import Account, Person, ServiceAgreement, ServicePoint
from meter2cash.cis.parties.terms import contract_terms, term_on
from meter2cash.core.timeutil import day_start, ensure_aware, utcnow
from meter2cash.db_query import id_filters
from meter2cash.events.outbox import emit
from meter2cash.mdm.events.models import EventAction, LoadViolation
from meter2cash.mdm.events.routing_config import LoadViolationRules, RoutingRules, load_rules
from meter2cash.mdm.events.routing_rules import demand_violations
from meter2cash.mdm.models import Channel, ChannelDay, Installation, Meter, ReadingType, RegisterRead
from meter2cash.mdm.store import decode_values
from meter2cash.notify.models import Notification

TOPIC = "cis.load_violation"
#: Interval channels whose energy gives demand.
ENERGY_CODES = ("kwh_import_15m", "kwh_import_30m", "kwh_import_60m")
MD_CODE = "kw_md_register"
_KW = Decimal("0.001")


@dataclass(frozen=True, slots=True)
class Supply:
    """Who a meter supplies on a day: service point, agreement, account, sanctioned load."""

    service_point_id: int
    service_point: str
    agreement_id: int | None
    account_id: int | None
    sanctioned_kw: Decimal | None
    phone: str


@dataclass(frozen=True, slots=True)
class Violation:
    """One demand above the sanctioned load, before it is recorded."""

    meter_id: int
    at: datetime
    demand_kw: Decimal | None
    source: str
    meter_event_id: int | None = None


@dataclass(slots=True)
class LoadViolationResult:
    """What detection and recording did."""

    day: date | None = None
    channel_days: int = 0
    registers: int = 0
    found: int = 0
    recorded: int = 0
    already_known: int = 0
    sms: int = 0
    ids: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat() if self.day else None,
            "channel_days": self.channel_days,
            "registers": self.registers,
            "found": self.found,
            "recorded": self.recorded,
            "already_known": self.already_known,
            "sms": self.sms,
        }


def supplies(session: Session, meter_ids: Sequence[int], day: date) -> dict[int, Supply]:
    """Meter → what it supplies on ``day``: the service point it was installed at, the
    agreement in force there and the sanctioned load of that agreement's term on ``day`` (the
    agreement's own column when it has no terms). Meters installed nowhere are left out."""
    start, end = day_start(day), day_start(day) + timedelta(days=1)
    ids = sorted(set(meter_ids))
    rows: list[Any] = []
    for where in id_filters(session, Installation.meter_id, ids):
        rows += session.execute(
            select(
                Installation.meter_id,
                ServicePoint.id,
                ServicePoint.code,
                ServiceAgreement.id,
                ServiceAgreement.account_id,
                ServiceAgreement.sanctioned_load_kw,
                Person.phone,
            )
            .join(ServicePoint, ServicePoint.id == Installation.service_point_id)
            .outerjoin(
                ServiceAgreement,
                and_(
                    ServiceAgreement.service_point_id == ServicePoint.id,
                    ServiceAgreement.start_date <= day,
                    or_(ServiceAgreement.end_date.is_(None), ServiceAgreement.end_date >= day),
                ),
            )
            .outerjoin(Account, Account.id == ServiceAgreement.account_id)
            .outerjoin(Person, Person.id == Account.person_id)
            .where(
                where,
                Installation.installed_at < end,
                or_(Installation.removed_at.is_(None), Installation.removed_at > start),
            )
            .order_by(Installation.meter_id, Installation.installed_at, ServiceAgreement.start_date)
        ).all()
    terms = contract_terms(session, sorted({r[3] for r in rows if r[3] is not None}), day)
    out: dict[int, Supply] = {}
    for meter, sp, code, sa, account, column_kw, phone in rows:  # the latest row of a meter wins
        kw = term_on(terms[sa], day).sanctioned_kw if sa in terms else column_kw
        out[meter] = Supply(sp, code, sa, account, kw if kw and kw > 0 else None, phone or "")
    return out


def _kw(value: float) -> Decimal:
    return Decimal(repr(float(value))).quantize(_KW, rounding=ROUND_HALF_UP)


def _day_energy(session: Session, day: date) -> tuple[list[tuple[int, int, int, bytes]], int]:
    """(channel, meter, interval, values) of every import-energy channel-day of ``day``."""
    rows = session.execute(
        select(ChannelDay.channel_id, Channel.meter_id, ChannelDay.interval_s, ChannelDay.values)
        .join(Channel, Channel.id == ChannelDay.channel_id)
        .join(ReadingType, ReadingType.id == Channel.reading_type_id)
        .where(ChannelDay.day == day, ReadingType.code.in_(ENERGY_CODES))
        .order_by(ChannelDay.channel_id)
    ).all()
    return [(r[0], r[1], r[2], r[3]) for r in rows], len(rows)


def _md_reads(session: Session, day: date) -> list[tuple[int, datetime, float, float | None]]:
    """(meter, read time, value, the channel's previous value) of the MD-register reads of ``day``."""
    start, end = day_start(day), day_start(day) + timedelta(days=1)
    rr = RegisterRead.__table__.alias("rr")
    prev = (
        select(rr.c.value)
        .where(rr.c.channel_id == RegisterRead.channel_id, rr.c.read_at < RegisterRead.read_at)
        .order_by(rr.c.read_at.desc())
        .limit(1)
        .scalar_subquery()
    )
    rows = session.execute(
        select(Channel.meter_id, RegisterRead.read_at, RegisterRead.value, prev)
        .join(Channel, Channel.id == RegisterRead.channel_id)
        .join(ReadingType, ReadingType.id == Channel.reading_type_id)
        .where(ReadingType.code == MD_CODE, RegisterRead.read_at >= start, RegisterRead.read_at < end)
        .order_by(Channel.meter_id, RegisterRead.read_at)
    ).all()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def detect_load_violations(
    session: Session, day: date, *, rules: RoutingRules | None = None, now: datetime | None = None
) -> LoadViolationResult:
    """Find and record the load violations of one UTC day from interval energy (the block of the
    day's highest demand, when any block is above the limit) and from new maximum-demand
    register values above the sanctioned load. Detecting a day again records nothing twice."""
    lv_rules = (rules or load_rules()).load_violation
    result = LoadViolationResult(day=day)
    energy, result.channel_days = _day_energy(session, day)
    md = _md_reads(session, day)
    result.registers = len(md)
    meters = sorted({r[1] for r in energy} | {r[0] for r in md})
    supply = supplies(session, meters, day)
    found: list[Violation] = []
    for interval_s in sorted({r[2] for r in energy}):
        rows = [r for r in energy if r[2] == interval_s and r[1] in supply]
        if not rows:
            continue
        values = np.stack([decode_values(r[3]) for r in rows])
        limit = np.array([float(supply[r[1]].sanctioned_kw or 0) for r in rows])
        check = demand_violations(values, interval_s, limit, tolerance_pct=lv_rules.tolerance_percent)
        for k in np.flatnonzero(check.violates):
            at = day_start(day) + timedelta(seconds=int(check.slot[k]) * interval_s)
            found.append(Violation(rows[k][1], at, _kw(check.max_kw[k]), "intervals"))
    factor = Decimal(100 + lv_rules.tolerance_percent) / 100
    for meter, read_at, value, previous in md:
        s = supply.get(meter)
        if s is None or s.sanctioned_kw is None or (previous is not None and value <= previous):
            continue
        if _kw(value) > s.sanctioned_kw * factor:
            found.append(Violation(meter, read_at, _kw(value), "md_register"))
    result.found = len(found)
    record_load_violations(session, found, lv_rules, now=now or utcnow(), result=result, supply={day: supply})
    return result


def record_load_violations(
    session: Session,
    found: Sequence[Violation],
    rules: LoadViolationRules,
    *,
    now: datetime,
    result: LoadViolationResult | None = None,
    supply: Mapping[date, Mapping[int, Supply]] | None = None,
) -> LoadViolationResult:
    """Store violations not stored yet (same meter, time and source), and for each new one the
    CIS message and the consumer's SMS the rules ask for, with the actions taken."""
    result = result or LoadViolationResult()
    if not found:
        return result
    now = ensure_aware(now, "now")
    known = set()
    meters = sorted({v.meter_id for v in found})
    for where in id_filters(session, LoadViolation.meter_id, meters):
        known |= {
            (m, ensure_aware(t), s)
            for m, t, s in session.execute(
                select(LoadViolation.meter_id, LoadViolation.at, LoadViolation.source).where(where)
            ).all()
        }
    days = sorted({v.at.date() for v in found})
    by_day = {
        d: supply[d] if supply and d in supply else supplies(session, [v.meter_id for v in found], d)
        for d in days
    }
    serials = dict(session.execute(select(Meter.id, Meter.serial).where(Meter.id.in_(meters))).all())
    for v in found:
        key = (v.meter_id, v.at, v.source)
        if key in known:
            result.already_known += 1
            continue
        known.add(key)
        s = by_day[v.at.date()].get(v.meter_id)
        row = LoadViolation(
            meter_id=v.meter_id,
            service_point_id=s.service_point_id if s else None,
            service_agreement_id=s.agreement_id if s else None,
            at=v.at,
            demand_kw=v.demand_kw,
            sanctioned_kw=s.sanctioned_kw if s else None,
            source=v.source,
            meter_event_id=v.meter_event_id,
        )
        session.add(row)
        session.flush()
        result.recorded += 1
        result.ids.append(row.id)
        payload = {
            "load_violation_id": row.id,
            "meter": serials.get(v.meter_id, ""),
            "service_point": s.service_point if s else None,
            "at": v.at.isoformat(),
            "demand_kw": None if v.demand_kw is None else str(v.demand_kw),
            "sanctioned_kw": None if s is None or s.sanctioned_kw is None else str(s.sanctioned_kw),
            "source": v.source,
        }
        actions = []
        if "cis" in rules.targets:
            emit(session, TOPIC, payload, key=str(row.id))
            actions.append(("cis", "load_violation", "queued"))
        if "sms" in rules.targets:
            status = _queue_sms(session, s, v)
            result.sms += status == "queued"
            actions.append(("sms", "notified", status))
        for target, action, status in actions:
            session.add(
                EventAction(
                    meter_event_id=v.meter_event_id, target=target, action=action, status=status, at=now,
                    detail={"load_violation_id": row.id, "source": v.source},
                )
            )  # fmt: skip
    session.flush()
    return result


def _queue_sms(session: Session, s: Supply | None, v: Violation) -> str:
    """Queue the consumer's SMS; ``skipped`` without an account or a phone number."""
    if s is None or s.account_id is None or not s.phone:
        return "skipped"
    session.add(
        Notification(
            account_id=s.account_id,
            channel="sms",
            recipient=s.phone,
            template="load_violation",
            context={
                "service_point": s.service_point,
                "demand": "" if v.demand_kw is None else f"{v.demand_kw.normalize():f} kW",
                "sanctioned": "" if s.sanctioned_kw is None else f"{s.sanctioned_kw.normalize():f} kW",
                "at": f"{v.at:%Y-%m-%d %H:%M} UTC",
            },
        )
    )
    return "queued"
