"""``/vee``: VEE runs, rule sets and the exceptions work queue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from meter2cash.api.deps import PlatformDep, SessionDep
from meter2cash.api.errors import responses
from meter2cash.api.limits import LimitedRoute
from meter2cash.api.routers.common import Limit, MeterFilter, Offset, length
from meter2cash.api.schemas import SaneDate
from meter2cash.cis.parties.customer_classes import service_point_classes
from meter2cash.core.errors import InvalidInput
from meter2cash.mdm.models import Meter
from meter2cash.mdm.vee import learned_store, rereads
from meter2cash.mdm.vee import work_queue as queue
from meter2cash.mdm.vee.candidates import meter_channels
from meter2cash.mdm.vee.models import VeeException, VeeRereadRequest, VeeRuleSetVersion
from meter2cash.mdm.vee.reports import vee_report
from meter2cash.mdm.vee.ruleset.store import current_rule_sets, get_rule_set, put_rule_set, rule_set_versions
from meter2cash.mdm.vee.service import run_vee

router = APIRouter(prefix="/vee", tags=["vee"], route_class=LimitedRoute)

#: A run over more days than this is refused (use the CLI or several runs).
MAX_RUN_DAYS = 366


#: Database ids in paths: positive 32-bit integers.
RowId = Annotated[int, Path(ge=1, le=2**31 - 1)]
RuleSetName = Annotated[str, Path(min_length=1, max_length=length(VeeRuleSetVersion.name))]
Actor = Annotated[str, Field(min_length=1, max_length=length(VeeException.assignee))]
Serial = Annotated[str, Field(min_length=1, max_length=length(Meter.serial))]
#: A slot of a UTC day as a JSON object key: 0 to 86,399 (one-second intervals at most).
Slot = Annotated[str, Field(pattern=r"^(0|[1-9][0-9]{0,3}|[1-7][0-9]{4}|8[0-5][0-9]{3}|86[0-3][0-9]{2})$")]
Value = Annotated[float, Field(allow_inf_nan=False)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunIn(_In):
    from_: SaneDate = Field(alias="from", description="first UTC day")
    to: SaneDate = Field(description="last UTC day (inclusive)")
    meters: list[Serial] = Field(
        default_factory=list, max_length=10_000, description="meter serials; empty = every meter"
    )
    all: bool = Field(False, description="re-validate validated days too, not only pending ones")
    rule_set: str | None = Field(
        None,
        min_length=1,
        max_length=length(VeeRuleSetVersion.name),
        description="one rule set for every channel (default: by eligibility)",
    )
    history_days: int = Field(14, ge=0, le=90)


class AssignIn(_In):
    assignee: Actor
    actor: Actor = "api"


class CommentIn(_In):
    text: str = Field(min_length=1, max_length=2000)
    author: Actor = "api"


class ResolveIn(_In):
    action: Literal["accept", "edit", "reread", "estimate"]
    reason: str = Field("", max_length=2000)
    #: For ``edit``: new values by slot of the day (``{"50": 1.2}``) [unit per interval].
    values: dict[Slot, Value] = Field(default_factory=dict, max_length=86_400)
    actor: Actor = "api"


@router.post("/runs", status_code=201, responses=responses(404, 413))
def post_run(body: RunIn, session: SessionDep, platform: PlatformDep) -> dict[str, Any]:
    """Validate and estimate the interval data of a window of UTC days (errors ``vee.*``)."""
    if body.to < body.from_ or (body.to - body.from_).days >= MAX_RUN_DAYS:
        raise InvalidInput(
            f"window {body.from_}..{body.to} must be 1 to {MAX_RUN_DAYS} days",
            code="vee.window_invalid",
            field="to",
        )
    start = datetime(body.from_.year, body.from_.month, body.from_.day, tzinfo=UTC)
    end = datetime(body.to.year, body.to.month, body.to.day, tzinfo=UTC) + timedelta(days=1)
    result = run_vee(
        session,
        start=start,
        end=end,
        channel_ids=meter_channels(session, body.meters) if body.meters else None,
        rule_set=get_rule_set(session, body.rule_set) if body.rule_set else None,
        only_pending=not body.all,
        history_days=body.history_days,
        tz=platform.settings.tz,
        customer_classes=service_point_classes,
    )
    return result.to_dict()


@router.get("/runs/{run_id}", responses=responses(404))
def get_run(run_id: RowId, session: SessionDep) -> dict[str, Any]:
    """A run's findings by rule and estimates by method (error ``vee.run_not_found``)."""
    return vee_report(session, run_id)


