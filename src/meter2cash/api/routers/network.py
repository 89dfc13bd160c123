"""``/audit/energy``, ``/reads``, ``/network``: the energy audit, read success and missed
intervals, and the network hierarchy with its history."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from meter2cash.api.deps import PlatformDep, SessionDep
from meter2cash.api.errors import responses
from meter2cash.api.routers.common import length
from meter2cash.api.schemas import SaneDate
from meter2cash.core.timeutil import FIRST_DATE, LAST_DATE, utcnow
from meter2cash.mdm import acquisition, energy_audit, network
from meter2cash.mdm.models import Meter
from meter2cash.mdm.network_models import NetworkLink

router = APIRouter(tags=["network"])


def _sane_time(ts: datetime) -> datetime:
    if not FIRST_DATE <= ts.astimezone(UTC).date() <= LAST_DATE:
        raise ValueError(f"a time from {FIRST_DATE} to {LAST_DATE}")
    return ts.astimezone(UTC)


#: An ISO 8601 time with an offset, between the platform's first and last dates.
SaneTime = Annotated[AwareDatetime, AfterValidator(_sane_time)]
Code = Annotated[str, Field(min_length=1, max_length=length(Meter.serial))]
Actor = Annotated[str, Field(min_length=1, max_length=100)]
FromDay = Annotated[SaneDate, Query(alias="from", description="first local day")]
ToDay = Annotated[SaneDate, Query(alias="to", description="last local day (inclusive)")]
FromTime = Annotated[SaneTime, Query(alias="from", description="start, ISO 8601 with offset")]
ToTime = Annotated[SaneTime, Query(alias="to", description="end (exclusive), ISO 8601 with offset")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AuditRowOut(BaseModel):
    node: str
    period: str = Field(description="local day YYYY-MM-DD or month YYYY-MM")
    energy_in: float | None = Field(description="boundary meter's kWh import; null without one")
    consumers: float = Field(description="kWh of the consumers below the node")
    loss: float | None = Field(description="energy in − consumers [kWh]")
    loss_share: float | None = Field(description="loss / energy in")
    in_estimated_share: float | None
    consumers_estimated_share: float | None
    estimated_share: float | None = Field(description="estimated kWh / kWh of both sides")
    in_completeness: float | None
    consumers_completeness: float | None
    completeness: float | None = Field(description="intervals received / intervals expected, both sides")
    service_points: int


class EnergyAuditOut(BaseModel):
    level: Literal["dt", "feeder"]
    by: Literal["day", "month"]
    from_: str = Field(alias="from")
    to: str
    timezone: str
    rows: list[AuditRowOut]

    model_config = ConfigDict(populate_by_name=True)


class SuccessRowOut(BaseModel):
    level: Literal["dcu", "feeder", "fleet"]
    node: str
    expected: int
    complete: int
    share: float | None = Field(description="complete / expected [%]")
    meets_target: bool


class ReadSuccessOut(BaseModel):
    day: str
    timezone: str
    target: float = Field(description="[%]")
    dcus: list[SuccessRowOut]
    feeders: list[SuccessRowOut]
    total: SuccessRowOut


class GapOut(BaseModel):
    meter: str
    channel: str
    from_: str = Field(alias="from")
    to: str
    intervals: int
    command_id: int | None = None
    status: str | None = None

    model_config = ConfigDict(populate_by_name=True)


class GapsOut(BaseModel):
    gaps: list[GapOut]
    requested: bool


class ReacquireIn(_In):
    from_: SaneTime = Field(alias="from", description="start of the window searched for gaps")
    to: SaneTime = Field(description="end (exclusive)")
    requested_by: Actor = "api"


class NetworkChangeIn(_In):
    link: Literal["meter_dcu", "service_point_dt", "dt_feeder"]
    child: Code = Field(description="meter serial, service point code or transformer code")
    parent: Code = Field(description="DCU, transformer or feeder code")
    effective_at: SaneTime
    source: Annotated[str, Field(min_length=1, max_length=length(NetworkLink.source))] = "api"
    actor: Actor = "api"


class NetworkChangeOut(BaseModel):
    link: str
    child: str
    parent: str
    effective_at: datetime
    changed: bool = Field(description="false when the link was already known from that time")


class ParentOut(BaseModel):
    kind: str
    code: str


class LinkOut(BaseModel):
    link: str
    parent: str | None
    from_: str | None = Field(alias="from", description="null: known since before any recorded change")
    to: str | None = Field(description="null: current")
    source: str

    model_config = ConfigDict(populate_by_name=True)


class BoundaryOut(BaseModel):
    meter: str
    from_: str = Field(alias="from")
    to: str | None

    model_config = ConfigDict(populate_by_name=True)


class NetworkNodeOut(BaseModel):
    code: str
    kind: Literal["feeder", "dt", "dcu", "meter", "service_point"]
    parent: ParentOut | None
    children: list[str]
    history: list[LinkOut]
    boundary_meters: list[BoundaryOut] | None = None


@router.get(
    "/audit/energy", response_model=EnergyAuditOut, response_model_by_alias=True, responses=responses(422)
)
def get_energy_audit(
    first: FromDay,
    last: ToDay,
    session: SessionDep,
    platform: PlatformDep,
    by: Annotated[Literal["day", "month"], Query()] = "day",
    level: Annotated[Literal["dt", "feeder"], Query()] = "dt",
) -> dict[str, Any]:
    """Energy in against consumers per transformer or feeder and local day or month, with the loss,
    estimated shares and completeness (``audit.window_invalid``: over 400 days or reversed)."""
    return energy_audit.energy_audit(
        session, first, last, tz=platform.settings.timezone, by=by, level=level
    ).to_dict()


@router.get("/reads/success", response_model=ReadSuccessOut, responses=responses(422))
def get_read_success(
    day: Annotated[SaneDate, Query(description="local day")],
    session: SessionDep,
    platform: PlatformDep,
    target: Annotated[
        Decimal, Query(ge=0, le=100, max_digits=6, decimal_places=3)
    ] = acquisition.READ_SUCCESS_TARGET,
) -> dict[str, Any]:
    """Meters with complete interval data for a local day per DCU, per feeder and for the fleet,
    against the target [%] (AMISP: 98.5)."""
    return acquisition.read_success(session, day, tz=platform.settings.timezone, target=target).to_dict()


@router.get("/reads/gaps", response_model=GapsOut, response_model_by_alias=True, responses=responses(422))
def get_gaps(start: FromTime, end: ToTime, session: SessionDep) -> dict[str, Any]:
    """Missing intervals of every expected channel, one entry per contiguous window
    (``acquisition.window_invalid``: empty or over 31 days)."""
    return {"gaps": [g.to_dict() for g in acquisition.find_gaps(session, start, end)], "requested": False}


@router.post(
    "/reads/reacquire", response_model=GapsOut, response_model_by_alias=True, responses=responses(422)
)
def post_reacquire(body: ReacquireIn, session: SessionDep) -> dict[str, Any]:
    """Issue one ``reacquire`` command per gap of the window (repeating returns the same commands)."""
    gaps = acquisition.find_gaps(session, body.from_, body.to)
    done = acquisition.request_reacquisition(session, gaps, requested_by=body.requested_by, at=utcnow())
    return {"gaps": [r.to_dict() for r in done], "requested": True}


@router.post("/network/changes", response_model=NetworkChangeOut, responses=responses(404, 422))
def post_network_change(body: NetworkChangeIn, session: SessionDep) -> dict[str, Any]:
    """Record a change of the hierarchy from a time on (audited); ``changed`` is false when it was
    already known (``network.unknown_child``, ``network.unknown_parent``)."""
    changed = network.apply_network_change(
        session, link=body.link, child=body.child, parent=body.parent, effective_at=body.effective_at,
        source=body.source, actor=body.actor,
    )  # fmt: skip
    return {"link": body.link, "child": body.child, "parent": body.parent, "effective_at": body.effective_at,
            "changed": changed}  # fmt: skip


@router.get(
    "/network/{code}", response_model=NetworkNodeOut, response_model_by_alias=True, responses=responses(404)
)
def get_network_node(
    code: Annotated[str, Path(min_length=1, max_length=length(Meter.serial), description="any node's code")],
    session: SessionDep,
) -> dict[str, Any]:
    """A feeder, transformer, DCU, meter or service point: its parent, children and link history
    (``network.unknown_node``)."""
    return network.describe_node(session, code)
