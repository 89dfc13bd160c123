"""VEE tables beyond runs and findings: rule-set versions and the exceptions work queue."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from meter2cash.core.timeutil import utcnow
from meter2cash.db import Base, UTCDateTime

EXCEPTION_STATUSES = ("open", "assigned", "reread_requested", "resolved")
RESOLUTIONS = ("accept", "edit", "reread", "estimate")


class VeeRuleSetVersion(Base):
    """One version of a VEE rule set as edited through the API (the packaged files are version 0
    of their history: a stored version with the same name overrides the packaged one)."""

    __tablename__ = "vee_rule_set_version"
    __table_args__ = (UniqueConstraint("name", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[str] = mapped_column(String(32))
    #: The whole rule set as a mapping (the TOML structure).
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100), default="")


class VeeException(Base):
    """A finding that needs a person: the work queue item, with priority, age and owner."""

    __tablename__ = "vee_exception"
    id: Mapped[int] = mapped_column(primary_key=True)
    finding_id: Mapped[int] = mapped_column(ForeignKey("vee_finding.id"), unique=True)
    run_id: Mapped[int] = mapped_column(Integer, index=True)
    channel_id: Mapped[int] = mapped_column(Integer, index=True)
    day: Mapped[date] = mapped_column(Date)
    rule: Mapped[str] = mapped_column(String(64), index=True)
    first_slot: Mapped[int] = mapped_column(Integer)
    slot_count: Mapped[int] = mapped_column(Integer)
    #: 1 (most urgent) .. 5.
    priority: Mapped[int] = mapped_column(Integer, default=3, index=True)
    #: ``open``, ``assigned``, ``reread_requested`` or ``resolved``.
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    assignee: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(100))
    #: ``accept``, ``edit``, ``reread`` or ``estimate``.
    resolution: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")


class VeeExceptionComment(Base):
    __tablename__ = "vee_exception_comment"
    id: Mapped[int] = mapped_column(primary_key=True)
    exception_id: Mapped[int] = mapped_column(ForeignKey("vee_exception.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    author: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(Text)


class VeeRereadRequest(Base):
    """A request to the head-end to read a meter's interval data again for a window."""

    __tablename__ = "vee_reread_request"
    id: Mapped[int] = mapped_column(primary_key=True)
    exception_id: Mapped[int | None] = mapped_column(ForeignKey("vee_exception.id"), index=True)
    meter_id: Mapped[int] = mapped_column(Integer, index=True)
    channel_id: Mapped[int] = mapped_column(Integer)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)
    #: ``requested`` until the head-end picks it up, then ``sent``, ``completed`` or ``failed``.
    status: Mapped[str] = mapped_column(String(16), default="requested", index=True)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    requested_by: Mapped[str] = mapped_column(String(100), default="")
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: What the head-end answered (intervals delivered, or why it failed).
    outcome: Mapped[str] = mapped_column(Text, default="")


class VeeModel(Base):
    """A trained learned estimator: its parameters, the history it learned from and how well it
    did on held-out data. The latest active version of a scope is used until it is retrained."""

    __tablename__ = "vee_model"
    __table_args__ = (UniqueConstraint("scope", "interval_s", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    #: What the model serves, e.g. ``class:residential`` or ``channel:42``.
    scope: Mapped[str] = mapped_column(String(64), index=True)
    interval_s: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32), default="ridge")
    trained_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    history_from: Mapped[date | None] = mapped_column(Date)
    history_to: Mapped[date | None] = mapped_column(Date)
    channels: Mapped[int] = mapped_column(Integer, default=0)
    samples: Mapped[int] = mapped_column(Integer, default=0)
    #: The parameters as an ``.npz`` archive.
    params: Mapped[bytes] = mapped_column(LargeBinary)
    #: Held-out error and the like (JSON).
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
