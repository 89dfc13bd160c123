"""The lifecycle of a connection command in the database, following :mod:`meter2cash.mdm.commands.states`.

The head-end reports each step (:func:`advance_command`), which stamps when the command was sent,
acknowledged or finished (``in_doubt`` is stamped as finished too; a late report that settles it
stamps again); a report of the status a command already has changes nothing. A command still
waiting for the head-end some hours after its request is timed out (:func:`time_out_commands`,
the hours given by whoever set the rule). What a finished command means for the supply of a
customer is for the part of the platform that asked for it.
Functions take a Session and flush; none commits.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from meter2cash.core.errors import Conflict, NotFound
from meter2cash.core.timeutil import utcnow
from meter2cash.mdm.commands.models import ConnectionCommand
from meter2cash.mdm.commands.states import FINAL, STATUSES, WAITING, apply_report, reachable

#: Allowed command status changes, derived from the lifecycle; a status that is no key here is final.
TRANSITIONS: dict[str, tuple[str, ...]] = {s: reachable(s) for s in STATUSES if s not in FINAL}


def advance_command(
    session: Session, command_id: int, status: str, *, at: datetime | None = None, detail: str = ""
) -> ConnectionCommand:
    """Move a command to ``status`` at ``at`` (default now) with ``detail`` (at most 200
    characters); ``command.not_found``, or ``command.bad_transition`` when the lifecycle does not
    allow the move. A report of the status the command already has leaves it as it is."""
    cmd = session.get(ConnectionCommand, command_id)
    if cmd is None:
        raise NotFound(f"no connection command {command_id}", code="command.not_found")
    _move(cmd, status, at or utcnow(), detail)
    session.flush()
    return cmd


def _move(cmd: ConnectionCommand, status: str, when: datetime, detail: str) -> None:
    try:
        target = apply_report(cmd.status, status)
    except Conflict:
        raise Conflict(
            f"command {cmd.id} cannot go from {cmd.status} to {status}", code="command.bad_transition"
        ) from None
    if target is None:
        return
    cmd.status = target
    cmd.detail = detail[:200]
    if target == "sent":
        cmd.sent_at = when
    elif target == "acknowledged":
        cmd.acknowledged_at = when
    elif target != "queued":  # queued has no time of its own: the request time stands
        cmd.finished_at = when


def time_out_commands(session: Session, at: datetime, hours: int) -> list[ConnectionCommand]:
    """Mark every command still waiting for the head-end (requested, queued, sent, acknowledged)
    ``hours`` after its request (requested before ``at - hours``) as ``timed_out`` at ``at``; the
    commands marked, oldest first. An ``in_doubt`` command waits for a late report instead."""
    limit = at - timedelta(hours=hours)
    cmds = session.scalars(
        select(ConnectionCommand)
        .where(ConnectionCommand.status.in_(sorted(WAITING)), ConnectionCommand.requested_at < limit)
        .order_by(ConnectionCommand.id)
    ).all()
    for cmd in cmds:
        _move(cmd, "timed_out", at, "no execution report in time")
    session.flush()
    return list(cmds)


def latest_command(session: Session, service_agreement_id: int) -> ConnectionCommand | None:
    """The agreement's most recent command, whatever its status (``None``: never one)."""
    return session.scalars(
        select(ConnectionCommand)
        .where(ConnectionCommand.service_agreement_id == service_agreement_id)
        .order_by(ConnectionCommand.id.desc())
        .limit(1)
    ).first()
