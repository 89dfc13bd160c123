"""Work orders: create, assign, start, complete, cancel, look up; the WFM adapter's messages.

The WFM adapter is the outbox: every new work order publishes ``workforce.work_order.created``
(the WFM takes it from there), every assignment and completion ``workforce.work_order.updated``;
a WFM reports a completion through the API (``POST /api/v1/work-orders/{number}/complete``).
Every change is audited. Functions take a Session, flush and never commit.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from meter2cash.audit.models import AuditEntry
from meter2cash.core.errors import InvalidInput, NotFound
from meter2cash.core.timeutil import ensure_aware, utcnow
from meter2cash.events.outbox import emit
from meter2cash.workforce.models import WorkOrder
from meter2cash.workforce.states import KINDS, STATUSES, next_status

TOPIC_CREATED = "workforce.work_order.created"
TOPIC_UPDATED = "workforce.work_order.updated"
PRIORITIES = ("high", "medium", "low")
#: How long the field has for a work order of each priority.
DUE_AFTER = {"high": timedelta(hours=24), "medium": timedelta(days=3), "low": timedelta(days=7)}


def _state(wo: WorkOrder) -> dict[str, Any]:
    return {
        "number": wo.number,
        "kind": wo.kind,
        "status": wo.status,
        "priority": wo.priority,
        "meter_id": wo.meter_id,
        "service_point_id": wo.service_point_id,
        "assigned_to": wo.assigned_to,
        "outcome": wo.outcome,
        "source": wo.source,
        "due_at": wo.due_at.isoformat() if wo.due_at else None,
    }


def _audit(session: Session, wo: WorkOrder, action: str, actor: str, before: dict[str, Any] | None) -> None:
    session.add(
        AuditEntry(
            actor=actor,
            action=f"work_order.{action}",
            entity="work_order",
            entity_id=wo.number,
            before=before,
            after=_state(wo),
        )
    )


def next_number(session: Session, year: int) -> str:
    """The next free work order number of ``year``: ``WO-2026-000123``."""
    prefix = f"WO-{year}-"
    last = session.scalar(select(func.max(WorkOrder.number)).where(WorkOrder.number.like(f"{prefix}%")))
    n = int(last[len(prefix) :]) + 1 if last else 1
    return f"{prefix}{n:06d}"


def create_work_order(
    session: Session,
    *,
    kind: str,
    meter_id: int | None = None,
    service_point_id: int | None = None,
    priority: str = "medium",
    source: str | None = None,
    context: dict[str, Any] | None = None,
    notes: str = "",
    at: datetime | None = None,
    due_at: datetime | None = None,
    actor: str = "system",
) -> WorkOrder:
    """A new open work order, published to the WFM (``workforce.work_order.created`` with
    ``context``: the meter serial, service point code, what raised it). A work order of the same
    kind and ``source`` that exists already is returned unchanged (nothing published again).
    Errors ``work_order.bad_kind``, ``work_order.bad_priority``."""
    if kind not in KINDS:
        raise InvalidInput(f"unknown work order kind {kind!r}", code="work_order.bad_kind", field="kind")
    if priority not in PRIORITIES:
        raise InvalidInput(f"unknown priority {priority!r}", code="work_order.bad_priority", field="priority")
    if source is not None:
        existing = session.scalar(select(WorkOrder).where(WorkOrder.kind == kind, WorkOrder.source == source))
        if existing is not None:
            return existing
    at = ensure_aware(at, "at") if at else utcnow()
    wo = WorkOrder(
        number=next_number(session, at.year),
        kind=kind,
        meter_id=meter_id,
        service_point_id=service_point_id,
        status="open",
        priority=priority,
        created_at=at,
        due_at=due_at or at + DUE_AFTER[priority],
        source=source,
        notes=notes,
    )
    session.add(wo)
    session.flush()
    _audit(session, wo, "create", actor, None)
    emit(
        session, TOPIC_CREATED, {**_state(wo), "created_at": at.isoformat(), **(context or {})}, key=wo.number
    )
    return wo


def get_work_order(session: Session, number: str) -> WorkOrder:
    """The work order of a number (``work_order.not_found``)."""
    wo = session.scalar(select(WorkOrder).where(WorkOrder.number == number))
    if wo is None:
        raise NotFound(f"no work order {number}", code="work_order.not_found", number=number)
    return wo


def _move(
    session: Session, number: str, event: str, actor: str, at: datetime | None, **changes: Any
) -> WorkOrder:
    wo = get_work_order(session, number)
    before = _state(wo)
    wo.status = next_status(wo.status, event)
    for name, value in changes.items():
        setattr(wo, name, value)
    session.flush()
    _audit(session, wo, event, actor, before)
    emit(
        session, TOPIC_UPDATED, {**_state(wo), "event": event, "at": (at or utcnow()).isoformat()}, key=number
    )
    return wo


def assign(
    session: Session, number: str, assignee: str, *, actor: str, at: datetime | None = None
) -> WorkOrder:
    """Assign (or re-assign) a work order to a crew or technician (``work_order.bad_transition``
    once it is in progress or finished)."""
    if not assignee.strip():
        raise InvalidInput("an assignee is required", code="work_order.no_assignee", field="assignee")
    at = ensure_aware(at, "at") if at else utcnow()
    return _move(session, number, "assign", actor, at, assigned_to=assignee, assigned_at=at)


def start(session: Session, number: str, *, actor: str, at: datetime | None = None) -> WorkOrder:
    """The crew started the work."""
    at = ensure_aware(at, "at") if at else utcnow()
    return _move(session, number, "start", actor, at, started_at=at)


def complete(
    session: Session, number: str, outcome: str, *, actor: str, at: datetime | None = None, notes: str = ""
) -> WorkOrder:
    """The WFM reports the work done, with its outcome (``tamper_confirmed``, ``no_tamper``,
    ``meter_replaced``…). Completing a completed work order again with the same outcome changes
    nothing (a repeated report); anything else from a final status is ``work_order.bad_transition``."""
    at = ensure_aware(at, "at") if at else utcnow()
    wo = get_work_order(session, number)
    if wo.status == "completed" and wo.outcome == outcome:
        return wo
    extra = {"notes": f"{wo.notes}\n{notes}".strip()} if notes else {}
    return _move(session, number, "complete", actor, at, outcome=outcome, finished_at=at, **extra)


def cancel(
    session: Session, number: str, reason: str, *, actor: str, at: datetime | None = None
) -> WorkOrder:
    """Withdraw a work order that is not finished."""
    at = ensure_aware(at, "at") if at else utcnow()
    return _move(session, number, "cancel", actor, at, outcome=reason, finished_at=at)


def list_work_orders(
    session: Session, *, status: str | None = None, limit: int = 100, offset: int = 0
) -> tuple[list[WorkOrder], int]:
    """A page of work orders, newest first, and how many there are (``work_order.bad_status``
    for an unknown status)."""
    if status is not None and status not in STATUSES:
        raise InvalidInput(
            f"unknown status {status!r} (one of {', '.join(STATUSES)})",
            code="work_order.bad_status",
            field="status",
        )
    stmt = select(WorkOrder)
    if status is not None:
        stmt = stmt.where(WorkOrder.status == status)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(stmt.order_by(WorkOrder.id.desc()).limit(limit).offset(offset)).all()
    return list(rows), int(total)
