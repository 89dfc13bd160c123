"""MDM tables: network hierarchy, devices and channels, installations, measurements, events, VEE."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from meter2cash.core.timeutil import utcnow
from meter2cash.db import Base, Rate, UTCDateTime


class Feeder(Base):
    __tablename__ = "feeder"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    substation: Mapped[str] = mapped_column(String(200), default="")


class DistributionTransformer(Base):
    __tablename__ = "distribution_transformer"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    feeder_id: Mapped[int | None] = mapped_column(ForeignKey("feeder.id"))
    capacity_kva: Mapped[Decimal | None] = mapped_column(Rate)
    feeder: Mapped[Feeder | None] = relationship()


class DCU(Base):
    """Data concentrator unit: collects reads from the meters around a transformer."""

    __tablename__ = "dcu"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    dt_id: Mapped[int | None] = mapped_column(ForeignKey("distribution_transformer.id"))
    status: Mapped[str] = mapped_column(String(16), default="active")


METER_STATUSES = ("in_stock", "installed", "removed", "retired")
#: Allowed lifecycle moves: in stock → installed → removed → (installed again | retired).
METER_TRANSITIONS: dict[str, tuple[str, ...]] = {
    "in_stock": ("installed", "retired"),
    "installed": ("removed",),
    "removed": ("installed", "in_stock", "retired"),
    "retired": (),
}


class Meter(Base):
    __tablename__ = "meter"
    id: Mapped[int] = mapped_column(primary_key=True)
    serial: Mapped[str] = mapped_column(String(64), unique=True)
    manufacturer: Mapped[str] = mapped_column(String(100), default="")
    model: Mapped[str] = mapped_column(String(100), default="")
    phase: Mapped[str] = mapped_column(String(16), default="single")
    status: Mapped[str] = mapped_column(String(16), default="in_stock")
    dcu_id: Mapped[int | None] = mapped_column(ForeignKey("dcu.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    channels: Mapped[list[Channel]] = relationship(back_populates="meter")
    dcu: Mapped[DCU | None] = relationship()


class MeterStatusChange(Base):
    """Lifecycle history of a meter (audit of every status move)."""

    __tablename__ = "meter_status_change"
    id: Mapped[int] = mapped_column(primary_key=True)
    meter_id: Mapped[int] = mapped_column(ForeignKey("meter.id"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(String(200), default="")


class ReadingType(Base):
    """What a channel measures: unit, OBIS code, interval length, direction, accumulation."""

    __tablename__ = "reading_type"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    obis: Mapped[str] = mapped_column(String(32), default="")
    unit: Mapped[str] = mapped_column(String(16))
    #: Interval length in seconds; ``None`` for register (scalar) and instantaneous reads.
    interval_s: Mapped[int | None] = mapped_column(Integer)
    direction: Mapped[str] = mapped_column(String(16), default="import")
    #: ``delta`` (energy per interval), ``cumulative`` (register), ``instant`` (voltage, PF…).
    accumulation: Mapped[str] = mapped_column(String(16), default="delta")


class Channel(Base):
    __tablename__ = "channel"
    __table_args__ = (UniqueConstraint("meter_id", "reading_type_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    meter_id: Mapped[int] = mapped_column(ForeignKey("meter.id"), index=True)
    reading_type_id: Mapped[int] = mapped_column(ForeignKey("reading_type.id"))
    #: CT/PT ratio or scaling applied to raw values to get engineering units.
    multiplier: Mapped[Decimal] = mapped_column(Rate, default=Decimal(1))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    meter: Mapped[Meter] = relationship(back_populates="channels")
    reading_type: Mapped[ReadingType] = relationship()


class Installation(Base):
    """Which meter is installed at which service point, over time."""

    __tablename__ = "installation"
    id: Mapped[int] = mapped_column(primary_key=True)
    meter_id: Mapped[int] = mapped_column(ForeignKey("meter.id"), index=True)
    service_point_id: Mapped[int] = mapped_column(ForeignKey("service_point.id"), index=True)
    installed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    install_read_kwh: Mapped[float | None] = mapped_column(Float)
    removal_read_kwh: Mapped[float | None] = mapped_column(Float)


# --- measurements ------------------------------------------------------------------------------


class RawBatch(Base):
    """One received file or message, kept unchanged (IMD), with source and receipt time."""

    __tablename__ = "raw_batch"
    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    source: Mapped[str] = mapped_column(String(200), default="")
    filename: Mapped[str] = mapped_column(String(500), default="")
    format: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    #: The bytes as received, gzip-compressed.
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    rows_accepted: Mapped[int] = mapped_column(Integer, default=0)
    rows_rejected: Mapped[int] = mapped_column(Integer, default=0)
    rows_duplicate: Mapped[int] = mapped_column(Integer, default=0)
    rows_changed: Mapped[int] = mapped_column(Integer, default=0)
    #: The first problems found (line, field, code, message); the counts above are complete.
    problems: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    #: Which readings of the file were accepted, one bit per parsed reading (``numpy.packbits``):
    #: a later receipt of the same bytes stores only readings not accepted before.
    accepted: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: How often these bytes were received, and when last (``received_at`` is the first receipt).
    receipts: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    last_received_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ReadingLimitsVersion(Base):
    """One version of the plausibility limits of readings (a validated TOML file, stored whole);
    the latest one is in force (``meter2cash.mdm.reading_limits``)."""

    __tablename__ = "reading_limits_version"
    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[str] = mapped_column(String(32), unique=True)
    #: The limits as a mapping (the TOML structure).
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100), default="")


class ChannelDay(Base):
    """Interval data of one channel for one UTC day: fixed-length arrays, current version.

    ``raw_values`` is the merge of everything received (NaN where nothing arrived) and is never
    changed by VEE; ``values`` and ``flags`` are the validated/estimated result. Every change
    bumps ``version`` and moves the previous row to :class:`ChannelDayHistory`.
    """

    __tablename__ = "channel_day"
    channel_id: Mapped[int] = mapped_column(ForeignKey("channel.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    interval_s: Mapped[int] = mapped_column(Integer)
    raw_values: Mapped[bytes] = mapped_column(LargeBinary)  # float64[slots]
    values: Mapped[bytes] = mapped_column(LargeBinary)  # float64[slots]
    flags: Mapped[bytes] = mapped_column(LargeBinary)  # uint16[slots], see core.quality
    received: Mapped[int] = mapped_column(Integer, default=0)
    #: ``raw`` (received, not validated) or ``validated``.
    vee_status: Mapped[str] = mapped_column(String(16), default="raw")
    vee_run_id: Mapped[int | None] = mapped_column(Integer)
    batch_id: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


Index("ix_channel_day_day", ChannelDay.day)


class ChannelDayHistory(Base):
    """Superseded versions of a channel-day, kept for audit."""

    __tablename__ = "channel_day_history"
    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(Integer, index=True)
    day: Mapped[date] = mapped_column(Date)
    version: Mapped[int] = mapped_column(Integer)
    interval_s: Mapped[int] = mapped_column(Integer)
    raw_values: Mapped[bytes] = mapped_column(LargeBinary)
    values: Mapped[bytes] = mapped_column(LargeBinary)
    flags: Mapped[bytes] = mapped_column(LargeBinary)
    vee_status: Mapped[str] = mapped_column(String(16))
    vee_run_id: Mapped[int | None] = mapped_column(Integer)
    batch_id: Mapped[int | None] = mapped_column(Integer)
    superseded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    reason: Mapped[str] = mapped_column(String(32))


class RegisterRead(Base):
    """A scalar (register) read, e.g. the cumulative kWh register at midnight."""

    __tablename__ = "register_read"
    __table_args__ = (UniqueConstraint("channel_id", "read_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channel.id"))
    read_at: Mapped[datetime] = mapped_column(UTCDateTime)
    value: Mapped[float] = mapped_column(Float)
    quality: Mapped[int] = mapped_column(Integer, default=0)
    batch_id: Mapped[int | None] = mapped_column(Integer)


class MeterEvent(Base):
    """An event reported by a meter (IS 15959 event id, or a DLMS/CIM event code)."""

    __tablename__ = "meter_event"
    __table_args__ = (UniqueConstraint("meter_id", "occurred_at", "code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    meter_id: Mapped[int] = mapped_column(ForeignKey("meter.id"), index=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    code: Mapped[str] = mapped_column(String(32))
    category: Mapped[str] = mapped_column(String(32), default="")
    description: Mapped[str] = mapped_column(String(200), default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    batch_id: Mapped[int | None] = mapped_column(Integer)


# --- VEE ---------------------------------------------------------------------------------------


class VeeRun(Base):
    __tablename__ = "vee_run"
    id: Mapped[int] = mapped_column(primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)
    rule_set: Mapped[str] = mapped_column(String(64), default="default")
    rule_set_version: Mapped[str] = mapped_column(String(32), default="1")
    channel_days: Mapped[int] = mapped_column(Integer, default=0)
    findings: Mapped[int] = mapped_column(Integer, default=0)
    estimated_intervals: Mapped[int] = mapped_column(Integer, default=0)
    #: ``running``, ``completed``, or ``partial`` when some chunks failed (see ``failures``).
    status: Mapped[str] = mapped_column(String(16), default="running")
    #: Chunks that failed and were left pending, as in ``VeeRunResult.failures``: ``{"channels",
    #: "meters", "first_day", "last_day", "channel_days", "error": {"code", "type", "message",
    #: "where"}}`` each.
    failures: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)


class VeeFinding(Base):
    """One validation finding: a stable rule code, the intervals affected, and data."""

    __tablename__ = "vee_finding"
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("vee_run.id"), index=True)
    channel_id: Mapped[int] = mapped_column(Integer, index=True)
    day: Mapped[date] = mapped_column(Date)
    rule: Mapped[str] = mapped_column(String(64), index=True)
    #: ``info``, ``flag``, ``estimate``, ``reject`` or ``exception``.
    action: Mapped[str] = mapped_column(String(16))
    first_slot: Mapped[int] = mapped_column(Integer)
    slot_count: Mapped[int] = mapped_column(Integer)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: ``name@version`` of the rule set that produced the finding (runs may use several).
    rule_set: Mapped[str] = mapped_column(String(100), default="")
