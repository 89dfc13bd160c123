"""Tables of meter commands: connect and disconnect requests and their lifecycle."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from meter2cash.core.timeutil import utcnow
from meter2cash.db import Base, UTCDateTime


class ConnectionCommand(Base):
    """A disconnect or reconnect request; its ``status`` follows :mod:`meter2cash.mdm.commands.states`."""

    __tablename__ = "connection_command"
    id: Mapped[int] = mapped_column(primary_key=True)
    service_agreement_id: Mapped[int] = mapped_column(ForeignKey("service_agreement.id"), index=True)
    #: ``disconnect`` or ``reconnect``.
    action: Mapped[str] = mapped_column(String(16))
    #: ``prepaid.no_credit``, ``collections.non_payment``, ``prepaid.recharged``, ``manual``.
    reason: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16), default="requested", index=True)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    detail: Mapped[str] = mapped_column(String(200), default="")
