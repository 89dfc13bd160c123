"""Meter events, outages and work orders; routing run on demand; the WFM's completions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from meter2cash.api.deps import PlatformDep, SessionDep
from meter2cash.api.errors import responses
from meter2cash.api.limits import LimitedRoute
from meter2cash.api.routers.common import Limit, MeterSerial, Offset, length
from meter2cash.core.errors import InvalidInput
from meter2cash.core.timeutil import check_date
from meter2cash.integration.event_routing import DISPOSITIONS, route_events
from meter2cash.integration.work_orders import WorkOrderView, views, work_order_page
from meter2cash.mdm.events.queries import list_outages, meter_events
from meter2cash.workforce import service as workforce
from meter2cash.workforce.models import WorkOrder

router = APIRouter(tags=["events"], route_class=LimitedRoute)

Category = Literal["voltage", "current", "power", "tamper", "relay", "load", "other"]
WorkOrderStatus = Literal["open", "assigned", "in_progress", "completed", "cancelled"]
WorkOrderNumber = Annotated[
    str, Path(min_length=1, max_length=length(WorkOrder.number), description="work order number")
]
Actor = Annotated[str, Field(min_length=1, max_length=100, pattern=r"\S")]


class EventOut(BaseModel):
    id: int
    occurred_at: datetime
    code: str = Field(description="IS 15959 event ID as received")
    name: str | None = Field(description="the catalogue's name; null for an uncatalogued ID")
    cim_type: str | None = Field(description="IEC 61968-9 EndDeviceEventType")
    category: str
    priority: str | None
    description: str
    episode_id: int | None = Field(description="the occurrence-restoration episode the event belongs to")
    episode_opened_at: datetime | None
    episode_closed_at: datetime | None


class MeterEventsOut(BaseModel):
    meter: str
    events: list[EventOut]


class OutageOut(BaseModel):
    id: int
    level: str = Field(description="dt, feeder or meter")
    dt: str | None
    feeder: str | None
    meter: str | None
    started_at: datetime
    restored_at: datetime | None
    meters_affected: int
    meters_restored: int
    notified_oms_at: datetime | None


class WorkOrderOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
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


class WorkOrderPage(BaseModel):
    items: list[WorkOrderOut]
    total: int
    limit: int
    offset: int


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AssignIn(_In):
    assignee: Actor = Field(description="crew or technician")
    actor: Actor = "api"


class CompleteIn(_In):
    outcome: str = Field(min_length=1, max_length=200, pattern=r"\S", description="e.g. tamper_confirmed")
    notes: str = Field("", max_length=2000)
    actor: Actor = "wfm"


class RouteIn(_In):
    limit: int = Field(50_000, ge=1, le=50_000, description="events to route at most")


class RoutingOut(BaseModel):
    cursor_before: int
    cursor: int
    events: int
    rules_version: str
    dispositions: dict[str, int] = Field(
        description=f"events by what became of them: {', '.join(DISPOSITIONS)}"
    )
    episodes_opened: int
    episodes_closed: int
    outages_started: int
    outages_updated: int
    outages_restored: int
    tamper_flags: int
    work_orders: list[str]
    disconnects: int
    load_violations: int
    messages: int
    actions: int


def _when(name: str, ts: datetime | None) -> datetime | None:
    if ts is None:
        return None
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise InvalidInput(
            f"{name} {ts.isoformat()} has no time zone; give an offset such as +05:30 or Z",
            code="events.naive_timestamp",
            parameter=name,
        )
    check_date(ts.date(), name, code="events.invalid_window")
    return ts


def _wo(v: WorkOrderView) -> WorkOrderOut:
    return WorkOrderOut.model_validate(v)


@router.get("/meters/{serial}/events", response_model=MeterEventsOut, responses=responses(404))
def list_meter_events(
    serial: MeterSerial,
    session: SessionDep,
    from_: Annotated[datetime | None, Query(alias="from", description="from (ISO 8601 with offset)")] = None,
    to: Annotated[datetime | None, Query(description="until, exclusive (ISO 8601 with offset)")] = None,
    category: Annotated[Category | None, Query(description="only events of this category")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000, description="events at most")] = 1000,
) -> MeterEventsOut:
    """A meter's events, oldest first, with CIM type, category, priority and episode
    (``meter.not_found``, ``events.naive_timestamp``, ``events.invalid_window``)."""
    start, end = _when("from", from_), _when("to", to)
    rows = meter_events(session, serial, start=start, end=end, category=category, limit=limit)
    return MeterEventsOut(
        meter=serial, events=[EventOut.model_validate(r, from_attributes=True) for r in rows]
    )


@router.get("/outages", response_model=list[OutageOut])
def get_outages(
    session: SessionDep,
    open: Annotated[bool | None, Query(description="true: open only; false: restored only")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[OutageOut]:
    """Outages, the latest first."""
    rows = list_outages(session, open_only=open, limit=limit, offset=offset)
    return [OutageOut.model_validate(r, from_attributes=True) for r in rows]


@router.get("/work-orders", response_model=WorkOrderPage)
def get_work_orders(
    session: SessionDep, status: WorkOrderStatus | None = None, limit: Limit = 100, offset: Offset = 0
) -> WorkOrderPage:
    """Work orders, the newest first."""
    items, total = work_order_page(session, status=status, limit=limit, offset=offset)
    return WorkOrderPage(items=[_wo(v) for v in items], total=total, limit=limit, offset=offset)


@router.post("/work-orders/{number}/assign", response_model=WorkOrderOut, responses=responses(404, 409))
def assign_work_order(number: WorkOrderNumber, body: AssignIn, session: SessionDep) -> WorkOrderOut:
    """Assign a work order to a crew (``work_order.not_found``, ``work_order.bad_transition``)."""
    wo = workforce.assign(session, number, body.assignee, actor=body.actor)
    return _wo(views(session, [wo])[0])


@router.post("/work-orders/{number}/complete", response_model=WorkOrderOut, responses=responses(404, 409))
def complete_work_order(number: WorkOrderNumber, body: CompleteIn, session: SessionDep) -> WorkOrderOut:
    """The WFM reports a work order done, with its outcome; audited (``work_order.not_found``,
    ``work_order.bad_transition``). The same completion again changes nothing."""
    wo = workforce.complete(session, number, body.outcome, actor=body.actor, notes=body.notes)
    return _wo(views(session, [wo])[0])


@router.post("/events/route", response_model=RoutingOut)
def route_now(session: SessionDep, platform: PlatformDep, body: RouteIn | None = None) -> RoutingOut:
    """Route the meter events stored since the last run, with the packaged rules."""
    result = route_events(session, now=platform.clock(), limit=(body or RouteIn()).limit)
    return RoutingOut.model_validate(result.to_dict())
