"""``/commands``: commands to meters through the head-end — issue (one meter or a group), follow
with the audit trail, cancel before sending, report an outcome."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from meter2cash.api.deps import SessionDep
from meter2cash.api.errors import responses
from meter2cash.api.limits import LimitedRoute
from meter2cash.api.routers.common import Limit, MeterFilter, length
from meter2cash.integration import commands as ops
from meter2cash.mdm.commands.models import MeterCommand
from meter2cash.mdm.commands.params import KINDS
from meter2cash.mdm.commands.states import STATUSES
from meter2cash.mdm.models import Meter

router = APIRouter(tags=["commands"], route_class=LimitedRoute)

CommandId = Annotated[int, Path(ge=1, le=2**31 - 1)]
Actor = Annotated[str, Field(min_length=1, max_length=length(MeterCommand.requested_by))]
Serial = Annotated[str, Field(min_length=1, max_length=length(Meter.serial))]
Kind = Literal[KINDS]  # type: ignore[valid-type]
ListedStatus = Literal[(*STATUSES, "pending", "success", "partial")]  # type: ignore[valid-type]


class CommandIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Kind
    #: One meter, or several for a group command.
    meters: list[Serial] = Field(min_length=1, max_length=ops.MAX_GROUP)
    params: dict[str, Any] = Field(default_factory=dict)
    reason: str = Field("manual", min_length=1, max_length=length(MeterCommand.reason))
    idempotency_key: str | None = Field(None, min_length=1, max_length=length(MeterCommand.idempotency_key))
    actor: Actor = "api"


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=200)
    actor: Actor = "api"


class ReportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["queued", "sent", "acknowledged", "executed", "failed", "timed_out", "cancelled"]
    at: AwareDatetime | None = None
    detail: str = Field("", max_length=200)
    relay: Literal["connected", "disconnected"] | None = None
    by: Actor = "hes"


class StepOut(BaseModel):
    at: str
    from_: str | None = Field(alias="from")
    to: str
    by: str
    detail: str


class CommandOut(BaseModel):
    id: int
    kind: str
    meter: str | None
    group: bool
    parent_id: int | None
    status: str
    params: dict[str, Any]
    reason: str
    requested_by: str
    idempotency_key: str | None
    attempts: int
    message_id: str | None
    requested_at: str
    sent_at: str | None
    acknowledged_at: str | None
    finished_at: str | None
    deadline: str | None
    detail: str
    result: dict[str, Any]
    relay_state: str | None
    relay_confirmed_at: str | None
    steps: list[StepOut]
    progress: dict[str, Any] | None


@router.post("/commands", status_code=201, response_model=CommandOut, responses=responses(404, 409, 413))
def post_command(body: CommandIn, session: SessionDep) -> dict[str, Any]:
    """Issue a command to one meter, or to several as a group whose outcome follows its children
    (errors ``command.bad_kind``, ``command.bad_params``, ``command.unknown_meter``). The same
    ``idempotency_key`` again returns the command first issued."""
    cmd = ops.issue(
        session,
        kind=body.kind,
        serials=body.meters,
        actor=body.actor,
        reason=body.reason,
        params=body.params,
        idempotency_key=body.idempotency_key,
    )
    return ops.show(session, cmd.id).to_dict()


@router.get("/commands", response_model=list[CommandOut], responses=responses(404))
def list_commands(
    session: SessionDep,
    status: Annotated[ListedStatus | None, Query()] = None,
    kind: Annotated[Kind | None, Query()] = None,
    meter: MeterFilter = None,
    group: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    limit: Limit = 50,
) -> list[dict[str, Any]]:
    """Commands newest first, by status, kind, meter or group (``command.unknown_meter``)."""
    views = ops.find(session, status=status, kind=kind, serial=meter, parent_id=group, limit=limit)
    return [v.to_dict() for v in views]


@router.get("/commands/{command_id}", response_model=CommandOut, responses=responses(404))
def get_command(command_id: CommandId, session: SessionDep) -> dict[str, Any]:
    """A command with its audit trail; a group with its outcome (``command.not_found``)."""
    return ops.show(session, command_id).to_dict()


@router.post("/commands/{command_id}/cancel", response_model=CommandOut, responses=responses(404, 409, 413))
def cancel_command(command_id: CommandId, body: CancelIn, session: SessionDep) -> dict[str, Any]:
    """Withdraw a command not yet sent (``command.bad_transition`` once it was)."""
    ops.cancel(session, command_id, actor=body.actor, reason=body.reason)
    return ops.show(session, command_id).to_dict()


@router.post("/commands/{command_id}/reports", response_model=CommandOut, responses=responses(404, 409, 413))
def report_command(command_id: CommandId, body: ReportIn, session: SessionDep) -> dict[str, Any]:
    """A head-end's report on a command; a relay state read back sets the supply
    (``command.not_found``, ``command.bad_transition``)."""
    at: datetime | None = body.at
    ops.report(
        session,
        command_id=command_id,
        status=body.status,
        at=at,
        detail=body.detail,
        result={"relay": body.relay} if body.relay else None,
        by=body.by,
    )
    return ops.show(session, command_id).to_dict()


class RolloutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    image: str = Field(min_length=1, max_length=200)
    version: str = Field(min_length=1, max_length=40)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    #: Meters in rollout order; empty: every installed meter.
    meters: list[Serial] = Field(default_factory=list, max_length=ops.MAX_GROUP)
    stages: list[Annotated[float, Field(gt=0, le=1)]] = Field(
        default=[0.01, 0.1, 1.0], min_length=1, max_length=20
    )
    min_success: float = Field(0.95, gt=0, le=1)
    idempotency_key: str | None = Field(None, min_length=1, max_length=length(MeterCommand.idempotency_key))
    actor: Actor = "api"


class AdvanceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    actor: Actor = "api"


@router.post("/commands/firmware-rollouts", status_code=201, response_model=CommandOut,
             responses=responses(404, 413))  # fmt: skip
def post_rollout(body: RolloutIn, session: SessionDep) -> dict[str, Any]:
    """Start a staged firmware rollout; the first stage is issued now (``command.bad_rollout``,
    ``command.unknown_meter``, ``command.no_meters``)."""
    parent = ops.rollout(
        session,
        serials=body.meters,
        image=body.image,
        version=body.version,
        sha256=body.sha256,
        stages=body.stages,
        min_success=body.min_success,
        actor=body.actor,
        idempotency_key=body.idempotency_key,
    )
    return ops.show(session, parent.id).to_dict()


@router.post("/commands/{command_id}/advance", response_model=CommandOut, responses=responses(404, 409, 413))
def advance_rollout(command_id: CommandId, body: AdvanceIn, session: SessionDep) -> dict[str, Any]:
    """Issue a rollout's next stage once the current one succeeded well enough, or halt it
    (``command.not_found``, ``command.not_a_rollout``)."""
    ops.advance(session, command_id, actor=body.actor)
    return ops.show(session, command_id).to_dict()
