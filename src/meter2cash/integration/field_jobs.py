"""The periodic jobs of the field link, run by ``m2c hes serve`` between messages: route the
events received (:func:`route_now`) and close missed intervals (:func:`acquire_now`).

Missed intervals are looked for behind the collection watermark — the latest UTC day the store
holds interval data for — rather than behind the wall clock, so the same job serves a live
head-end and one replaying the past: every complete day of the last ``days`` before the
watermark is checked, and one ``reacquire`` command is issued per gap (idempotent: asking again
for a gap already asked for changes nothing). Late data merges through ordinary ingest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from meter2cash.integration.event_routing import route_events
from meter2cash.mdm.acquisition import find_gaps, request_reacquisition
from meter2cash.mdm.commands.models import MeterCommand
from meter2cash.mdm.models import ChannelDay


@dataclass(slots=True)
class Acquisition:
    window_start: datetime | None
    window_end: datetime | None
    gaps: int
    commands_new: int


def route_now(session: Session, now: datetime) -> int:
    """Route the events stored since the last run; returns how many were routed."""
    return route_events(session, now=now).events


def acquire_now(session: Session, now: datetime, *, days: int = 2) -> Acquisition:
    """Issue re-acquisition commands for the gaps of the ``days`` complete UTC days before the
    latest day with interval data (none without data)."""
    latest = session.scalar(select(func.max(ChannelDay.day)))
    if latest is None:
        return Acquisition(None, None, 0, 0)
    end = datetime.combine(latest, time(0), tzinfo=UTC)
    start = end - timedelta(days=days)
    gaps = find_gaps(session, start, end)
    before = session.scalar(
        select(func.count()).select_from(MeterCommand).where(MeterCommand.kind == "reacquire")
    )
    request_reacquisition(session, gaps, at=now)
    after = session.scalar(
        select(func.count()).select_from(MeterCommand).where(MeterCommand.kind == "reacquire")
    )
    return Acquisition(start, end, len(gaps), int(after or 0) - int(before or 0))
