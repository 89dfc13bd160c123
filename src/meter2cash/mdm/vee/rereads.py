"""Re-read requests to the head-end: send them, notice when the data arrived, give up after a while.

Resolving a VEE exception with ``reread`` stores a :class:`VeeRereadRequest` (``requested``) and
puts the exception in ``reread_requested``. :func:`send_rereads` turns pending requests into
head-end commands: one outbox event ``hes.reread_requested`` each (relayed to NATS like every
event) with the meter serial, the channel's reading type and the window; the request becomes
``sent``. The head-end answers with an ordinary reading file that goes through ingestion.

:func:`complete_rereads` (called by every VEE run, and after the simulated head-end answered)
looks at the sent requests: when the window's channel-days were last written by a file received
after the request was sent (or a file named for the request, ``hes-reread-<id>-…``, arrived), the
request is ``completed`` (``outcome`` "96 intervals re-read") and its exception resolved with
resolution ``reread``; a request still without data
``timeout_hours`` after it was sent is ``failed`` and its exception opens again. Every change of an
exception writes an audit entry. Functions take a Session and never commit.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from meter2cash.core.timeutil import utc_days, utcnow
from meter2cash.events.outbox import emit
from meter2cash.mdm.models import Channel, ChannelDay, Meter, RawBatch, ReadingType
from meter2cash.mdm.store import decode_values
from meter2cash.mdm.vee.audit import audit_exception
from meter2cash.mdm.vee.models import VeeException, VeeRereadRequest

TOPIC_REREAD = "hes.reread_requested"
#: A sent request without data after this long fails.
TIMEOUT_HOURS = 24.0
REREAD_STATUSES = ("requested", "sent", "completed", "failed")
#: A head-end's answer file named ``<prefix><request id>-…`` answers that request even when every
#: value in it was known already (the day is then not written again).
ANSWER_PREFIX = "hes-reread-"


def _command(
    r: VeeRereadRequest, serial: str, code: str, obis: str | None, interval_s: int | None
) -> dict[str, Any]:
    return {
        "request_id": r.id,
        "meter": serial,
        "channel": code,
        "obis": obis,
        "interval_s": interval_s,
        "window_start": r.window_start.isoformat(),
        "window_end": r.window_end.isoformat(),
    }


def _with_meta(
    session: Session, status: str
) -> list[tuple[VeeRereadRequest, str, str, str | None, int | None]]:
    stmt = (
        select(VeeRereadRequest, Meter.serial, ReadingType.code, ReadingType.obis, ReadingType.interval_s)
        .join(Meter, Meter.id == VeeRereadRequest.meter_id)
        .join(Channel, Channel.id == VeeRereadRequest.channel_id)
        .join(ReadingType, ReadingType.id == Channel.reading_type_id)
        .where(VeeRereadRequest.status == status)
        .order_by(VeeRereadRequest.id)
    )
    return [tuple(row) for row in session.execute(stmt)]  # type: ignore[misc]


def send_rereads(session: Session, *, now: datetime | None = None) -> int:
    """Send every ``requested`` re-read to the head-end (an ``hes.reread_requested`` event each);
    they become ``sent``. Returns how many were sent."""
    now = now or utcnow()
    pending = _with_meta(session, "requested")
    for r, serial, code, obis, interval_s in pending:
        emit(session, TOPIC_REREAD, _command(r, serial, code, obis, interval_s), key=str(r.id))
        r.status, r.sent_at = "sent", now
    session.flush()
    return len(pending)


def sent_commands(session: Session) -> list[dict[str, Any]]:
    """The commands of the requests the head-end has and has not answered yet (status ``sent``)."""
    return [_command(*row) for row in _with_meta(session, "sent")]


def _window_state(session: Session, r: VeeRereadRequest) -> tuple[int, int, bool, bool]:
    """``(intervals received in the window, intervals in the window, answered, day written again)``."""
    days = utc_days(r.window_start, r.window_end)
    stmt = (
        select(ChannelDay.day, ChannelDay.interval_s, ChannelDay.raw_values, RawBatch.received_at)
        .outerjoin(RawBatch, RawBatch.id == ChannelDay.batch_id)
        .where(ChannelDay.channel_id == r.channel_id, ChannelDay.day.in_(days))
    )
    got = total = 0
    fresh = False
    sent = r.sent_at or r.requested_at
    rows = session.execute(stmt).all()
    for day, interval_s, raw_b, received_at in rows:
        raw = decode_values(raw_b)
        t0 = datetime(day.year, day.month, day.day, tzinfo=r.window_start.tzinfo)
        lo = max(0, int((r.window_start - t0).total_seconds()) // interval_s)
        hi = min(len(raw), int((r.window_end - t0).total_seconds()) // interval_s)
        got += int((~np.isnan(raw[lo:hi])).sum())
        total += max(0, hi - lo)
        fresh = fresh or (received_at is not None and received_at >= sent)
    changed = fresh
    if not fresh and got:  # an answer that changed nothing: the file named for the request came
        fresh = bool(
            session.scalar(
                select(func.count())
                .select_from(RawBatch)
                .where(RawBatch.filename.like(f"{ANSWER_PREFIX}{r.id}-%"), RawBatch.received_at >= sent)
            )
        )
    if not rows:
        interval_s = session.scalar(
            select(ReadingType.interval_s)
            .join(Channel, Channel.reading_type_id == ReadingType.id)
            .where(Channel.id == r.channel_id)
        )
        total = int((r.window_end - r.window_start).total_seconds()) // int(interval_s or 900)
    return got, total, fresh, changed


def complete_rereads(
    session: Session, *, now: datetime | None = None, timeout_hours: float = TIMEOUT_HOURS, actor: str = "hes"
) -> dict[str, int]:
    """Complete the sent requests whose window has data from a file received after sending; fail
    those still without it ``timeout_hours`` after sending. Returns ``{"completed", "failed"}``."""
    now = now or utcnow()
    out = {"completed": 0, "failed": 0}
    for r in session.scalars(
        select(VeeRereadRequest).where(VeeRereadRequest.status == "sent").order_by(VeeRereadRequest.id)
    ):
        got, total, fresh, changed = _window_state(session, r)
        e = session.get(VeeException, r.exception_id) if r.exception_id is not None else None
        if fresh and got:
            r.status, r.completed_at = "completed", now
            r.outcome = (
                f"{got} intervals re-read"
                + (f", {total - got} still missing" if got < total else "")
                + ("" if changed else ", unchanged")
            )
            out["completed"] += 1
            if e is not None and e.status != "resolved":
                before = {"status": e.status, "resolution": e.resolution}
                e.status, e.resolution, e.resolved_at, e.resolved_by = "resolved", "reread", now, actor
                _audit(session, actor, "vee.exception_reread_completed", e, before, r)
        elif now - (r.sent_at or r.requested_at) >= timedelta(hours=timeout_hours):
            r.status, r.completed_at = "failed", now
            r.outcome = f"no data from the head-end within {timeout_hours:g} h"
            out["failed"] += 1
            if e is not None and e.status == "reread_requested":
                before = {"status": e.status, "resolution": e.resolution}
                e.status = "assigned" if e.assignee else "open"
                _audit(session, actor, "vee.exception_reread_failed", e, before, r)
    session.flush()
    return out


def _audit(
    session: Session, actor: str, action: str, e: VeeException, before: dict[str, Any], r: VeeRereadRequest
) -> None:
    after = {"status": e.status, "resolution": e.resolution, "reread": r.id, "outcome": r.outcome}
    audit_exception(session, actor, action, e, before, after)


def list_rereads(
    session: Session, *, status: str | None = None, meter: str | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """A page of re-read requests, newest first, and the total count."""
    stmt = (
        select(VeeRereadRequest, Meter.serial, ReadingType.code)
        .join(Meter, Meter.id == VeeRereadRequest.meter_id)
        .join(Channel, Channel.id == VeeRereadRequest.channel_id)
        .join(ReadingType, ReadingType.id == Channel.reading_type_id)
    )
    if status:
        stmt = stmt.where(VeeRereadRequest.status == status)
    if meter:
        stmt = stmt.where(Meter.serial == meter)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.execute(stmt.order_by(VeeRereadRequest.id.desc()).limit(limit).offset(offset))
    return [reread_out(r, serial, code) for r, serial, code in rows], int(total)


def reread_out(r: VeeRereadRequest, serial: str | None = None, channel: str | None = None) -> dict[str, Any]:
    def iso(t: datetime | None) -> str | None:
        return t.isoformat() if t else None

    return {
        "id": r.id,
        "exception_id": r.exception_id,
        "meter": serial,
        "channel_id": r.channel_id,
        "channel": channel,
        "window_start": r.window_start.isoformat(),
        "window_end": r.window_end.isoformat(),
        "status": r.status,
        "requested_at": r.requested_at.isoformat(),
        "requested_by": r.requested_by,
        "sent_at": iso(r.sent_at),
        "completed_at": iso(r.completed_at),
        "outcome": r.outcome,
    }
