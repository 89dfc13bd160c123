"""Service orders: open one, take an action on it, look it up, list a team's queue.

Every order runs the workflow version it was opened under: the first order of a version records
that version's definition (``workflow_definition``), and a file that changes a recorded version
without a new version number is refused (``workflow.version_reused``). Taking an action checks
the state, the role and the data the action needs (:meth:`Workflow.take`), records the step (who,
role, why) and an audit entry, moves the order to its new state and team with that state's SLA,
and records what the action sets off (``service_order_trigger``, pending for the trigger runner).
Functions take a Session, flush and never commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from meter2cash.audit.models import AuditEntry
from meter2cash.cis.orders.escalation import escalations_of
from meter2cash.cis.orders.models import (
    ServiceOrder,
    ServiceOrderStep,
    ServiceOrderTrigger,
    WorkflowDefinition,
)
from meter2cash.cis.orders.workflow import AREAS, ROLES, Workflow, load_workflows
from meter2cash.config import get_settings
from meter2cash.core.errors import Conflict, InvalidInput, NotFound
from meter2cash.core.timeutil import ensure_aware, utcnow


@lru_cache(maxsize=4)
def _workflows(directory: str) -> dict[str, Workflow]:
    return load_workflows(directory or None)


def workflows(directory: str | None = None) -> dict[str, Workflow]:
    """The workflows in force: the shipped ones, replaced by those of ``M2C_WORKFLOWS``."""
    return _workflows(get_settings().workflows if directory is None else directory)


def _recorded(session: Session, wf: Workflow) -> None:
    """Record ``wf``'s version, once; a different definition under a recorded version is refused."""
    definition = wf.model_dump(mode="json", by_alias=True)
    row = session.scalar(
        select(WorkflowDefinition).where(
            WorkflowDefinition.type == wf.type, WorkflowDefinition.version == wf.version
        )
    )
    if row is None:
        session.add(WorkflowDefinition(type=wf.type, version=wf.version, definition=definition))
        session.flush()
    elif row.definition != definition:
        raise Conflict(
            f"workflow {wf.type} version {wf.version} was changed without a new version",
            code="workflow.version_reused",
            type=wf.type,
            version=wf.version,
        )


def workflow_of(session: Session, order: ServiceOrder) -> Workflow:
    """The workflow version ``order`` runs."""
    row = session.scalar(
        select(WorkflowDefinition.definition).where(
            WorkflowDefinition.type == order.type, WorkflowDefinition.version == order.workflow_version
        )
    )
    if row is None:
        raise NotFound(
            f"workflow {order.type} version {order.workflow_version} is not recorded",
            code="workflow.not_found",
        )
    return Workflow.model_validate(row)


def _snapshot(order: ServiceOrder) -> dict[str, Any]:
    return {
        "number": order.number,
        "type": order.type,
        "state": order.state,
        "team": order.team,
        "data": dict(order.data or {}),
        "due_at": order.due_at.isoformat() if order.due_at else None,
        "state_due_at": order.state_due_at.isoformat() if order.state_due_at else None,
    }


def _audit(
    session: Session, order: ServiceOrder, action: str, by: str, why: str, before: dict[str, Any] | None
) -> None:
    session.add(
        AuditEntry(
            actor=by[:100],
            action=f"service_order.{action}"[:64],
            entity="service_order",
            entity_id=order.number,
            before=before,
            after={**_snapshot(order), "reason": why},
        )
    )


def next_number(session: Session, prefix: str, year: int) -> str:
    """The next free order number: ``NC-2026-000042``."""
    head = f"{prefix}-{year}-"
    last = session.scalar(select(func.max(ServiceOrder.number)).where(ServiceOrder.number.like(f"{head}%")))
    return f"{head}{(int(last[len(head) :]) + 1 if last else 1):06d}"


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InvalidInput(
            f"role {role!r} is not one of {', '.join(ROLES)}", code="order.bad_role", field="role"
        )


def open_order(
    session: Session,
    *,
    type: str,
    by: str,
    role: str,
    reason: str = "",
    area: str = "",
    account_id: int | None = None,
    service_agreement_id: int | None = None,
    service_point_id: int | None = None,
    meter_id: int | None = None,
    data: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    at: datetime | None = None,
    flows: dict[str, Workflow] | None = None,
) -> ServiceOrder:
    """A new order of ``type`` in its workflow's initial state; the same ``idempotency_key``
    again returns the order it first opened. ``order.bad_type``, ``order.bad_area``."""
    if idempotency_key:
        known = session.scalar(select(ServiceOrder).where(ServiceOrder.idempotency_key == idempotency_key))
        if known is not None:
            return known
    _check_role(role)
    flows = flows if flows is not None else workflows()
    wf = flows.get(type)
    if wf is None:
        raise InvalidInput(
            f"no order type {type!r} (types: {', '.join(sorted(flows))})", code="order.bad_type", field="type"
        )
    if area and area not in AREAS:
        raise InvalidInput(
            f"area {area!r} is not one of {', '.join(AREAS)}", code="order.bad_area", field="area"
        )
    _recorded(session, wf)
    when = ensure_aware(at, "at") if at else utcnow()
    state = wf.states[wf.initial]
    order = ServiceOrder(
        number=next_number(session, wf.prefix, when.year),
        type=wf.type,
        workflow_version=wf.version,
        state=wf.initial,
        team=state.team,
        area=area,
        account_id=account_id,
        service_agreement_id=service_agreement_id,
        service_point_id=service_point_id,
        meter_id=meter_id,
        data=dict(data or {}),
        created_at=when,
        created_by=by[:100],
        due_at=wf.order_due(when, area),
        state_entered_at=when,
        state_due_at=wf.state_due(wf.initial, when),
        idempotency_key=idempotency_key,
    )
    session.add(order)
    session.flush()
    session.add(
        ServiceOrderStep(
            order_id=order.id, at=when, action="open", from_state=None, to_state=wf.initial, by=by[:100],
            role=role, reason=reason[:200], data=dict(data or {}),
        )
    )  # fmt: skip
    _audit(session, order, "open", by, reason, None)
    session.flush()
    return order


