"""Determinants an external MDM delivered (docs/formats.md#determinants): every version kept."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from meter2cash.core.timeutil import utcnow
from meter2cash.db import Base, UTCDateTime

__all__ = ["ExternalDeterminants"]


class ExternalDeterminants(Base):
    """One delivered record: a service point's determinants over local days ``first_day`` to
    ``last_day`` (inclusive) in one data version of the sending MDM.

    Every version delivered is kept; the latest delivered for a service point and days is
    ``current`` (the one billed). ``payload`` is the record as validated (decimal strings)."""

    __tablename__ = "external_determinants"
    id: Mapped[int] = mapped_column(primary_key=True)
    service_point_code: Mapped[str] = mapped_column(String(64))
    first_day: Mapped[date] = mapped_column(Date)
    last_day: Mapped[date] = mapped_column(Date)
    #: The sending MDM's data version of these days (opaque to us).
    version: Mapped[str] = mapped_column(String(100))
    #: The sending MDM, as its document names itself.
    source: Mapped[str] = mapped_column(String(100))
    #: The IANA zone whose local days ``first_day``/``last_day`` are.
    timezone: Mapped[str] = mapped_column(String(64))
    current: Mapped[bool] = mapped_column(Boolean, default=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    received_by: Mapped[str] = mapped_column(String(100), default="")
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    __table_args__ = (
        UniqueConstraint(
            "service_point_code", "first_day", "last_day", "source", "version",
            name="uq_external_determinants_version",
        ),
    )  # fmt: skip


Index(
    "ix_external_determinants_current",
    ExternalDeterminants.service_point_code,
    ExternalDeterminants.current,
)
