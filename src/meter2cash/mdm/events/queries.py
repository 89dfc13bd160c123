"""Event routing as services read it: a meter's events with their CIM type and episode, outages,
and the outage windows outage-aware validation needs. Functions take a Session and change nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, aliased

from meter2cash.core.errors import InvalidInput, NotFound
from meter2cash.core.timeutil import ensure_aware
from meter2cash.db_query import id_filters
from meter2cash.mdm.events.catalogue import BY_ID, CATEGORIES
from meter2cash.mdm.events.models import EventEpisode, Outage
from meter2cash.mdm.events.routing_rules import outage_slot_mask
from meter2cash.mdm.models import DistributionTransformer, Feeder, Meter, MeterEvent


@dataclass(frozen=True, slots=True)
class EventRow:
    """A stored meter event as the catalogue describes it, with the episode it belongs to."""

    id: int
    occurred_at: datetime
    code: str
    category: str
    description: str
    cim_type: str | None
    name: str | None
    priority: str | None
    episode_id: int | None
    episode_opened_at: datetime | None
    episode_closed_at: datetime | None


def meter_events(
    session: Session,
    serial: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    category: str | None = None,
    limit: int = 1000,
) -> list[EventRow]:
    """The events of meter ``serial`` in ``[start, end)``, oldest first, at most ``limit``
    (``meter.not_found``; ``events.bad_category`` for a category the catalogue lacks)."""
    meter_id = session.scalar(select(Meter.id).where(Meter.serial == serial))
    if meter_id is None:
        raise NotFound(f"no meter {serial}", code="meter.not_found", serial=serial)
    if category is not None and category not in CATEGORIES:
        raise InvalidInput(
            f"unknown category {category!r} (one of {', '.join(CATEGORIES)})",
            code="events.bad_category",
            field="category",
        )
    ep = aliased(EventEpisode)
    stmt = (
        select(MeterEvent, ep.id, ep.opened_at, ep.closed_at)
        .outerjoin(ep, or_(ep.occurrence_event_id == MeterEvent.id, ep.restoration_event_id == MeterEvent.id))
        .where(MeterEvent.meter_id == meter_id)
        .order_by(MeterEvent.occurred_at, MeterEvent.id)
        .limit(limit)
    )
    if start is not None:
        stmt = stmt.where(MeterEvent.occurred_at >= ensure_aware(start, "from"))
    if end is not None:
        stmt = stmt.where(MeterEvent.occurred_at < ensure_aware(end, "to"))
    if category is not None:  # the catalogue's category where the ID is known, else the stored one
        ids = [str(i) for i, e in BY_ID.items() if e.category == category]
        others = [str(i) for i, e in BY_ID.items() if e.category != category]
        stmt = stmt.where(
            or_(
                MeterEvent.code.in_(ids),
                and_(MeterEvent.category == category, MeterEvent.code.not_in(others)),
            )
        )
    out: list[EventRow] = []
    for ev, ep_id, opened, closed in session.execute(stmt).all():
        known = BY_ID.get(int(ev.code)) if ev.code.isdigit() and len(ev.code) < 6 else None
        cat = known.category if known else ev.category
        if category is not None and cat != category:
            continue
        out.append(
            EventRow(
                ev.id, ensure_aware(ev.occurred_at), ev.code, cat, ev.description,
                known.cim_type if known else None, known.name if known else None,
                known.priority if known else None, ep_id, opened, closed,
            )
        )  # fmt: skip
    return out


@dataclass(frozen=True, slots=True)
class OutageRow:
    """An outage with the codes of where it is."""

    id: int
    level: str
    dt: str | None
    feeder: str | None
    meter: str | None
    started_at: datetime
    restored_at: datetime | None
    meters_affected: int
    meters_restored: int
    notified_oms_at: datetime | None


def list_outages(
    session: Session, *, open_only: bool | None = None, limit: int = 100, offset: int = 0
) -> list[OutageRow]:
    """Outages, the latest started first: only open ones (``open_only=True``), only restored
    ones (``False``) or all (``None``)."""
    stmt = (
        select(Outage, DistributionTransformer.code, Feeder.code, Meter.serial)
        .outerjoin(DistributionTransformer, DistributionTransformer.id == Outage.dt_id)
        .outerjoin(Feeder, Feeder.id == Outage.feeder_id)
        .outerjoin(Meter, Meter.id == Outage.meter_id)
        .order_by(Outage.started_at.desc(), Outage.id.desc())
        .limit(limit)
        .offset(offset)
    )
    if open_only is True:
        stmt = stmt.where(Outage.restored_at.is_(None))
    elif open_only is False:
        stmt = stmt.where(Outage.restored_at.is_not(None))
    return [
        OutageRow(
            o.id, o.level, dt, feeder, serial, ensure_aware(o.started_at),
            ensure_aware(o.restored_at) if o.restored_at else None, o.meters_affected, o.meters_restored,
            ensure_aware(o.notified_oms_at) if o.notified_oms_at else None,
        )
        for o, dt, feeder, serial in session.execute(stmt).all()
    ]  # fmt: skip


@dataclass(frozen=True, slots=True)
class OutageWindows:
    """Per meter, the power-failure windows overlapping a period, clipped to it: ``[starts[k],
    ends[k])`` in epoch seconds (an open outage ends at the period's end)."""

    starts: dict[int, np.ndarray]
    ends: dict[int, np.ndarray]

    def mask(self, meter_id: int, day_start_s: int, slots: int, interval_s: int) -> np.ndarray:
        """Which intervals of a day the meter was without supply (all false without windows)."""
        if meter_id not in self.starts:
            return np.zeros(slots, dtype=bool)
        return outage_slot_mask(self.starts[meter_id], self.ends[meter_id], day_start_s, slots, interval_s)


def outage_windows(
    session: Session, meter_ids: Sequence[int], start: datetime, end: datetime
) -> OutageWindows:
    """The power-failure episodes (occurrence to restoration, whether or not coalesced into an
    outage) of the given meters that overlap ``[start, end)``, clipped to it.

    Outage-aware validation reads them for the meters of a chunk and, per channel-day, takes
    :meth:`OutageWindows.mask`: a zero or a missing interval inside an outage is real (no supply),
    not a fault to flag or estimate.
    """
    start, end = ensure_aware(start, "start"), ensure_aware(end, "end")
    lo, hi = int(start.timestamp()), int(end.timestamp())
    power = sorted(
        e.is15959_id for e in BY_ID.values() if e.category == "power" and e.restored_by and e.is15959_id
    )
    starts: dict[int, list[int]] = defaultdict(list)
    ends: dict[int, list[int]] = defaultdict(list)
    for where in id_filters(session, EventEpisode.meter_id, sorted(set(meter_ids))):
        for meter, opened, closed in session.execute(
            select(EventEpisode.meter_id, EventEpisode.opened_at, EventEpisode.closed_at).where(
                where,
                EventEpisode.event_id.in_(power),
                EventEpisode.opened_at < end,
                or_(EventEpisode.closed_at.is_(None), EventEpisode.closed_at > start),
            )
        ).all():
            starts[meter].append(max(lo, int(ensure_aware(opened).timestamp())))
            ends[meter].append(hi if closed is None else min(hi, int(ensure_aware(closed).timestamp())))
    return OutageWindows(
        {m: np.asarray(v, dtype=np.int64) for m, v in starts.items()},
        {m: np.asarray(v, dtype=np.int64) for m, v in ends.items()},
    )
