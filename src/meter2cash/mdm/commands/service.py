"""The command store: issue commands to meters, send them, follow the head-end's reports.

A command is issued (``requested``), sent to the head-end by the dispatcher (:func:`due_commands`,
:func:`mark_sent`), and moves along :mod:`meter2cash.mdm.commands.states` as the head-end reports
(:func:`apply_report`). A command the head-end does not answer is sent again after a wait with
backoff (``policy.toml``: attempts, answer wait, backoff, deadline per kind); at its deadline a
command never sent is ``timed_out`` and one sent without a final answer is ``in_doubt``
(:func:`expire_commands`): the meter may have acted.

A relay is never assumed: a connect or disconnect the head-end reports ``executed`` is confirmed
by the relay state it reads back — in the report's ``result`` (``{"relay": "disconnected"}``), or
else by a ``read`` of the relay that the store issues at once (reason ``relay.read_back``). The
read-back also settles a relay command in doubt: the relay in the state asked for means
``executed``, otherwise ``failed``.

A group command is a parent row (``is_group``) whose children are ordinary commands; its
``status`` is the group's outcome (``pending``, ``success``, ``partial``, ``failed``:
:func:`~meter2cash.mdm.commands.states.group_outcome`), recomputed as children settle.

Every status a command takes is a :class:`MeterCommandStep` (who, when, why): the audit trail. An
``idempotency_key`` makes issuing safe to repeat. Functions take a Session and flush; none commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, or_, select
from sqlalchemy.orm import Session

from meter2cash.config import get_settings
from meter2cash.core.errors import Conflict, InvalidInput, M2CError, NotFound
from meter2cash.core.timeutil import ensure_aware, utcnow
from meter2cash.mdm.commands.models import MeterCommand, MeterCommandStep
from meter2cash.mdm.commands.params import check_params
from meter2cash.mdm.commands.policy import CommandPolicy, load_policy
from meter2cash.mdm.commands.states import SETTLED, WAITING, group_outcome
from meter2cash.mdm.commands.states import apply_report as next_on_report
from meter2cash.mdm.models import Meter

RELAY_KINDS = ("connect", "disconnect")
RELAY_STATES = ("connected", "disconnected")
#: The relay state each relay command asks for.
RELAY_TARGET = {"connect": "connected", "disconnect": "disconnected"}
READ_BACK = "relay.read_back"
#: Group outcomes, kept in a group parent's ``status``.
GROUP_STATUSES = ("pending", "success", "partial", "failed")


def _policy(policy: CommandPolicy | None) -> CommandPolicy:
    return policy or load_policy(get_settings().command_policy or None)


def _step(
    session: Session, cmd_id: int, at: datetime, old: str | None, new: str, by: str, detail: str
) -> None:
    session.add(
        MeterCommandStep(
            command_id=cmd_id, at=at, from_status=old, to_status=new, by=by[:100], detail=detail[:200]
        )
    )


def _by_key(session: Session, key: str | None) -> MeterCommand | None:
    if not key:
        return None
    return session.scalars(select(MeterCommand).where(MeterCommand.idempotency_key == key)).first()


def issue_command(
    session: Session,
    *,
    kind: str,
    meter_id: int | None,
    reason: str,
    requested_by: str,
    params: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    service_agreement_id: int | None = None,
    deadline: datetime | None = None,
    at: datetime | None = None,
    parent_id: int | None = None,
    policy: CommandPolicy | None = None,
) -> MeterCommand:
    """Issue a command to ``meter_id`` (``requested``); the same ``idempotency_key`` again returns
    the command it first created, unchanged. ``deadline`` defaults to the kind's policy.
    ``command.bad_kind``, ``command.unknown_meter``."""
    checked = check_params(kind, params)
    known = _by_key(session, idempotency_key)
    if known is not None:
        return known
    if meter_id is not None and session.get(Meter, meter_id) is None:
        raise NotFound(f"no meter {meter_id}", code="command.unknown_meter")
    when = ensure_aware(at, "at") if at else utcnow()
    row = {
        "kind": kind,
        "meter_id": meter_id,
        "service_agreement_id": service_agreement_id,
        "parent_id": parent_id,
        "params": checked,
        "reason": reason,
        "idempotency_key": idempotency_key,
        "requested_at": when,
        "deadline": ensure_aware(deadline, "deadline") if deadline else None,
    }
    (cmd_id,) = issue_many(session, [row], by=requested_by, policy=policy)
    cmd = session.get(MeterCommand, cmd_id)
    assert cmd is not None
    return cmd


def issue_many(
    session: Session, rows: Sequence[dict[str, Any]], *, by: str, policy: CommandPolicy | None = None
) -> list[int]:
    """Issue many commands at once (a prepaid or collections run): each row has ``kind``,
    ``meter_id``, ``reason``, ``requested_at`` and optionally ``service_agreement_id``,
    ``params``, ``deadline``. Returns the new ids in row order."""
    if not rows:
        return []
    pol = _policy(policy)
    values = []
    for r in rows:
        checked = check_params(r["kind"], r.get("params"))
        values.append(
            {
                "kind": r["kind"],
                "meter_id": r.get("meter_id"),
                "service_agreement_id": r.get("service_agreement_id"),
                "parent_id": r.get("parent_id"),
                "is_group": False,
                "params": checked,
                "reason": r["reason"][:40],
                "requested_by": by[:100],
                "idempotency_key": r.get("idempotency_key"),
                "status": "requested",
                "attempts": 0,
                "requested_at": r["requested_at"],
                "deadline": r.get("deadline") or pol.for_kind(r["kind"]).deadline(r["requested_at"]),
                "detail": "",
                "result": {},
            }
        )
    ids = list(
        session.scalars(insert(MeterCommand).returning(MeterCommand.id, sort_by_parameter_order=True), values)
    )
    session.execute(
        insert(MeterCommandStep),
        [
            {
                "command_id": i,
                "at": v["requested_at"],
                "from_status": None,
                "to_status": "requested",
                "by": by[:100],
                "detail": v["reason"],
            }
            for i, v in zip(ids, values, strict=True)
        ],
    )
    session.flush()
    return ids


def issue_group(
    session: Session,
    *,
    kind: str,
    meter_ids: Iterable[int],
    reason: str,
    requested_by: str,
    params: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    at: datetime | None = None,
    policy: CommandPolicy | None = None,
) -> MeterCommand:
    """Issue ``kind`` to every meter of ``meter_ids`` as one group: the parent is returned, one
    child per meter. ``command.empty_group`` without meters; ``command.unknown_meter`` names the
    meters that do not exist."""
    checked = check_params(kind, params)
    known = _by_key(session, idempotency_key)
    if known is not None:
        return known
    ids = sorted(set(meter_ids))
    if not ids:
        raise InvalidInput("a group command needs at least one meter", code="command.empty_group")
    found = set(session.scalars(select(Meter.id).where(Meter.id.in_(ids))))
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound(f"no meters {missing[:20]}", code="command.unknown_meter", meters=missing[:100])
    when = ensure_aware(at, "at") if at else utcnow()
    deadline = _policy(policy).for_kind(kind).deadline(when)
    parent = MeterCommand(
        kind=kind,
        meter_id=None,
        is_group=True,
        params=checked,
        reason=reason[:40],
        requested_by=requested_by[:100],
        idempotency_key=idempotency_key,
        status="pending",
        attempts=0,
        requested_at=when,
        deadline=deadline,
        detail=f"{len(ids)} meters",
        result={},
    )
    session.add(parent)
    session.flush()
    _step(session, parent.id, when, None, "pending", requested_by, reason)
    issue_many(
        session,
        [
            {
                "kind": kind,
                "meter_id": m,
                "reason": reason,
                "requested_at": when,
                "params": params,
                "parent_id": parent.id,
                "deadline": deadline,
            }
            for m in ids
        ],
        by=requested_by,
        policy=policy,
    )
    return parent


@dataclass(frozen=True, slots=True)
class GroupProgress:
    outcome: str
    counts: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "children": sum(self.counts.values()), "by_status": self.counts}


def group_progress(session: Session, parent_id: int) -> GroupProgress:
    """The outcome of a group and its children by status (``command.not_found``)."""
    parent = session.get(MeterCommand, parent_id)
    if parent is None or not parent.is_group:
        raise NotFound(f"no group command {parent_id}", code="command.not_found")
    counts = dict(
        session.execute(
            select(MeterCommand.status, func.count())
            .where(MeterCommand.parent_id == parent_id)
            .group_by(MeterCommand.status)
        ).all()
    )
    # the outcome depends only on which statuses occur, not on how often
    outcome = group_outcome(list(counts)) if counts else "pending"
    return GroupProgress(outcome, {str(k): int(v) for k, v in sorted(counts.items())})


def refresh_group(session: Session, parent_id: int, at: datetime) -> None:
    """Recompute a group's outcome from its children; a staged rollout
    (:mod:`meter2cash.mdm.commands.firmware`) stays ``pending`` until its last stage is issued
    or it halts."""
    parent = session.get(MeterCommand, parent_id)
    if parent is None:
        return
    progress = group_progress(session, parent_id)
    outcome = progress.outcome
    plan = (parent.result or {}).get("rollout")
    if plan and not plan["halted"] and int(plan["stage"]) < len(plan["sizes"]):
        outcome = "pending"
    if outcome != parent.status:
        _step(session, parent.id, at, parent.status, outcome, "group", "children settled")
        parent.status = outcome
        if outcome != "pending":
            parent.finished_at = at
    parent.result = {**(parent.result or {}), **progress.to_dict()}


def due_commands(
    session: Session, now: datetime, limit: int = 500, *, policy: CommandPolicy | None = None
) -> list[MeterCommand]:
    """Commands to send now, oldest first: those sent without an answer whose wait for it is over
    (sent again), and those requested or queued whose time has come, as many as leave at most
    the policy's ``max_in_flight`` at the head-end. A supply command for a service point without
    a meter cannot be sent: it fails here, with the reason."""
    live = or_(MeterCommand.deadline.is_(None), MeterCommand.deadline > now)
    single = MeterCommand.is_group.is_(False)
    again = list(
        session.scalars(
            select(MeterCommand)
            .where(single, live, MeterCommand.status == "sent", MeterCommand.next_attempt_at <= now)
            .order_by(MeterCommand.id)
            .limit(limit)
        )
    )
    in_flight = session.scalar(
        select(func.count())
        .select_from(MeterCommand)
        .where(single, MeterCommand.status.in_(("sent", "acknowledged")))
    )
    room = min(limit - len(again), _policy(policy).max_in_flight - int(in_flight or 0))
    first: list[MeterCommand] = []
    if room > 0:
        first = list(
            session.scalars(
                select(MeterCommand)
                .where(
                    single,
                    live,
                    MeterCommand.status.in_(("requested", "queued")),
                    or_(MeterCommand.next_attempt_at.is_(None), MeterCommand.next_attempt_at <= now),
                )
                .order_by(MeterCommand.id)
                .limit(room)
            )
        )
    due: list[MeterCommand] = []
    for cmd in sorted([*again, *first], key=lambda c: c.id):
        if cmd.meter_id is None:
            _move(session, cmd, "failed", now, "dispatch", "no meter is installed at the service point")
            continue
        due.append(cmd)
    session.flush()
    return due


def mark_sent(
    session: Session,
    command_id: int,
    *,
    at: datetime,
    message_id: str,
    by: str = "dispatch",
    policy: CommandPolicy | None = None,
) -> MeterCommand:
    """Record that the command went to the head-end as ``message_id`` (one more attempt) and when
    to send it again if no answer comes (``None`` when the attempts are used up)."""
    (cmd,) = mark_sent_many(session, [(command_id, message_id)], at=at, by=by, policy=policy)
    return cmd


def mark_sent_many(
    session: Session,
    sent: Sequence[tuple[int, str]],
    *,
    at: datetime,
    by: str = "dispatch",
    policy: CommandPolicy | None = None,
) -> list[MeterCommand]:
    """:func:`mark_sent` for many ``(command_id, message_id)`` at once, flushed once."""
    pol = _policy(policy)
    out = [_mark_one(session, cid, mid, at, by, pol) for cid, mid in sent]
    session.flush()
    return out


def _mark_one(
    session: Session, command_id: int, message_id: str, at: datetime, by: str, policy: CommandPolicy
) -> MeterCommand:
    cmd = _get(session, command_id)
    kind_policy = policy.for_kind(cmd.kind)
    cmd.attempts += 1
    cmd.message_id = message_id[:100]
    deadline = cmd.deadline or kind_policy.deadline(cmd.requested_at)
    retry = kind_policy.retry(deadline)
    cmd.next_attempt_at = retry.next_attempt_at(cmd.attempts, at + timedelta(seconds=kind_policy.ack_wait_s))
    if cmd.status == "sent":
        _step(session, cmd.id, at, "sent", "sent", by, f"attempt {cmd.attempts} as {message_id}")
    else:
        _move(session, cmd, "sent", at, by, f"attempt {cmd.attempts} as {message_id}")
    return cmd


def _get(session: Session, command_id: int) -> MeterCommand:
    cmd = session.get(MeterCommand, command_id)
    if cmd is None or cmd.is_group:
        raise NotFound(f"no command {command_id}", code="command.not_found")
    return cmd


def _move(
    session: Session,
    cmd: MeterCommand,
    status: str,
    at: datetime,
    by: str,
    detail: str,
    groups: set[int] | None = None,
) -> bool:
    """Move ``cmd`` to ``status``; False for a duplicate report (the status it already has). A
    settled child's group is refreshed now, or collected into ``groups`` to refresh once later."""
    try:
        target = next_on_report(cmd.status, status)
    except Conflict:
        raise Conflict(
            f"command {cmd.id} cannot go from {cmd.status} to {status}",
            code="command.bad_transition",
            command=cmd.id,
            status=cmd.status,
            reported=status,
        ) from None
    if target is None:
        return False
    _step(session, cmd.id, at, cmd.status, target, by, detail)
    cmd.status = target
    if detail:
        cmd.detail = detail[:200]
    if target == "sent":
        cmd.sent_at = at
    elif target == "acknowledged":
        cmd.acknowledged_at = at
        cmd.next_attempt_at = None
    elif target != "queued":  # queued has no time of its own: the request time stands
        cmd.finished_at = at
        cmd.next_attempt_at = None
    if cmd.parent_id is not None and target in SETTLED:
        if groups is None:
            refresh_group(session, cmd.parent_id, at)
        else:
            groups.add(cmd.parent_id)
    return True


