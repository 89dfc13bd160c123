"""Messages received from head-end systems, remembered so that a message seen again changes nothing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from meter2cash.core.timeutil import utcnow
from meter2cash.db import Base, UTCDateTime


class HesMessage(Base):
    """One message a head-end sent, with the reply it got (sent again for a repeated message)."""

    __tablename__ = "hes_message"
    __table_args__ = (UniqueConstraint("sender", "message_id", name="uq_hes_message_sender_message_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    #: The head-end that sent it (the message's ``sender``, or the link's head-end name).
    sender: Mapped[str] = mapped_column(String(64))
    message_id: Mapped[str] = mapped_column(String(100))
    #: ``profile``, ``events``, ``command_report`` or ``network``.
    kind: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    #: ``OK``, ``PARTIAL`` or ``FAILED``.
    result: Mapped[str] = mapped_column(String(16), default="")
    #: What was kept and what was a duplicate (rows, events, reports, changes, duplicates…).
    stats: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: The reply as sent (JSON), so a repeated message gets the same answer.
    reply: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


__all__ = ["HesMessage"]
