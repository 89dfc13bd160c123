"""Tables of event routing: the routing cursor, event episodes, outages, what routing did,
tamper flags and load violations."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from meter2cash.core.timeutil import utcnow
from meter2cash.db import Base, Quantity, UTCDateTime


class EventRoutingState(Base):
    """Where routing stands: the last ``meter_event`` id routed, the rules it used, and the gap in
    the ids it waits at."""

    __tablename__ = "event_routing_state"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_event_id: Mapped[int] = mapped_column(Integer, default=0)
    rules_version: Mapped[str] = mapped_column(String(32), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: A gap in the event ids after the cursor (an insert not committed yet, or rolled back): the
    #: highest id seen when it was noticed, and when. Routing waits at a gap until it is old.
    gap_horizon: Mapped[int | None] = mapped_column(Integer)
    gap_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Outage(Base):
    """An outage of the meters under one distribution transformer or feeder (or one meter when
    its network is unknown), coalesced from their power failures; restored when every affected
    meter reported its restoration."""

    __tablename__ = "outage"
    id: Mapped[int] = mapped_column(primary_key=True)
    #: ``dt``, ``feeder`` or ``meter``.
    level: Mapped[str] = mapped_column(String(8))
    dt_id: Mapped[int | None] = mapped_column(ForeignKey("distribution_transformer.id"), index=True)
    feeder_id: Mapped[int | None] = mapped_column(ForeignKey("feeder.id"), index=True)
    meter_id: Mapped[int | None] = mapped_column(ForeignKey("meter.id"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    restored_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    meters_affected: Mapped[int] = mapped_column(Integer, default=0)
    meters_restored: Mapped[int] = mapped_column(Integer, default=0)
    notified_oms_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EventEpisode(Base):
    """An occurrence of a meter event and the restoration that closed it (open while
    ``closed_at`` is empty); for a non-rollover event (cover open), the occurrence alone."""

    __tablename__ = "event_episode"
    id: Mapped[int] = mapped_column(primary_key=True)
    meter_id: Mapped[int] = mapped_column(ForeignKey("meter.id"))
    #: The IS 15959 ID of the occurrence.
    event_id: Mapped[int] = mapped_column(Integer)
    #: The catalogue's code of the occurrence (``event.power_failure``).
    kind: Mapped[str] = mapped_column(String(64))
    #: The routing rule followed (``outage``, ``load_violation`` or a rule's name).
    rule: Mapped[str] = mapped_column(String(64), default="")
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    occurrence_event_id: Mapped[int] = mapped_column(ForeignKey("meter_event.id"), unique=True)
    restoration_event_id: Mapped[int | None] = mapped_column(ForeignKey("meter_event.id"))
    outage_id: Mapped[int | None] = mapped_column(ForeignKey("outage.id"), index=True)
    #: When a tamper became valid for disconnection by the rules.
    valid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def duration_s(self) -> int | None:
        """Seconds from occurrence to restoration; ``None`` while open."""
        if self.closed_at is None:
            return None
        return int((self.closed_at - self.opened_at).total_seconds())


Index("ix_event_episode_meter_open", EventEpisode.meter_id, EventEpisode.event_id, EventEpisode.closed_at)


class EventAction(Base):
    """One thing routing did for an event or an outage: a message to a target system, a work
    order, a tamper flag, a disconnect command, a load violation."""

    __tablename__ = "event_action"
    id: Mapped[int] = mapped_column(primary_key=True)
    meter_event_id: Mapped[int | None] = mapped_column(ForeignKey("meter_event.id"), index=True)
    outage_id: Mapped[int | None] = mapped_column(ForeignKey("outage.id"), index=True)
    #: ``oms``, ``wfm``, ``cis``, ``sms`` or ``hes`` (a command to the meter).
    target: Mapped[str] = mapped_column(String(8))
    #: ``outage_started``, ``outage_restored``, ``work_order``, ``tamper_flag``, ``disconnect``,
    #: ``load_violation``, ``notified``.
    action: Mapped[str] = mapped_column(String(32))
    #: ``queued`` (in the outbox or notification queue), ``done``, ``skipped``.
    status: Mapped[str] = mapped_column(String(16), default="queued")
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class TamperFlag(Base):
    """A tamper of a meter at a service point from a time (to its restoration), for the CIS's
    assessment billing."""

    __tablename__ = "tamper_flag"
    id: Mapped[int] = mapped_column(primary_key=True)
    meter_id: Mapped[int] = mapped_column(ForeignKey("meter.id"), index=True)
    service_point_id: Mapped[int | None] = mapped_column(ForeignKey("service_point.id"), index=True)
    episode_id: Mapped[int] = mapped_column(ForeignKey("event_episode.id"), unique=True)
    #: The catalogue's code of the tamper (``event.cover_open``, ``event.magnet``).
    kind: Mapped[str] = mapped_column(String(64))
    from_at: Mapped[datetime] = mapped_column(UTCDateTime)
    to_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    valid: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


LOAD_SOURCES = ("event", "intervals", "md_register")


class LoadViolation(Base):
    """Demand above the sanctioned load at a service point: from the meter's event, from
    interval energy or from the maximum-demand register."""

    __tablename__ = "load_violation"
    __table_args__ = (UniqueConstraint("meter_id", "at", "source"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    meter_id: Mapped[int] = mapped_column(ForeignKey("meter.id"))
    service_point_id: Mapped[int | None] = mapped_column(ForeignKey("service_point.id"), index=True)
    service_agreement_id: Mapped[int | None] = mapped_column(ForeignKey("service_agreement.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    demand_kw: Mapped[Decimal | None] = mapped_column(Quantity)
    sanctioned_kw: Mapped[Decimal | None] = mapped_column(Quantity)
    #: ``event``, ``intervals`` or ``md_register``.
    source: Mapped[str] = mapped_column(String(16))
    meter_event_id: Mapped[int | None] = mapped_column(ForeignKey("meter_event.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
