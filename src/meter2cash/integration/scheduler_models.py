"""The history of scheduled job runs; one row per job and slot is also what makes a slot run once
across any number of scheduler processes (the row is claimed before the job runs)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from meter2cash.db import Base, UTCDateTime


class ScheduledRun(Base):
    """One run of a job for one slot of its schedule: ``running``, ``done`` or ``failed``."""

    __tablename__ = "scheduled_run"
    __table_args__ = (UniqueConstraint("job", "slot"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    job: Mapped[str] = mapped_column(String(40), index=True)
    #: The time the schedule named for this run (a run that catches up after downtime is late).
    slot: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="running")
    #: The scheduler process that claimed the slot (host and pid).
    runner: Mapped[str] = mapped_column(String(100), default="")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration_s: Mapped[float | None] = mapped_column(Float)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str] = mapped_column(String(1000), default="")


__all__ = ["ScheduledRun"]