@dataclass(frozen=True, slots=True)
class Report:
    """One head-end report on a command (see :func:`apply_reports`)."""

    command_id: int
    status: str
    at: datetime
    detail: str = ""
    result: dict[str, Any] | None = None
    by: str = "hes"


def apply_report(
    session: Session,
    *,
    command_id: int,
    status: str,
    at: datetime,
    detail: str = "",
    result: dict[str, Any] | None = None,
    by: str = "hes",
) -> MeterCommand:
    """Apply one head-end report on a command (see :func:`apply_reports`); raises its error."""
    (outcome,) = apply_reports(session, [Report(command_id, status, at, detail, result, by)])
    if isinstance(outcome, M2CError):
        raise outcome
    return outcome


def apply_reports(session: Session, reports: Sequence[Report]) -> list[MeterCommand | M2CError]:
    """Apply head-end reports in order (a duplicate changes nothing): each command's status and
    what the meter answered. A relay command reported executed is confirmed by the relay state in
    its ``result`` or, lacking it, by a read-back issued now; a relay read-back confirms (or
    settles) the command it was issued for. Returns, per report, the command or the error that
    refused it (``command.not_found``, ``command.bad_transition``, ``command.bad_relay_state``);
    the others are applied. Groups are refreshed once, and the session flushed once."""
    ids = sorted({r.command_id for r in reports})
    loaded: dict[int, MeterCommand] = {}
    for lo in range(0, len(ids), 2000):  # one query per chunk, held here (the identity map is weak)
        chunk = ids[lo : lo + 2000]
        loaded.update(
            (c.id, c) for c in session.scalars(select(MeterCommand).where(MeterCommand.id.in_(chunk)))
        )
    groups: set[int] = set()
    out: list[MeterCommand | M2CError] = []
    for r in reports:
        try:
            out.append(_apply_one(session, r, groups, loaded))
        except M2CError as exc:
            out.append(exc)
    for parent_id in sorted(groups):
        refresh_group(session, parent_id, max(r.at for r in reports))
    session.flush()
    return out


