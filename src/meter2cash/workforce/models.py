"""The work order table."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from meter2cash.core.timeutil import utcnow
from meter2cash.db import Base, UTCDateTime


class WorkOrder(Base):
    """Field work at a meter or service point; ``status`` follows
    :class:`meter2cash.workforce.states.WorkOrderLifecycle`. ``source`` names what raised it
    (``episode:12``, ``outage:3``); one work order of a kind per source."""

    __tablename__ = "work_order"
    __table_args__ = (UniqueConstraint("kind", "source"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    #: ``WO-<year>-<six digits>``.
    number: Mapped[str] = mapped_column(String(20), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    meter_id: Mapped[int | None] = mapped_column(ForeignKey("meter.id"), index=True)
    service_point_id: Mapped[int | None] = mapped_column(ForeignKey("service_point.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    priority: Mapped[str] = mapped_column(String(8), default="medium")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    assigned_to: Mapped[str] = mapped_column(String(100), default="")
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(200), default="")
    notes: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str | None] = mapped_column(String(64))
