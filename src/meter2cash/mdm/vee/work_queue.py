"""The VEE exceptions work queue: findings that need a person, and how a person resolves them.

A finding whose rule's action is ``exception`` opens a :class:`VeeException` (priority from the
rule's configuration, age from its creation). People list and filter the queue, assign, comment
and resolve: ``accept`` the data as it is, ``edit`` values with a reason (a new channel-day version
flagged ``EDITED``), request a ``reread`` from the head-end (a :class:`VeeRereadRequest` with
status ``requested``), or ``estimate`` the intervals now. Every change writes an
:class:`AuditEntry`. Functions take a Session and never commit; the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import numpy as np
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from meter2cash.audit.models import AuditEntry
from meter2cash.core.errors import Conflict, InvalidInput, NotFound
from meter2cash.core.quality import FLAG_DTYPE, Quality
from meter2cash.core.timeutil import day_start, slots_per_day, utcnow
from meter2cash.mdm.models import Channel, Meter, VeeFinding
from meter2cash.mdm.store import MeasurementStore
from meter2cash.mdm.vee import codes
from meter2cash.mdm.vee.audit import audit_exception
from meter2cash.mdm.vee.estimation import METHOD_NAMES, day_types_for, estimate
from meter2cash.mdm.vee.models import (
    RESOLUTIONS,
    VeeException,
    VeeExceptionComment,
    VeeRereadRequest,
)
from meter2cash.mdm.vee.rereads import reread_out
from meter2cash.mdm.vee.ruleset.schema import RuleSet

#: Rule code → the rule's section in a rule set (for the exception's priority).
RULE_SECTION: dict[str, str] = {
    codes.MISSING_INTERVAL: "missing_interval",
    codes.NEGATIVE_CONSUMPTION: "negative_consumption",
    codes.INTERVAL_SPIKE: "interval_spike",
    codes.STUCK_REGISTER: "stuck_register",
    codes.ZERO_RUN: "zero_run",
    codes.REGISTER_DECREASE: "register_increase",
    codes.SUM_CHECK: "sum_check",
    codes.TOU_SUM_CHECK: "sum_check",
    codes.HIGH_USAGE: "high_low_usage",
    codes.LOW_USAGE: "high_low_usage",
    codes.DYNAMIC_COMPARISON: "dynamic_comparison",
    codes.INTERVAL_SIZE: "metadata",
    codes.UNIT_OF_MEASURE: "metadata",
    codes.MULTIPLIER: "metadata",
    codes.INACTIVE_MEASUREMENT: "inactive_measurement",
    codes.DUPLICATE_IMD: "duplicate_imd",
    codes.PROLONGED_ESTIMATION: "prolonged_estimation",
}
HISTORY_DAYS = 14


def open_exceptions(session: Session, run_id: int, rule_sets: Mapping[str, RuleSet]) -> int:
    """Open an exception for every finding of run ``run_id`` whose action is ``exception``."""
    stmt = select(
        VeeFinding.id,
        VeeFinding.channel_id,
        VeeFinding.day,
        VeeFinding.rule,
        VeeFinding.first_slot,
        VeeFinding.slot_count,
        VeeFinding.rule_set,
    ).where(VeeFinding.run_id == run_id, VeeFinding.action == "exception")
    now = utcnow()
    rows = []
    for fid, cid, day, rule, first, count, label in session.execute(stmt):
        rs = rule_sets.get(label)
        section = RULE_SECTION.get(rule)
        priority = getattr(rs.rules, section).priority if rs is not None and section else 3
        rows.append(
            {
                "finding_id": fid,
                "run_id": run_id,
                "channel_id": cid,
                "day": day,
                "rule": rule,
                "first_slot": first,
                "slot_count": count,
                "priority": priority,
                "status": "open",
                "created_at": now,
                "reason": "",
            }
        )
    if rows:
        session.execute(insert(VeeException), rows)
    return len(rows)


def _out(e: VeeException, serial: str | None = None) -> dict[str, Any]:
    age = utcnow() - e.created_at
    return {
        "id": e.id,
        "rule": e.rule,
        "priority": e.priority,
        "status": e.status,
        "assignee": e.assignee,
        "meter": serial,
        "channel_id": e.channel_id,
        "day": e.day.isoformat(),
        "first_slot": e.first_slot,
        "slot_count": e.slot_count,
        "created_at": e.created_at.isoformat(),
        "age_hours": round(age.total_seconds() / 3600, 1),
        "run_id": e.run_id,
        "resolution": e.resolution,
        "resolved_by": e.resolved_by,
        "resolved_at": e.resolved_at.isoformat() if e.resolved_at else None,
        "reason": e.reason,
    }


def list_exceptions(
    session: Session,
    *,
    status: str | None = None,
    rule: str | None = None,
    assignee: str | None = None,
    meter: str | None = None,
    open_only: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """A page of exceptions, most urgent first (priority, then oldest), and the total count."""
    stmt = (
        select(VeeException, Meter.serial)
        .join(Channel, Channel.id == VeeException.channel_id)
        .join(Meter, Meter.id == Channel.meter_id)
    )
    if status:
        stmt = stmt.where(VeeException.status == status)
    if open_only:
        stmt = stmt.where(VeeException.status != "resolved")
    if rule:
        stmt = stmt.where(VeeException.rule == rule)
    if assignee:
        stmt = stmt.where(VeeException.assignee == assignee)
    if meter:
        stmt = stmt.where(Meter.serial == meter)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    stmt = stmt.order_by(VeeException.priority, VeeException.created_at, VeeException.id)
    rows = session.execute(stmt.limit(limit).offset(offset))
    return [_out(e, serial) for e, serial in rows], int(total)


def _get(session: Session, exception_id: int) -> VeeException:
    e = session.get(VeeException, exception_id)
    if e is None:
        raise NotFound(f"no VEE exception {exception_id}", code="vee.exception_not_found", id=exception_id)
    return e


def get_exception(session: Session, exception_id: int) -> dict[str, Any]:
    """One exception with its finding's data, comments, re-read requests and current values."""
    e = _get(session, exception_id)
    serial = session.scalar(select(Meter.serial).join(Channel).where(Channel.id == e.channel_id))
    finding = session.get(VeeFinding, e.finding_id)
    comments = session.scalars(
        select(VeeExceptionComment)
        .where(VeeExceptionComment.exception_id == e.id)
        .order_by(VeeExceptionComment.id)
    )
    rereads = session.scalars(select(VeeRereadRequest).where(VeeRereadRequest.exception_id == e.id))
    day = MeasurementStore(session).load_days([(e.channel_id, e.day)]).get((e.channel_id, e.day))
    sl = slice(e.first_slot, e.first_slot + e.slot_count)
    return {
        **_out(e, serial),
        "finding": {"action": finding.action, "data": finding.data, "rule_set": finding.rule_set}
        if finding
        else None,
        "comments": [{"at": c.at.isoformat(), "author": c.author, "text": c.text} for c in comments],
        "rereads": [reread_out(r) for r in rereads],
        "values": None if day is None else [None if np.isnan(v) else float(v) for v in day.values[sl]],
        "raw": None if day is None else [None if np.isnan(v) else float(v) for v in day.raw[sl]],
    }