def get_order(session: Session, number: str) -> ServiceOrder:
    """The order of a number (``order.not_found``)."""
    order = session.scalar(select(ServiceOrder).where(ServiceOrder.number == number))
    if order is None:
        raise NotFound(f"no service order {number}", code="order.not_found", number=number)
    return order


def take_action(
    session: Session,
    number: str,
    *,
    action: str,
    by: str,
    role: str,
    reason: str = "",
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> ServiceOrder:
    """Take ``action`` on order ``number`` as ``by`` in ``role``: the workflow's checks
    (``order.unknown_action``, ``order.action_not_allowed``, ``order.role_forbidden``,
    ``order.missing_data``), then the step, the audit entry, the new state and what it sets off."""
    _check_role(role)
    order = get_order(session, number)
    wf = workflow_of(session, order)
    merged = {**(order.data or {}), **(data or {})}
    before = _snapshot(order)
    new_state = wf.take(order.state, action, role, merged)
    when = ensure_aware(at, "at") if at else utcnow()
    step = ServiceOrderStep(
        order_id=order.id, at=when, action=action, from_state=order.state, to_state=new_state, by=by[:100],
        role=role, reason=reason[:200], data=dict(data or {}),
    )  # fmt: skip
    session.add(step)
    order.state = new_state
    order.data = merged
    order.team = wf.states[new_state].team
    order.state_entered_at = when
    order.state_due_at = wf.state_due(new_state, when)
    order.closed_at = when if new_state in wf.final else None
    session.flush()
    for trigger in wf.actions[action].triggers:
        spec = trigger.model_dump()
        session.add(ServiceOrderTrigger(order_id=order.id, step_id=step.id, kind=spec.pop("kind"), spec=spec))
    _audit(session, order, action, by, reason, before)
    session.flush()
    return order


@dataclass(frozen=True, slots=True)
class OrderView:
    """An order as staff see it: where it stands, what may be done next, its steps."""

    number: str
    type: str
    state: str
    state_label: str
    team: str
    area: str
    created_at: datetime
    due_at: datetime | None
    state_due_at: datetime | None
    closed_at: datetime | None
    data: dict[str, Any]
    next_actions: list[str]
    steps: list[dict[str, Any]]
    triggers: list[dict[str, Any]]
    escalations: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__slots__}
        for k in ("created_at", "due_at", "state_due_at", "closed_at"):
            out[k] = out[k].isoformat() if out[k] else None
        return out


def view_order(session: Session, number: str) -> OrderView:
    order = get_order(session, number)
    wf = workflow_of(session, order)
    steps = session.scalars(
        select(ServiceOrderStep).where(ServiceOrderStep.order_id == order.id).order_by(ServiceOrderStep.id)
    ).all()
    triggers = session.scalars(
        select(ServiceOrderTrigger)
        .where(ServiceOrderTrigger.order_id == order.id)
        .order_by(ServiceOrderTrigger.id)
    ).all()
    return OrderView(
        number=order.number,
        type=order.type,
        state=order.state,
        state_label=wf.states[order.state].label,
        team=order.team,
        area=order.area,
        created_at=order.created_at,
        due_at=order.due_at,
        state_due_at=order.state_due_at,
        closed_at=order.closed_at,
        data=dict(order.data or {}),
        next_actions=wf.allowed(order.state),
        steps=[
            {
                "at": s.at.isoformat(),
                "action": s.action,
                "from": s.from_state,
                "to": s.to_state,
                "by": s.by,
                "role": s.role,
                "reason": s.reason,
            }
            for s in steps
        ],
        triggers=[
            {"kind": t.kind, "spec": t.spec, "status": t.status, "result": t.result, "error": t.error}
            for t in triggers
        ],
        escalations=escalations_of(session, order.id),
    )


def list_orders(
    session: Session,
    *,
    type: str | None = None,
    state: str | None = None,
    team: str | None = None,
    open_only: bool = False,
    overdue_at: datetime | None = None,
    limit: int = 100,
) -> list[ServiceOrder]:
    """Orders, oldest first: of a type, in a state, in a team's queue, still open, or past their
    state's SLA at ``overdue_at``."""
    stmt = select(ServiceOrder).order_by(ServiceOrder.id).limit(limit)
    if type:
        stmt = stmt.where(ServiceOrder.type == type)
    if state:
        stmt = stmt.where(ServiceOrder.state == state)
    if team:
        stmt = stmt.where(ServiceOrder.team == team)
    if open_only or overdue_at is not None:
        stmt = stmt.where(ServiceOrder.closed_at.is_(None))
    if overdue_at is not None:
        stmt = stmt.where(ServiceOrder.state_due_at <= ensure_aware(overdue_at, "at"))
    return list(session.scalars(stmt))


__all__ = [
    "OrderView",
    "get_order",
    "list_orders",
    "next_number",
    "open_order",
    "take_action",
    "view_order",
    "workflow_of",
    "workflows",
]
