"""``/orders``: service orders run by their workflow files — the order types, open an order,
take an action on it, follow it, list a team's queue, carry out what actions set off."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from meter2cash.api.deps import PlatformDep, SessionDep
from meter2cash.api.errors import responses
from meter2cash.api.limits import LimitedRoute
from meter2cash.api.routers.common import Limit
from meter2cash.cis.orders import service as orders
from meter2cash.cis.orders.workflow import AREAS, ROLES
from meter2cash.core.timeutil import utcnow
from meter2cash.integration import orders as ops
from meter2cash.integration.order_triggers import context_of, run_triggers

router = APIRouter(tags=["orders"], route_class=LimitedRoute)

Number = Annotated[str, Path(min_length=1, max_length=24)]
Name = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_]*$")]
Role = Literal[ROLES]  # type: ignore[valid-type]
Area = Literal[(*AREAS, "")]  # type: ignore[valid-type]
Key = Annotated[str, Field(min_length=1, max_length=64)]
Who = Annotated[str, Field(min_length=1, max_length=100)]
Data = Annotated[dict[str, Any], Field(max_length=50)]


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Name
    area: Area = ""
    account: Key | None = None
    agreement: Key | None = None
    service_point: Key | None = None
    meter: Key | None = None
    data: Data = Field(default_factory=dict)
    idempotency_key: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    by: Who = "api"
    role: Role = "operator"
    reason: str = Field("", max_length=200)


class ActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Name
    data: Data = Field(default_factory=dict)
    by: Who = "api"
    role: Role = "operator"
    reason: str = Field("", max_length=200)
    #: Carry out what the action sets off at once.
    run: bool = True


class StepOut(BaseModel):
    at: str
    action: str
    from_: str | None = Field(alias="from")
    to: str
    by: str
    role: str
    reason: str


class TriggerOut(BaseModel):
    kind: str
    spec: dict[str, Any]
    status: str
    result: dict[str, Any]
    error: str


class EscalationOut(BaseModel):
    at: str
    state: str
    level: int
    to: str


class OrderOut(BaseModel):
    number: str
    type: str
    state: str
    state_label: str
    team: str
    area: str
    created_at: str
    due_at: str | None
    state_due_at: str | None
    closed_at: str | None
    data: dict[str, Any]
    next_actions: list[str]
    steps: list[StepOut]
    triggers: list[TriggerOut]
    escalations: list[EscalationOut]


class OrderRow(BaseModel):
    number: str
    type: str
    state: str
    team: str
    due_at: datetime | None
    state_due_at: datetime | None


class OrderTypeOut(BaseModel):
    type: str
    title: str
    version: str
    prefix: str
    initial: str
    states: list[str]
    actions: list[str]


class TriggerRunOut(BaseModel):
    done: int
    failed: int
    waiting: int


@router.get("/order-types", response_model=list[OrderTypeOut])
def order_types() -> list[dict[str, Any]]:
    """The order types with the workflow version in force, its states and actions."""
    return [
        {"type": t, "title": w.title, "version": w.version, "prefix": w.prefix, "initial": w.initial,
         "states": list(w.states), "actions": list(w.actions)}
        for t, w in sorted(orders.workflows().items())
    ]  # fmt: skip


@router.post("/orders", status_code=201, response_model=OrderOut, responses=responses(404, 409))
def post_order(body: OrderIn, session: SessionDep, platform: PlatformDep) -> dict[str, Any]:
    """Open an order in its workflow's first state (``order.bad_type``, ``order.unknown_account``,
    ``order.unknown_meter`` …); the same ``idempotency_key`` again returns the order first opened."""
    view = ops.open_order(
        session, type=body.type, by=body.by, role=body.role, reason=body.reason, area=body.area,
        account=body.account, agreement=body.agreement, service_point=body.service_point, meter=body.meter,
        data=body.data, idempotency_key=body.idempotency_key, at=platform.clock(),
    )  # fmt: skip
    return view.to_dict()


@router.post("/orders/{number}/actions", response_model=OrderOut, responses=responses(403, 404, 409))
def post_action(number: Number, body: ActionIn, session: SessionDep, platform: PlatformDep) -> dict[str, Any]:
    """Take an action: the workflow checks it (``order.unknown_action``, ``order.action_not_allowed``
    409, ``order.role_forbidden`` 403, ``order.missing_data``); the step and an audit entry are
    recorded and, with ``run``, what it sets off is carried out at once."""
    view = ops.act(
        session, number, action=body.action, by=body.by, role=body.role, reason=body.reason, data=body.data,
        run=body.run, at=platform.clock(), context=context_of(platform),
    )  # fmt: skip
    return view.to_dict()


@router.get("/orders/{number}", response_model=OrderOut, responses=responses(404))
def get_order(number: Number, session: SessionDep) -> dict[str, Any]:
    """An order: state, deadlines, data, the actions it may take next, its steps, what they set off."""
    return orders.view_order(session, number).to_dict()


@router.get("/orders", response_model=list[OrderRow])
def list_orders(
    session: SessionDep,
    type: Annotated[str | None, Query(max_length=40)] = None,
    state: Annotated[str | None, Query(max_length=40)] = None,
    team: Annotated[str | None, Query(max_length=40)] = None,
    open_only: Annotated[bool, Query(alias="open")] = False,
    overdue: bool = False,
    limit: Limit = 50,
) -> list[dict[str, Any]]:
    """Orders oldest first: of a type, in a state, in a team's queue, open, or past their state's SLA."""
    rows = orders.list_orders(
        session, type=type, state=state, team=team, open_only=open_only,
        overdue_at=utcnow() if overdue else None, limit=limit,
    )  # fmt: skip
    return [
        {"number": o.number, "type": o.type, "state": o.state, "team": o.team, "due_at": o.due_at,
         "state_due_at": o.state_due_at}
        for o in rows
    ]  # fmt: skip


@router.post("/order-triggers/run", response_model=TriggerRunOut)
def run_order_triggers(session: SessionDep, platform: PlatformDep) -> dict[str, int]:
    """Carry out what order actions set off and is still pending (commands, work orders, notices)."""
    return run_triggers(session, platform.clock(), context=context_of(platform)).to_dict()