def _apply_one(
    session: Session, r: Report, groups: set[int], loaded: dict[int, MeterCommand]
) -> MeterCommand:
    at = ensure_aware(r.at, "at")
    cmd = loaded.get(r.command_id)
    if cmd is None or cmd.is_group:
        raise NotFound(f"no command {r.command_id}", code="command.not_found")
    relay = (r.result or {}).get("relay")
    if relay is not None and relay not in RELAY_STATES:
        raise InvalidInput(
            f"relay state {relay!r} is not one of {', '.join(RELAY_STATES)}", code="command.bad_relay_state"
        )
    if not _move(session, cmd, r.status, at, r.by, r.detail, groups):
        return cmd
    if r.result:
        cmd.result = {**(cmd.result or {}), **r.result}
    if cmd.status == "executed":
        if cmd.kind in RELAY_KINDS:
            if relay is not None:
                _confirm_relay(session, cmd, relay, at, groups)
            else:
                _read_back(session, cmd, at)
        elif cmd.kind == "read" and cmd.params.get("profile") == "relay" and relay is not None:
            target_id = cmd.params.get("for_command")
            target = (
                (loaded.get(target_id) or session.get(MeterCommand, target_id))
                if isinstance(target_id, int)
                else None
            )
            if target is not None:
                _confirm_relay(session, target, relay, at, groups)
    return cmd


