"""Tables of head-end commands: every command a meter is asked to carry out, and its audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from meter2cash.core.timeutil import utcnow
from meter2cash.db import Base, UTCDateTime


class MeterCommand(Base):
    """A command to one meter, or a group command (``kind`` with ``parent_id`` on its children and
    no meter of its own). ``status`` follows :mod:`meter2cash.mdm.commands.states`."""

    __tablename__ = "meter_command"
    id: Mapped[int] = mapped_column(primary_key=True)
    #: One of :data:`meter2cash.hes.protocol.COMMAND_KINDS` (``connect``, ``disconnect``, ``read``…).
    kind: Mapped[str] = mapped_column(String(16), index=True)
    #: ``None`` for a group parent, and for a supply command whose service point has no meter.
    meter_id: Mapped[int | None] = mapped_column(ForeignKey("meter.id"), index=True)
    #: The agreement a supply command is for (prepaid, collections), when it is for one.
    service_agreement_id: Mapped[int | None] = mapped_column(ForeignKey("service_agreement.id"), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("meter_command.id"), index=True)
    #: ``True`` for a group parent.
    is_group: Mapped[bool] = mapped_column(default=False)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: Why: ``prepaid.no_credit``, ``collections.non_payment``, ``prepaid.recharged``,
    #: ``tamper.valid``, ``acquisition.gap``, ``relay.read_back``, ``manual``…
    reason: Mapped[str] = mapped_column(String(40))
    requested_by: Mapped[str] = mapped_column(String(100), default="")
    #: The requester's key: the same key again returns the command it first created.
    idempotency_key: Mapped[str | None] = mapped_column(String(100), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="requested", index=True)
    #: Times the command was sent to the head-end.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: When to send it (again); ``None``: at once.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deadline: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The ``message_id`` of the last command message sent (``cmd-<id>-<attempt>``).
    message_id: Mapped[str | None] = mapped_column(String(100), index=True)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    detail: Mapped[str] = mapped_column(String(200), default="")
    #: What the meter answered (the relay read back, the clock after a sync, rows re-acquired…).
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: A relay command: the relay state read back from the meter (``connected``/``disconnected``),
    #: and when; the supply is known only from this, never assumed from ``executed``.
    relay_state: Mapped[str | None] = mapped_column(String(16))
    relay_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MeterCommandStep(Base):
    """The audit trail of a command: each status it took, when, reported or decided by whom, why."""

    __tablename__ = "meter_command_step"
    id: Mapped[int] = mapped_column(primary_key=True)
    command_id: Mapped[int] = mapped_column(ForeignKey("meter_command.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    #: ``hes`` for a head-end report, the user or job otherwise.
    by: Mapped[str] = mapped_column(String(100), default="")
    detail: Mapped[str] = mapped_column(String(200), default="")
