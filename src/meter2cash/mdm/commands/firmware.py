"""A firmware upgrade rolled out in stages: a pilot first, then ever larger shares of the fleet,
each stage only when the one before it succeeded well enough.

A rollout is a group command of kind ``firmware`` whose plan is kept in its ``result`` under
``rollout``: the meters in rollout order, the cumulative share of the fleet each stage reaches
(e.g. 1 %, 10 %, 100 %), the success share a stage must reach before the next starts, and the
current stage. :func:`start_rollout` issues the first stage; :func:`advance_rollout` (run it
after reports arrive; the gateway's loop does) issues the next stage once every child of the
current one has settled, or halts the rollout when too few succeeded. The group's outcome stays
``pending`` until the last stage settles or the rollout halts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from meter2cash.core.errors import Conflict, InvalidInput, NotFound
from meter2cash.core.timeutil import ensure_aware, utcnow
from meter2cash.mdm.commands.models import MeterCommand
from meter2cash.mdm.commands.params import check_params
from meter2cash.mdm.commands.service import issue_group, issue_many, refresh_group
from meter2cash.mdm.commands.states import SETTLED


def stage_sizes(n: int, shares: Sequence[float]) -> list[int]:
    """How many meters each stage adds, from the cumulative ``shares`` of ``n`` meters (rounded
    up, at least one meter in the first stage; the last share must be 1). A stage that would add
    no meter (a small fleet) is left out."""
    if not shares or any(not 0 < s <= 1 for s in shares) or list(shares) != sorted(shares) or shares[-1] != 1:
        raise InvalidInput(
            "stages are growing shares of the fleet ending at 1, e.g. 0.01,0.1,1", code="command.bad_rollout"
        )
    reach = [min(n, max(1, math.ceil(n * s - 1e-9))) for s in shares]
    sizes, before = [], 0
    for r in reach:
        r = max(r, before)
        if r > before:
            sizes.append(r - before)
        before = r
    return sizes


def start_rollout(
    session: Session,
    *,
    meter_ids: Sequence[int],
    image: str,
    version: str,
    sha256: str,
    stages: Sequence[float] = (0.01, 0.1, 1.0),
    min_success: float = 0.95,
    requested_by: str,
    idempotency_key: str | None = None,
    at: datetime | None = None,
) -> MeterCommand:
    """Start a staged firmware rollout to ``meter_ids`` (in that order); the first stage is
    issued now. ``command.bad_rollout``, ``command.bad_params``, ``command.unknown_meter``."""
    if not 0 < min_success <= 1:
        raise InvalidInput("min_success is a share between 0 and 1", code="command.bad_rollout")
    ordered = list(dict.fromkeys(meter_ids))
    sizes = stage_sizes(len(ordered), stages)
    when = ensure_aware(at, "at") if at else utcnow()
    params = {"image": image, "version": version, "sha256": sha256, "stage": 1}
    first = ordered[: sizes[0]]
    parent = issue_group(
        session,
        kind="firmware",
        meter_ids=first,
        reason="firmware.rollout",
        requested_by=requested_by,
        params=params,
        idempotency_key=idempotency_key,
        at=when,
    )
    if "rollout" not in (parent.result or {}):
        parent.result = {
            **(parent.result or {}),
            "rollout": {
                "meters": ordered,
                "sizes": sizes,
                "stages": list(stages),
                "min_success": min_success,
                "stage": 1,
                "halted": "",
            },
        }
        parent.detail = f"{len(ordered)} meters in {len(sizes)} stages"
        refresh_group(session, parent.id, when)
    session.flush()
    return parent


def advance_rollout(
    session: Session, parent_id: int, *, at: datetime | None = None, by: str = "rollout"
) -> dict[str, Any]:
    """Issue the next stage of a rollout once its current stage has settled and succeeded well
    enough, or halt it; returns the plan as it now stands. ``command.not_found``,
    ``command.not_a_rollout``."""
    parent = session.get(MeterCommand, parent_id)
    if parent is None or not parent.is_group:
        raise NotFound(f"no group command {parent_id}", code="command.not_found")
    plan = dict((parent.result or {}).get("rollout") or {})
    if not plan:
        raise Conflict(f"command {parent_id} is not a firmware rollout", code="command.not_a_rollout")
    when = ensure_aware(at, "at") if at else utcnow()
    stage = int(plan["stage"])
    if plan["halted"] or stage >= len(plan["sizes"]):
        return plan
    counts = dict(
        session.execute(
            select(MeterCommand.status, func.count())
            .where(MeterCommand.parent_id == parent_id, MeterCommand.params["stage"].as_integer() == stage)
            .group_by(MeterCommand.status)
        ).all()
    )
    total = sum(counts.values())
    if total == 0 or any(s not in SETTLED for s in counts):
        return plan
    share = counts.get("executed", 0) / total
    if share < float(plan["min_success"]):
        plan["halted"] = f"stage {stage}: {share:.1%} succeeded, below {float(plan['min_success']):.0%}"
    else:
        start = sum(plan["sizes"][:stage])
        meters = plan["meters"][start : start + plan["sizes"][stage]]
        params = check_params(
            "firmware", {**{k: parent.params[k] for k in ("image", "version", "sha256")}, "stage": stage + 1}
        )
        issue_many(
            session,
            [
                {"kind": "firmware", "meter_id": m, "reason": "firmware.rollout", "requested_at": when,
                 "params": params, "parent_id": parent.id}
                for m in meters
            ],
            by=by,
        )  # fmt: skip
        plan["stage"] = stage + 1
    parent.result = {**parent.result, "rollout": plan}
    refresh_group(session, parent.id, when)
    session.flush()
    return plan


def advance_rollouts(session: Session, now: datetime) -> int:
    """:func:`advance_rollout` for every rollout still pending; returns how many moved on to a
    next stage or halted."""
    pending = session.scalars(
        select(MeterCommand.id).where(
            MeterCommand.is_group.is_(True), MeterCommand.kind == "firmware", MeterCommand.status == "pending"
        )
    ).all()
    moved = 0
    for parent_id in pending:
        before = session.get(MeterCommand, parent_id)
        stage = (before.result or {}).get("rollout", {}).get("stage") if before else None
        if stage is None:
            continue
        plan = advance_rollout(session, parent_id, at=now, by="rollout")
        moved += int(plan["stage"] != stage or bool(plan["halted"]))
    return moved