def _read_back(session: Session, cmd: MeterCommand, at: datetime) -> MeterCommand:
    return issue_command(
        session,
        kind="read",
        meter_id=cmd.meter_id,
        reason=READ_BACK,
        requested_by="command-store",
        params={"profile": "relay", "for_command": cmd.id},
        idempotency_key=f"readback-{cmd.id}-{cmd.status}",
        service_agreement_id=cmd.service_agreement_id,
        at=at,
    )


def _confirm_relay(
    session: Session, cmd: MeterCommand, relay: str, at: datetime, groups: set[int] | None = None
) -> None:
    """The relay of ``cmd``'s meter was read back as ``relay``: record it; settle the command when
    it was in doubt (the state asked for: executed, else failed)."""
    cmd.relay_state = relay
    cmd.relay_confirmed_at = at
    wanted = RELAY_TARGET.get(cmd.kind)
    if cmd.status == "in_doubt":
        _move(
            session,
            cmd,
            "executed" if relay == wanted else "failed",
            at,
            "command-store",
            f"relay read back as {relay}",
            groups,
        )
    elif relay != wanted:
        cmd.detail = f"relay read back as {relay}, not {wanted}"[:200]
        _step(session, cmd.id, at, cmd.status, cmd.status, "command-store", cmd.detail)


