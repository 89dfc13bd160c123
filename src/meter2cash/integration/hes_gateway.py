"""The MDM side of the head-end interface: apply what an HES sends, answer it, send it commands.

:func:`handle` takes one message as received (JSON, or CIM XML), remembers it by sender and
``message_id`` (a message seen before gets its first reply again and changes nothing), applies it
in the caller's transaction and answers with a :class:`~meter2cash.hes.protocol.Reply`:

- ``profile``: the rows become a reading document (:mod:`meter2cash.integration.hes_profile`)
  ingested like any reading file; a profile answering a ``read`` or ``reacquire`` command
  (``correlation_id``) reports that command executed with the rows kept.
- ``events``: the events section of a reading document, categorised by the IS 15959 catalogue.
- ``command_report``: the step of the command's lifecycle (the command store).
- ``network``: each change of the network hierarchy.

Commands to the head-end are sent by :mod:`meter2cash.integration.hes_commands`; the
long-running loop over MQTT or NATS is :mod:`meter2cash.integration.hes_serve`.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from meter2cash.core.errors import InvalidInput, M2CError
from meter2cash.core.timeutil import utcnow
from meter2cash.hes.cim import parse_cim, reply_to_cim
from meter2cash.hes.protocol import (
    CommandReport,
    EventsMessage,
    Message,
    NetworkMessage,
    ProfileMessage,
    Reply,
    ReplyError,
    parse_message,
    reply_to,
)
from meter2cash.integration.commands import report
from meter2cash.integration.hes_profile import ProfileDocument, events_document, profile_document
from meter2cash.mdm.commands.models import MeterCommand
from meter2cash.mdm.hes_inbox import HesMessage
from meter2cash.mdm.ingest import ingest_bytes
from meter2cash.mdm.network import apply_network_change

#: Errors listed in one reply (the counts in ``stats`` stay complete).
MAX_REPLY_ERRORS = 200
#: Error codes of a message that could not be read at all (NATS also dead-letters it).
UNREADABLE = ("hes.bad_message", "hes.too_large")
#: Commands a profile message answers (through its ``correlation_id``).
READ_COMMANDS = ("read", "reacquire")


def is_xml(data: bytes, content_type: str = "") -> bool:
    """Whether a message is CIM XML: it starts with ``<`` or comes as an XML media type."""
    media = content_type.split(";")[0].strip().lower()
    return data.lstrip()[:1] == b"<" or media.endswith("/xml") or media.endswith("+xml")


def read_message(data: bytes, content_type: str = "application/json") -> Message:
    """Parse a received JSON message (``hes.bad_message`` when it is not one)."""
    if is_xml(data, content_type):
        raise InvalidInput("a CIM XML message is read by handle_cim", code="hes.bad_message")
    return parse_message(data)


def unreadable_reply(data: bytes, exc: M2CError, at: datetime) -> Reply:
    """The FAILED reply to a message that could not be read: ``correlation_id`` is its
    ``message_id`` when that much of it could be read."""
    message_id = ""
    try:
        doc = json.loads(data)
        if isinstance(doc, dict) and isinstance(doc.get("message_id"), str):
            message_id = doc["message_id"][:100]
    except ValueError:
        pass
    code = exc.code if exc.code in UNREADABLE else "hes.bad_message"
    why = exc.message if code == exc.code else f"{exc.code}: {exc.message}"
    reply = reply_to(message_id, [ReplyError(code=code, message=why[:1000])], kept=0, at=at)
    return reply if message_id else reply.model_copy(update={"message_id": f"re-bad-{at.timestamp():.6f}"})


def handle(
    session: Session,
    data: bytes,
    *,
    content_type: str = "application/json",
    received_at: datetime | None = None,
    hes: str = "",
) -> Reply:
    """Apply one message from a head-end in the caller's transaction (flushes, never commits)
    and answer it. ``hes`` names the sender when the message does not. CIM XML (``<`` first)
    goes through :func:`handle_cim`."""
    at = received_at or utcnow()
    if is_xml(data, content_type):
        return handle_cim(session, data, received_at=at, hes=hes)[0]
    try:
        msg = read_message(data, content_type)
    except M2CError as exc:
        return unreadable_reply(data, exc, at)
    reply, _ = apply_message(session, msg, at=at, hes=hes)
    return reply


def handle_cim(
    session: Session, data: bytes, *, received_at: datetime | None = None, hes: str = ""
) -> tuple[Reply, bytes]:
    """Apply one CIM XML message (:func:`meter2cash.hes.cim.parse_cim`): the protocol messages
    it holds, each remembered on its own (the second and later as ``<MessageID>#<n>``); the
    reply to the whole, and that reply as a CIM ``ResponseMessage``."""
    at = received_at or utcnow()
    try:
        messages, errors, header = parse_cim(data)
    except M2CError as exc:
        reply = unreadable_reply(b"", exc, at)
        return reply, reply_to_cim(reply, "")
    kept = 0
    stats: dict[str, int] = {}
    errors = list(errors)
    for n, msg in enumerate(messages):
        if n:
            msg = msg.model_copy(update={"message_id": f"{msg.message_id[:90]}#{n}"})
        reply, n_kept = apply_message(session, msg, at=at, hes=hes)
        kept += n_kept
        for key, value in reply.stats.items():
            stats[key] = stats.get(key, 0) + value
        prefix = f"messages[{n}]." if len(messages) > 1 else ""
        errors += [e.model_copy(update={"field": prefix + e.field}) for e in reply.errors]
    reply = reply_to(header.message_id or "", errors[:MAX_REPLY_ERRORS], kept=kept, at=at, stats=stats)
    return reply, reply_to_cim(reply, header.noun)


def apply_message(session: Session, msg: Message, *, at: datetime, hes: str = "") -> tuple[Reply, int]:
    """Apply one parsed message unless it was seen before; its reply and how many items were kept."""
    if not isinstance(msg, ProfileMessage | EventsMessage | CommandReport | NetworkMessage):
        err = ReplyError(code="hes.unexpected_kind", message=f"the MDM does not take {msg.kind} messages")
        return reply_to(msg.message_id, [err], kept=0, at=at), 0
    sender = (msg.sender or hes or "hes")[:64]
    seen = _seen(session, sender, msg.message_id)
    if seen is not None:
        return seen
    row = HesMessage(sender=sender, message_id=msg.message_id, kind=msg.kind, received_at=at, result="")
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:  # the same message, handled at this moment by another worker
        seen = _seen(session, sender, msg.message_id)
        if seen is None:
            raise
        return seen
    errors, kept, stats = _apply(session, msg, sender, at)
    listed = errors[:MAX_REPLY_ERRORS]
    if len(errors) > len(listed):
        stats["errors"] = len(errors)
    reply = reply_to(msg.message_id, listed, kept=kept, at=at, stats=stats)
    row.result = reply.result
    row.stats = {**stats, "kept": kept}
    row.reply = reply.model_dump(mode="json")
    session.flush()
    return reply, kept


def _seen(session: Session, sender: str, message_id: str) -> tuple[Reply, int] | None:
    """The reply a message got when it was first received, and how many items it kept."""
    row = session.execute(
        select(HesMessage.reply, HesMessage.stats).where(
            HesMessage.sender == sender, HesMessage.message_id == message_id
        )
    ).first()
    if row is None or not row.reply:
        return None
    return Reply.model_validate(row.reply), int((row.stats or {}).get("kept", 0))


Outcome = tuple[list[ReplyError], int, dict[str, int]]


def _apply(session: Session, msg: Message, sender: str, at: datetime) -> Outcome:
    if isinstance(msg, ProfileMessage):
        return _profile(session, msg, sender, at)
    if isinstance(msg, EventsMessage):
        return _events(session, msg, sender, at)
    if isinstance(msg, CommandReport):
        return _report(session, msg, sender)
    assert isinstance(msg, NetworkMessage)
    return _network(session, msg, sender)


def _ingest(session: Session, doc: dict[str, Any], message_id: str, sender: str, at: datetime) -> Any:
    data = json.dumps(doc, separators=(",", ":"), default=str).encode()
    return ingest_bytes(
        session, data, filename=f"hes-{message_id}.json", source=sender, fmt="json", received_at=at
    )


def _profile(session: Session, msg: ProfileMessage, sender: str, at: datetime) -> Outcome:
    conv: ProfileDocument = profile_document(msg)
    errors = list(conv.errors)
    stats = {"rows": 0, "values": 0, "duplicates": 0, "rejected": 0}
    refused_rows: set[str] = set()
    if conv.doc.get("readings") or conv.doc.get("registers"):
        try:
            result = _ingest(session, conv.doc, msg.message_id, sender, at)
        except M2CError as exc:
            return [*errors, ReplyError(code=exc.code, message=exc.message)], 0, stats
        seen: set[tuple[str, str]] = set()
        for p in result.problems:
            where, col = conv.locate(p.field or "")
            what = f"{msg.columns[col]}: {p.message}" if col is not None else p.message
            if (p.code, where) in seen:
                continue
            seen.add((p.code, where))
            errors.append(ReplyError(code=p.code, message=what[:500], field=where))
            if ".rows[" in where:
                refused_rows.add(where)
            elif where:  # a meter refused as a whole (unknown meter or channel): all its rows
                i = int(where[len("meters[") : -1])
                refused_rows.update(f"meters[{i}].rows[{j}]" for j in range(len(msg.meters[i].rows)))
        stats["values"] = result.intervals_new + result.intervals_changed + result.registers
        stats["duplicates"] = (
            result.rows_already_accepted
            if result.duplicate_file
            else result.intervals_duplicate + result.registers_duplicate
        )
        stats["rejected"] = result.rows_rejected
    stats["rows"] = max(0, conv.rows - len({f for f in refused_rows if f}))
    kept = stats["values"] + stats["duplicates"]
    if msg.correlation_id and kept:
        err = _answered(session, msg.correlation_id, stats["rows"], at, sender)
        if err is not None:
            errors.append(err)
    return errors, kept, stats


def _answered(
    session: Session, correlation_id: str, rows: int, at: datetime, sender: str
) -> ReplyError | None:
    """Report the read or re-acquisition command a profile answers as executed."""
    cmd_id = session.scalar(
        select(MeterCommand.id).where(
            MeterCommand.message_id == correlation_id, MeterCommand.kind.in_(READ_COMMANDS)
        )
    )
    if cmd_id is None:
        return None
    try:
        with session.begin_nested():
            report(session, command_id=cmd_id, status="executed", at=at, result={"rows": rows}, by=sender)
    except M2CError as exc:
        return ReplyError(code=exc.code, message=exc.message[:500], field="correlation_id")
    return None


def _events(session: Session, msg: EventsMessage, sender: str, at: datetime) -> Outcome:
    stats = {"events": 0, "duplicates": 0}
    if not msg.events:
        return [], 0, stats
    try:
        result = _ingest(session, events_document(msg), msg.message_id, sender, at)
    except M2CError as exc:
        return [ReplyError(code=exc.code, message=exc.message)], 0, stats
    errors = [
        ReplyError(code=p.code, message=p.message[:500], field=p.field or f"events[{p.line}]")
        for p in result.problems
    ]
    stats["events"] = result.events
    stats["duplicates"] = result.rows_already_accepted if result.duplicate_file else result.events_duplicate
    return errors, result.rows_accepted, stats


def _report(session: Session, msg: CommandReport, sender: str) -> Outcome:
    try:
        with session.begin_nested():
            report(
                session,
                command_id=msg.command_id,
                status=msg.status,
                at=msg.at,
                detail=msg.detail,
                result=dict(msg.result) or None,
                by=sender,
            )
    except M2CError as exc:
        err = ReplyError(code=exc.code, message=exc.message[:500], field="command_id")
        return [err], 0, {"reports": 0}
    return [], 1, {"reports": 1}


def _network(session: Session, msg: NetworkMessage, sender: str) -> Outcome:
    errors: list[ReplyError] = []
    stats = {"changes": 0, "duplicates": 0}
    for i, change in enumerate(msg.changes):
        try:
            with session.begin_nested():
                new = apply_network_change(
                    session,
                    link=change.link,
                    child=change.child,
                    parent=change.parent,
                    effective_at=change.effective_at,
                    source=sender,
                )
        except M2CError as exc:
            errors.append(ReplyError(code=exc.code, message=exc.message[:500], field=f"changes[{i}]"))
            continue
        stats["changes" if new else "duplicates"] += 1
    return errors, stats["changes"] + stats["duplicates"], stats


__all__ = ["apply_message", "handle", "handle_cim", "is_xml", "read_message", "unreadable_reply"]