def assign(session: Session, exception_id: int, assignee: str, *, actor: str) -> dict[str, Any]:
    """Give an open exception to ``assignee``."""
    e = _open(session, exception_id)
    before = {"assignee": e.assignee, "status": e.status}
    e.assignee, e.status = assignee, "assigned"
    after = {"assignee": assignee, "status": e.status}
    audit_exception(session, actor, "vee.exception_assigned", e, before, after)
    session.flush()
    return _out(e)


def comment(session: Session, exception_id: int, text: str, *, author: str) -> None:
    """Add a comment to an exception (also to a resolved one)."""
    if not text.strip():
        raise InvalidInput("a comment needs text", code="vee.comment_empty", field="text")
    _get(session, exception_id)
    session.add(VeeExceptionComment(exception_id=exception_id, author=author, text=text))
    session.flush()


def _open(session: Session, exception_id: int) -> VeeException:
    e = _get(session, exception_id)
    if e.status == "resolved":
        raise Conflict(f"VEE exception {e.id} is resolved already", code="vee.exception_resolved", id=e.id)
    return e


def resolve(
    session: Session,
    exception_id: int,
    action: str,
    *,
    actor: str,
    reason: str = "",
    values: Mapping[int, float] | None = None,
) -> dict[str, Any]:
    """Resolve an exception: ``accept``, ``edit`` (``values`` by slot of the day, and a reason),
    ``reread`` (a re-read request to the head-end; the exception waits for the data) or
    ``estimate`` (estimate the exception's intervals now from the channel's history)."""
    if action not in RESOLUTIONS:
        raise InvalidInput(
            f"resolution {action!r} is not one of {', '.join(RESOLUTIONS)}",
            code="vee.resolution_invalid",
            field="action",
        )
    e = _open(session, exception_id)
    before = _out(e)
    if action == "edit":
        _edit(session, e, values or {}, reason, actor)
    elif action == "estimate":
        _estimate(session, e, actor)
    elif action == "reread":
        meter_id = session.scalar(select(Channel.meter_id).where(Channel.id == e.channel_id))
        start = day_start(e.day)
        session.add(
            VeeRereadRequest(
                exception_id=e.id,
                meter_id=meter_id,
                channel_id=e.channel_id,
                window_start=start,
                window_end=start + timedelta(days=1),
                requested_by=actor,
            )
        )
    e.resolution, e.reason = action, reason
    if action == "reread":
        e.status = "reread_requested"
    else:
        e.status, e.resolved_at, e.resolved_by = "resolved", utcnow(), actor
    session.flush()
    after = _out(e)
    audit_exception(session, actor, f"vee.exception_{action}", e, before, after)
    return after