def cancel_command(
    session: Session, command_id: int, *, by: str, reason: str, at: datetime | None = None
) -> MeterCommand:
    """Withdraw a command not yet sent (``command.bad_transition`` once it was)."""
    cmd = _get(session, command_id)
    _move(session, cmd, "cancelled", ensure_aware(at, "at") if at else utcnow(), by, reason)
    session.flush()
    return cmd


def expire_commands(session: Session, now: datetime, *, by: str = "deadline") -> list[MeterCommand]:
    """Commands still waiting for the head-end at their deadline: never sent → ``timed_out``;
    sent without a final answer → ``in_doubt`` (a relay command's relay is then read back).
    The commands moved, oldest first."""
    now = ensure_aware(now, "now")
    cmds = list(
        session.scalars(
            select(MeterCommand)
            .where(
                MeterCommand.is_group.is_(False),
                MeterCommand.status.in_(sorted(WAITING)),
                MeterCommand.deadline <= now,
            )
            .order_by(MeterCommand.id)
        )
    )
    for cmd in cmds:
        if cmd.status in ("sent", "acknowledged"):
            _move(session, cmd, "in_doubt", now, by, "no final answer before the deadline")
            if cmd.kind in RELAY_KINDS and cmd.meter_id is not None:
                _read_back(session, cmd, now)
        else:
            _move(session, cmd, "timed_out", now, by, "not sent before the deadline")
    session.flush()
    return cmds


def time_out_commands(session: Session, at: datetime, hours: float) -> list[MeterCommand]:
    """Commands still waiting ``hours`` after their request (requested before ``at - hours``):
    never sent → ``timed_out``, sent → ``in_doubt``; the deadline of each becomes that time."""
    limit = at - timedelta(hours=hours)
    cmds = list(
        session.scalars(
            select(MeterCommand).where(
                MeterCommand.is_group.is_(False),
                MeterCommand.status.in_(sorted(WAITING)),
                MeterCommand.requested_at < limit,
            )
        )
    )
    for cmd in cmds:
        cmd.deadline = min(cmd.deadline or at, at)
    session.flush()
    return expire_commands(session, at, by="time-out")


def command_steps(session: Session, command_id: int) -> list[MeterCommandStep]:
    """The audit trail of a command, oldest first."""
    return list(
        session.scalars(
            select(MeterCommandStep)
            .where(MeterCommandStep.command_id == command_id)
            .order_by(MeterCommandStep.id)
        )
    )


def latest_command(session: Session, service_agreement_id: int) -> MeterCommand | None:
    """The agreement's most recent supply command, whatever its status (``None``: never one)."""
    return session.scalars(
        select(MeterCommand)
        .where(MeterCommand.service_agreement_id == service_agreement_id, MeterCommand.kind.in_(RELAY_KINDS))
        .order_by(MeterCommand.id.desc())
        .limit(1)
    ).first()
