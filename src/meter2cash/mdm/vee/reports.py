"""Reading VEE results back: a run's findings by rule, the findings behind a channel-day."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from meter2cash.core.errors import NotFound
from meter2cash.events.models import OutboxMessage
from meter2cash.mdm.models import ChannelDay, VeeFinding, VeeRun

TOPIC_COMPLETED = "vee.completed"


def _iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.isoformat()


def vee_report(session: Session, run_id: int | None = None) -> dict[str, Any]:
    """Findings by rule (findings, intervals, action) of a run, the latest one by default."""
    run = (
        session.get(VeeRun, run_id)
        if run_id is not None
        else session.scalars(select(VeeRun).order_by(VeeRun.id.desc()).limit(1)).first()
    )
    if run is None:
        what = f"VEE run {run_id}" if run_id is not None else "any VEE run"
        raise NotFound(f"there is no {what}", code="vee.run_not_found", run_id=run_id)
    stmt = (
        select(VeeFinding.rule, VeeFinding.action, func.count(), func.sum(VeeFinding.slot_count))
        .where(VeeFinding.run_id == run.id)
        .group_by(VeeFinding.rule, VeeFinding.action)
        .order_by(VeeFinding.rule)
    )
    by_rule: dict[str, dict[str, Any]] = {}
    for rule, action, n, slots in session.execute(stmt):
        agg = by_rule.setdefault(rule, {"findings": 0, "intervals": 0, "action": action})
        agg["findings"] += int(n)
        agg["intervals"] += int(slots or 0)
    event = session.scalars(
        select(OutboxMessage).where(OutboxMessage.topic == TOPIC_COMPLETED, OutboxMessage.key == str(run.id))
    ).first()
    return {
        "run_id": run.id,
        "status": run.status,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "window_start": _iso(run.window_start),
        "window_end": _iso(run.window_end),
        "rule_set": run.rule_set,
        "rule_set_version": run.rule_set_version,
        "channel_days": run.channel_days,
        "findings": run.findings,
        "estimated_intervals": run.estimated_intervals,
        #: chunks the run could not validate (status ``partial``), see ``VeeRunResult.failures``
        "failures": list(run.failures or []),
        "findings_by_rule": by_rule,
        "estimated_by_method": dict(event.payload.get("estimated_by_method", {})) if event else {},
        #: the stored learned models the run estimated with (runs before they were stored: empty)
        "learned_models": list(event.payload.get("learned_models", [])) if event else [],
    }


def findings_for(session: Session, channel_id: int, day: date) -> list[dict[str, Any]]:
    """Findings behind the current version of a channel-day (empty if it was never validated)."""
    run_id = session.scalar(
        select(ChannelDay.vee_run_id).where(ChannelDay.channel_id == channel_id, ChannelDay.day == day)
    )
    if run_id is None:
        return []
    stmt = (
        select(VeeFinding)
        .where(VeeFinding.run_id == run_id, VeeFinding.channel_id == channel_id, VeeFinding.day == day)
        .order_by(VeeFinding.first_slot, VeeFinding.rule)
    )
    return [
        {
            "rule": f.rule,
            "action": f.action,
            "first_slot": f.first_slot,
            "slot_count": f.slot_count,
            "data": f.data,
            "run_id": f.run_id,
        }
        for f in session.scalars(stmt)
    ]