@router.get("/models")
def list_models_endpoint(
    session: SessionDep,
    active: Annotated[bool, Query(description="only the active version of each scope")] = False,
) -> list[dict[str, Any]]:
    """Stored learned estimators: scope, interval, version, training window and held-out MAE."""
    return learned_store.list_models(session, active_only=active)


@router.get("/rule-sets")
def list_rule_sets(session: SessionDep) -> list[dict[str, Any]]:
    """The current rule sets: name, version, description, eligibility."""
    return [
        {
            "name": r.name,
            "version": r.version,
            "description": r.description,
            "eligibility": r.eligibility.model_dump(),
        }
        for r in sorted(current_rule_sets(session).values(), key=lambda r: r.name)
    ]


@router.get("/rule-sets/{name}", responses=responses(404))
def get_rule_set_endpoint(name: RuleSetName, session: SessionDep) -> dict[str, Any]:
    """The current version of a rule set, whole, and its version history (``vee.rule_set_not_found``)."""
    return {**get_rule_set(session, name).to_mapping(), "versions": rule_set_versions(session, name)}


@router.put("/rule-sets/{name}", responses=responses(409, 413))
def put_rule_set_endpoint(
    name: RuleSetName,
    body: Annotated[dict[str, Any], Body(description="a whole rule set (docs/vee.md), with a new version")],
    session: SessionDep,
) -> dict[str, Any]:
    """Store a new version of a rule set (``vee.rule_set_invalid``, ``vee.rule_set_version_exists``)."""
    return put_rule_set(session, name, body, actor="api").to_mapping()


@router.get("/exceptions")
def list_exceptions(
    session: SessionDep,
    limit: Limit = 50,
    offset: Offset = 0,
    status: Annotated[
        str | None,
        Query(
            max_length=length(VeeException.status), description="open, assigned, reread_requested, resolved"
        ),
    ] = None,
    rule: Annotated[str | None, Query(max_length=length(VeeException.rule))] = None,
    assignee: Annotated[str | None, Query(max_length=length(VeeException.assignee))] = None,
    meter: MeterFilter = None,
    open_only: bool = False,
) -> dict[str, Any]:
    """The work queue, most urgent first (priority, then age)."""
    items, total = queue.list_exceptions(
        session,
        status=status,
        rule=rule,
        assignee=assignee,
        meter=meter,
        open_only=open_only,
        limit=limit,
        offset=offset,
    )
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.get("/rereads")
def list_rereads_endpoint(
    session: SessionDep,
    limit: Limit = 50,
    offset: Offset = 0,
    status: Annotated[
        str | None,
        Query(max_length=length(VeeRereadRequest.status), description="requested, sent, completed, failed"),
    ] = None,
    meter: MeterFilter = None,
) -> dict[str, Any]:
    """Re-read requests to the head-end, newest first, with when they were sent and what came back."""
    items, total = rereads.list_rereads(session, status=status, meter=meter, limit=limit, offset=offset)
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.get("/exceptions/{exception_id}", responses=responses(404))
def get_exception(exception_id: RowId, session: SessionDep) -> dict[str, Any]:
    """One exception with its finding, comments, re-read requests and values (``vee.exception_not_found``)."""
    return queue.get_exception(session, exception_id)


@router.post("/exceptions/{exception_id}/assign", responses=responses(404, 409, 413))
def assign_exception(exception_id: RowId, body: AssignIn, session: SessionDep) -> dict[str, Any]:
    return queue.assign(session, exception_id, body.assignee, actor=body.actor)


@router.post("/exceptions/{exception_id}/comments", status_code=201, responses=responses(404, 413))
def comment_exception(exception_id: RowId, body: CommentIn, session: SessionDep) -> dict[str, Any]:
    queue.comment(session, exception_id, body.text, author=body.author)
    return queue.get_exception(session, exception_id)


@router.post("/exceptions/{exception_id}/resolve", responses=responses(404, 409, 413))
def resolve_exception(exception_id: RowId, body: ResolveIn, session: SessionDep) -> dict[str, Any]:
    """Accept, edit (values by slot + reason), request a re-read, or estimate (errors ``vee.*``)."""
    return queue.resolve(
        session,
        exception_id,
        body.action,
        actor=body.actor,
        reason=body.reason,
        values={int(slot): value for slot, value in body.values.items()},
    )
