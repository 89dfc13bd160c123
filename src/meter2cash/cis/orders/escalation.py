"""Escalation of service orders past their state's SLA, level by level, in one pass.

Each workflow version lists its levels (``[[escalation]]``: ``after_h`` past the SLA, ``to``,
``notify``). :func:`escalate` raises every open order whose state's SLA ran out at least
``after_h`` hours ago to each level it has reached, with one ``INSERT … SELECT`` per workflow
version and level — the database does the work, whatever the number of orders. A level is
reached once per stay in a state: the unique key ``(order, entered_at, level)`` and the
``NOT EXISTS`` of the statement keep a second pass from raising it again; an order that moves on
and runs late again in its next state escalates afresh. Each level with ``notify`` gets one
e-mail per pass naming how many orders went up to it. Flushes, never commits.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, insert, literal, select
from sqlalchemy.orm import Session

from meter2cash.cis.orders.models import ServiceOrder, ServiceOrderEscalation, WorkflowDefinition
from meter2cash.cis.orders.workflow import Workflow
from meter2cash.core.timeutil import ensure_aware
from meter2cash.db import UTCDateTime
from meter2cash.notify.models import Notification


def escalate(session: Session, now: datetime) -> dict[str, Any]:
    """Raise every open order past its state's SLA to the levels it has reached; the counts of
    orders raised per ``type:level``, and the notices queued."""
    now = ensure_aware(now, "now")
    raised: Counter[str] = Counter()
    notices = 0
    rows = session.execute(
        select(WorkflowDefinition.type, WorkflowDefinition.version, WorkflowDefinition.definition)
    )
    for wf_type, version, definition in rows.all():
        wf = Workflow.model_validate(definition)
        for n, level in enumerate(wf.escalation, start=1):
            cutoff = now - timedelta(hours=level.after_h)
            o = ServiceOrder
            already = exists().where(
                ServiceOrderEscalation.order_id == o.id,
                ServiceOrderEscalation.entered_at == o.state_entered_at,
                ServiceOrderEscalation.level == n,
            )
            due = select(
                o.id, o.state_entered_at, o.state, literal(n), literal(level.to), literal(now, UTCDateTime())
            ).where(
                and_(
                    o.type == wf_type,
                    o.workflow_version == version,
                    o.closed_at.is_(None),
                    o.state_due_at.is_not(None),
                    o.state_due_at <= cutoff,
                    ~already,
                )
            )
            session.execute(
                insert(ServiceOrderEscalation).from_select(
                    ["order_id", "entered_at", "state", "level", "to", "at"], due
                )
            )
            # counted, not taken from the driver: PostgreSQL's answer to INSERT … SELECT has no
            # row count here
            e = ServiceOrderEscalation
            count = int(
                session.scalar(
                    select(func.count())
                    .select_from(e)
                    .join(o, o.id == e.order_id)
                    .where(e.at == now, e.level == n, o.type == wf_type, o.workflow_version == version)
                )
                or 0
            )
            if not count:
                continue
            raised[f"{wf_type}:{n}"] += count
            if level.notify:
                session.add(
                    Notification(
                        channel="email", recipient=level.notify, template="order.escalated", created_at=now,
                        context={"count": str(count), "title": wf.title.lower(), "level": str(n),
                                 "to": level.to},
                    )
                )  # fmt: skip
                notices += 1
    session.flush()
    return {"raised": dict(raised), "notices": notices}


def escalations_of(session: Session, order_id: int) -> list[dict[str, Any]]:
    """An order's escalations, oldest first."""
    stmt = (
        select(ServiceOrderEscalation)
        .where(ServiceOrderEscalation.order_id == order_id)
        .order_by(ServiceOrderEscalation.id)
    )
    return [
        {"at": e.at.isoformat(), "state": e.state, "level": e.level, "to": e.to}
        for e in session.scalars(stmt)
    ]


def open_escalations(session: Session) -> int:
    """Open orders escalated in their current state."""
    o, e = ServiceOrder, ServiceOrderEscalation
    stmt = (
        select(func.count(func.distinct(o.id)))
        .join(e, and_(e.order_id == o.id, e.entered_at == o.state_entered_at))
        .where(o.closed_at.is_(None))
    )
    return int(session.scalar(stmt) or 0)


__all__ = ["escalate", "escalations_of", "open_escalations"]
