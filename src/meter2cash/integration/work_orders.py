"""Work orders as the edges show them: with the meter's serial and the service point's code."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from meter2cash.cis.parties.models import ServicePoint
from meter2cash.core.timeutil import ensure_aware
from meter2cash.mdm.models import Meter
from meter2cash.workforce.models import WorkOrder
from meter2cash.workforce.service import list_work_orders


@dataclass(frozen=True, slots=True)
class WorkOrderView:
    number: str
    kind: str
    status: str
    priority: str
    meter: str | None
    service_point: str | None
    created_at: datetime
    due_at: datetime | None
    assigned_to: str
    assigned_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    outcome: str
    source: str | None


def _aware(ts: datetime | None) -> datetime | None:
    return None if ts is None else ensure_aware(ts)


def views(session: Session, orders: list[WorkOrder]) -> list[WorkOrderView]:
    """The work orders with their meter serials and service point codes."""
    meters = {m for m in (o.meter_id for o in orders) if m is not None}
    sps = {s for s in (o.service_point_id for o in orders) if s is not None}
    serial = (
        dict(session.execute(select(Meter.id, Meter.serial).where(Meter.id.in_(meters))).all())
        if meters
        else {}
    )
    code = (
        dict(
            session.execute(select(ServicePoint.id, ServicePoint.code).where(ServicePoint.id.in_(sps))).all()
        )
        if sps
        else {}
    )
    return [
        WorkOrderView(
            o.number, o.kind, o.status, o.priority,
            serial.get(o.meter_id) if o.meter_id else None,
            code.get(o.service_point_id) if o.service_point_id else None,
            ensure_aware(o.created_at), _aware(o.due_at), o.assigned_to, _aware(o.assigned_at),
            _aware(o.started_at), _aware(o.finished_at), o.outcome, o.source,
        )
        for o in orders
    ]  # fmt: skip


def work_order_page(
    session: Session, *, status: str | None = None, limit: int = 100, offset: int = 0
) -> tuple[list[WorkOrderView], int]:
    """A page of work orders, newest first, with how many there are."""
    orders, total = list_work_orders(session, status=status, limit=limit, offset=offset)
    return views(session, orders), total
