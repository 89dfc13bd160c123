"""Commands to the head-end: the command messages of the commands due, sent by a link or POSTed to
the head-end's callback, or handed out when the head-end asks (REST).

Each send is one attempt of the command in the command store (:mod:`meter2cash.mdm.commands`),
with the message id ``cmd-<id>-<attempt>``; the command is marked sent only once the message went
out, so a send that fails leaves it due. A head-end that refuses a command (a 4xx answer of its
callback) fails it with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from meter2cash.cis.prepaid.wallet import follow_supply
from meter2cash.core.errors import InvalidInput
from meter2cash.hes.protocol import CommandMessage, command_message_id
from meter2cash.integration.commands import report
from meter2cash.mdm.commands.firmware import advance_rollouts
from meter2cash.mdm.commands.service import due_commands, expire_commands, mark_sent
from meter2cash.mdm.models import Meter


class CommandRefused(InvalidInput):
    """The head-end answered that it will not carry out a command (the command fails)."""

    code = "hes.command_refused"


CommandSender = Callable[[CommandMessage], None]


def command_messages(session: Session, now: datetime, limit: int = 500) -> list[CommandMessage]:
    """The command messages of the commands due now (``due_commands``), each with the message id
    of its next attempt; nothing is marked sent."""
    due = due_commands(session, now, limit)
    wanted = {c.meter_id for c in due if c.meter_id is not None}
    serials: dict[int | None, str] = {
        meter_id: serial
        for meter_id, serial in session.execute(select(Meter.id, Meter.serial).where(Meter.id.in_(wanted)))
    }
    return [
        CommandMessage(
            message_id=command_message_id(cmd.id, cmd.attempts + 1),
            sent_at=now,
            sender="mdm",
            command_id=cmd.id,
            meter=serials[cmd.meter_id],
            action=cmd.kind,
            params=dict(cmd.params or {}),
            deadline=cmd.deadline,
        )
        for cmd in due
        if cmd.meter_id in serials
    ]


def dispatch(session: Session, link_send: CommandSender, now: datetime, limit: int = 500) -> int:
    """Send the commands due now with ``link_send`` and mark each sent once it went out; returns
    how many. Commands past their deadline are expired first (``expire_commands``). A send that
    fails stops the round (the rest stay due); the caller commits."""
    follow_supply(session, expire_commands(session, now))
    advance_rollouts(session, now)
    sent = 0
    for message in command_messages(session, now, limit):
        try:
            link_send(message)
        except CommandRefused as exc:  # the head-end will never take it: sending again is no use
            report(
                session,
                command_id=message.command_id,
                status="failed",
                at=now,
                detail=exc.message,
                by="dispatch",
            )
            continue
        mark_sent(session, message.command_id, at=now, message_id=message.message_id)
        sent += 1
    return sent


def pull_commands(session: Session, now: datetime, limit: int = 100) -> list[CommandMessage]:
    """The commands due now for a head-end that asks for them (REST), marked sent."""
    out: list[CommandMessage] = []
    dispatch(session, out.append, now, limit)
    return out


def post_command(url: str, *, api_key: str = "", timeout_s: float = 10.0) -> CommandSender:
    """A sender that POSTs each command message to the head-end's callback ``url`` (tried three
    times on a transport error or a 5xx answer; a 4xx answer is :class:`CommandRefused`)."""
    import httpx
    from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

    headers = {"content-type": "application/json", **({"X-API-Key": api_key} if api_key else {})}

    @retry(
        stop=stop_after_attempt(3),
        wait=wait_exponential(multiplier=0.2, max=2),
        retry=retry_if_exception_type((httpx.TransportError, httpx.HTTPStatusError)),
        reraise=True,
    )
    def send(message: CommandMessage) -> None:
        response = httpx.post(
            url, content=message.model_dump_json(exclude_none=True), headers=headers, timeout=timeout_s
        )
        if response.status_code >= 500:
            response.raise_for_status()
        if response.status_code >= 400:
            raise CommandRefused(
                f"the head-end refused the command: {response.status_code} {response.text[:120]}"
            )

    return send


__all__ = ["CommandRefused", "CommandSender", "command_messages", "dispatch", "post_command", "pull_commands"]