def _edit(session: Session, e: VeeException, values: Mapping[int, float], reason: str, actor: str) -> None:
    if not reason.strip():
        raise InvalidInput("an edit needs a reason", code="vee.edit_reason_missing", field="reason")
    if not values:
        raise InvalidInput("an edit needs values by slot", code="vee.edit_values_missing", field="values")
    store = MeasurementStore(session)
    day = store.load_days([(e.channel_id, e.day)], for_update=True).get((e.channel_id, e.day))
    if day is None:
        raise NotFound(f"channel {e.channel_id} has no data on {e.day}", code="vee.channel_day_not_found")
    n = len(day.values)
    bad = [s for s in values if not 0 <= int(s) < n]
    if bad:
        raise InvalidInput(
            f"slots {bad} are outside the day (0..{n - 1})", code="vee.edit_slot_invalid", field="values"
        )
    slots = np.array(sorted(int(s) for s in values), dtype=np.intp)
    new = np.array([float(values[int(s)]) for s in slots])
    before = {
        "slots": slots.tolist(),
        "values": [float(v) for v in day.values[slots]],
        "flags": day.flags[slots].tolist(),
    }
    day.values = day.values.copy()
    day.flags = day.flags.copy()
    day.values[slots] = new
    day.flags[slots] = FLAG_DTYPE(Quality.EDITED)
    day.vee_status = "validated"
    store.save([day], reason="edit")
    after = {"slots": slots.tolist(), "values": new.tolist(), "reason": reason, "version": day.version}
    session.add(
        AuditEntry(
            actor=actor,
            action="vee.interval_edited",
            entity="channel_day",
            entity_id=f"{e.channel_id}:{e.day.isoformat()}",
            before=before,
            after=after,
        )
    )


def _estimate(session: Session, e: VeeException, actor: str) -> None:
    """Re-estimate the exception's intervals from the channel's valid values around them."""
    store = MeasurementStore(session)
    day = store.load_days([(e.channel_id, e.day)], for_update=True).get((e.channel_id, e.day))
    if day is None:
        raise NotFound(f"channel {e.channel_id} has no data on {e.day}", code="vee.channel_day_not_found")
    spd = slots_per_day(day.interval_s)
    first = e.day - timedelta(days=HISTORY_DAYS)
    w = store.read_window(
        [e.channel_id], day_start(first), day_start(e.day + timedelta(days=1)), day.interval_s
    )
    usable = (w.flags & int(Quality.MISSING | Quality.REJECTED | Quality.ESTIMATED)) == 0
    series = np.where(usable, w.values, np.nan)
    off = HISTORY_DAYS * spd
    sl = slice(off + e.first_slot, off + e.first_slot + e.slot_count)
    series[0, sl] = np.nan
    target = np.zeros(series.shape, dtype=bool)
    target[0, sl] = True
    types = day_types_for([first + timedelta(days=k) for k in range(HISTORY_DAYS + 1)])
    est = estimate(series, slots_per_day=spd, day_types=types, target=target)
    got = target[0] & ~np.isnan(est.values[0])
    if not got.any():
        raise Conflict("nothing to estimate these intervals from", code="vee.estimate_impossible", id=e.id)
    idx = np.flatnonzero(got) - off
    before = {"slots": idx.tolist(), "values": [float(v) for v in day.values[idx]]}
    day.values = day.values.copy()
    day.flags = day.flags.copy()
    day.values[idx] = est.values[0, idx + off]
    day.flags[idx] = FLAG_DTYPE(Quality.ESTIMATED | Quality.EDITED)
    store.save([day], reason="edit")
    methods = {METHOD_NAMES[int(m)] for m in est.method[0, idx + off] if m}
    session.add(
        AuditEntry(
            actor=actor,
            action="vee.interval_estimated",
            entity="channel_day",
            entity_id=f"{e.channel_id}:{e.day.isoformat()}",
            before=before,
            after={"slots": idx.tolist(), "values": day.values[idx].tolist(), "methods": sorted(methods)},
        )
    )
