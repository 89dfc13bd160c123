"""Commands as staff and other systems use them: issue to meters by serial (one or a group),
cancel, report, look up — each staff action with an audit entry — and the CIS following what the
head-end reports (a prepaid wallet's supply follows the relay read back).

The CLI (``m2c commands``) and the API (``/api/v1/commands``) both call these functions, so the
checks, the error codes and the audit are the same. Functions take a Session and flush; none
commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from meter2cash.audit.models import AuditEntry
from meter2cash.cis.prepaid.wallet import follow_supply
from meter2cash.core.errors import InvalidInput, NotFound
from meter2cash.core.timeutil import utcnow
from meter2cash.mdm.commands.firmware import advance_rollout, start_rollout
from meter2cash.mdm.commands.models import MeterCommand
from meter2cash.mdm.commands.service import (
    apply_report,
    cancel_command,
    command_steps,
    group_progress,
    issue_command,
    issue_group,
)
from meter2cash.mdm.models import Meter

#: The most meters one group command names.
MAX_GROUP = 100_000


def _meter_ids(session: Session, serials: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    unique = sorted(set(serials))
    for lo in range(0, len(unique), 2000):
        found.update(
            session.execute(
                select(Meter.serial, Meter.id).where(Meter.serial.in_(unique[lo : lo + 2000]))
            ).all()
        )
    missing = [s for s in unique if s not in found]
    if missing:
        raise NotFound(
            f"unknown meters: {', '.join(missing[:10])}{' …' if len(missing) > 10 else ''}",
            code="command.unknown_meter",
            meters=missing[:100],
        )
    return found


def _audit(session: Session, actor: str, action: str, cmd: MeterCommand, why: str) -> None:
    session.add(
        AuditEntry(
            actor=actor,
            action=action,
            entity="meter_command",
            entity_id=str(cmd.id),
            before=None,
            after={"kind": cmd.kind, "status": cmd.status, "params": cmd.params, "reason": why},
        )
    )


def issue(
    session: Session,
    *,
    kind: str,
    serials: Sequence[str],
    actor: str,
    reason: str = "manual",
    params: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    at: datetime | None = None,
) -> MeterCommand:
    """Issue ``kind`` to one meter, or to several as a group (the parent is returned), on behalf
    of ``actor``; audited. ``command.no_meters``, ``command.too_many_meters``,
    ``command.unknown_meter``, ``command.bad_kind``, ``command.bad_params``."""
    if not serials:
        raise InvalidInput("name at least one meter", code="command.no_meters")
    if len(serials) > MAX_GROUP:
        raise InvalidInput(f"at most {MAX_GROUP:,} meters in one group", code="command.too_many_meters")
    ids = _meter_ids(session, serials)
    cmd = (
        issue_command(
            session,
            kind=kind,
            meter_id=next(iter(ids.values())),
            reason=reason,
            requested_by=actor,
            params=params,
            idempotency_key=idempotency_key,
            at=at,
        )
        if len(ids) == 1
        else issue_group(
            session,
            kind=kind,
            meter_ids=ids.values(),
            reason=reason,
            requested_by=actor,
            params=params,
            idempotency_key=idempotency_key,
            at=at,
        )
    )
    _audit(session, actor, "command.issued", cmd, reason)
    session.flush()
    return cmd


def cancel(session: Session, command_id: int, *, actor: str, reason: str) -> MeterCommand:
    """Withdraw a command not yet sent; audited (``command.bad_transition`` once it was)."""
    cmd = cancel_command(session, command_id, by=actor, reason=reason)
    _audit(session, actor, "command.cancelled", cmd, reason)
    follow_supply(session, [cmd])
    return cmd


def report(
    session: Session,
    *,
    command_id: int,
    status: str,
    at: datetime | None = None,
    detail: str = "",
    result: dict[str, Any] | None = None,
    by: str = "hes",
) -> MeterCommand:
    """A head-end report on a command, and what follows it in the CIS: the supply of a prepaid
    wallet takes the relay state read back."""
    cmd = apply_report(
        session, command_id=command_id, status=status, at=at or utcnow(), detail=detail, result=result, by=by
    )
    follow_supply(session, [cmd])
    return cmd


@dataclass(slots=True)
class CommandView:
    command: MeterCommand
    meter: str | None
    steps: list[dict[str, Any]] = field(default_factory=list)
    group: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        c = self.command
        return {
            "id": c.id,
            "kind": c.kind,
            "meter": self.meter,
            "group": c.is_group,
            "parent_id": c.parent_id,
            "status": c.status,
            "params": c.params,
            "reason": c.reason,
            "requested_by": c.requested_by,
            "idempotency_key": c.idempotency_key,
            "attempts": c.attempts,
            "message_id": c.message_id,
            "requested_at": c.requested_at.isoformat(),
            "sent_at": c.sent_at.isoformat() if c.sent_at else None,
            "acknowledged_at": c.acknowledged_at.isoformat() if c.acknowledged_at else None,
            "finished_at": c.finished_at.isoformat() if c.finished_at else None,
            "deadline": c.deadline.isoformat() if c.deadline else None,
            "detail": c.detail,
            "result": c.result,
            "relay_state": c.relay_state,
            "relay_confirmed_at": c.relay_confirmed_at.isoformat() if c.relay_confirmed_at else None,
            "steps": self.steps,
            "progress": self.group,
        }


def _serials(session: Session, meter_ids: set[int]) -> dict[int, str]:
    if not meter_ids:
        return {}
    return dict(session.execute(select(Meter.id, Meter.serial).where(Meter.id.in_(sorted(meter_ids)))).all())


def show(session: Session, command_id: int) -> CommandView:
    """A command with its audit trail (a group: with its outcome and children by status)."""
    cmd = session.get(MeterCommand, command_id)
    if cmd is None:
        raise NotFound(f"no command {command_id}", code="command.not_found")
    serial = _serials(session, {cmd.meter_id} if cmd.meter_id else set()).get(cmd.meter_id or 0)
    steps = [
        {"at": s.at.isoformat(), "from": s.from_status, "to": s.to_status, "by": s.by, "detail": s.detail}
        for s in command_steps(session, cmd.id)
    ]
    group = group_progress(session, cmd.id).to_dict() if cmd.is_group else None
    return CommandView(cmd, serial, steps, group)


def find(
    session: Session,
    *,
    status: str | None = None,
    kind: str | None = None,
    serial: str | None = None,
    parent_id: int | None = None,
    limit: int = 50,
) -> list[CommandView]:
    """Commands newest first, by status, kind, meter or group."""
    stmt = select(MeterCommand)
    if status:
        stmt = stmt.where(MeterCommand.status == status)
    if kind:
        stmt = stmt.where(MeterCommand.kind == kind)
    if serial:
        stmt = stmt.where(MeterCommand.meter_id == _meter_ids(session, [serial])[serial])
    if parent_id is not None:
        stmt = stmt.where(MeterCommand.parent_id == parent_id)
    cmds = list(session.scalars(stmt.order_by(MeterCommand.id.desc()).limit(max(1, min(limit, 1000)))))
    serials = _serials(session, {c.meter_id for c in cmds if c.meter_id})
    return [CommandView(c, serials.get(c.meter_id or 0)) for c in cmds]


def rollout(
    session: Session,
    *,
    serials: Sequence[str],
    image: str,
    version: str,
    sha256: str,
    stages: Sequence[float],
    min_success: float,
    actor: str,
    idempotency_key: str | None = None,
) -> MeterCommand:
    """Start a staged firmware rollout to ``serials`` (every installed meter when empty), in the
    order given; audited. See :mod:`meter2cash.mdm.commands.firmware`."""
    if serials:
        ids = _meter_ids(session, serials)
        order = [ids[s] for s in dict.fromkeys(serials)]
    else:
        order = list(session.scalars(select(Meter.id).where(Meter.status == "installed").order_by(Meter.id)))
        if not order:
            raise InvalidInput("no installed meter to upgrade", code="command.no_meters")
    parent = start_rollout(
        session,
        meter_ids=order,
        image=image,
        version=version,
        sha256=sha256,
        stages=stages,
        min_success=min_success,
        requested_by=actor,
        idempotency_key=idempotency_key,
    )
    _audit(session, actor, "command.rollout_started", parent, f"firmware {version}")
    return parent


def advance(session: Session, command_id: int, *, actor: str) -> dict[str, Any]:
    """Move a rollout on to its next stage when the current one succeeded well enough."""
    return advance_rollout(session, command_id, by=actor)
