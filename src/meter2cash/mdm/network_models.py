"""Tables of the network hierarchy's history: dated links between meters, DCUs, service points,
transformers and feeders, and the boundary meters that measure a transformer's or a feeder's input."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from meter2cash.core.timeutil import utcnow
from meter2cash.db import Base, UTCDateTime

#: The kinds of link: meter → DCU, service point → distribution transformer, transformer → feeder.
LINK_KINDS = ("meter_dcu", "service_point_dt", "dt_feeder")
#: What a boundary meter measures: a distribution transformer's or a feeder's energy in.
BOUNDARY_KINDS = ("dt", "feeder")


class NetworkLink(Base):
    """One link of the hierarchy over ``[valid_from, valid_to)`` (``valid_to`` ``None``: still
    current). A child has at most one parent of a kind at any time; its links do not overlap."""

    __tablename__ = "network_link"
    id: Mapped[int] = mapped_column(primary_key=True)
    #: ``meter_dcu``, ``service_point_dt`` or ``dt_feeder`` (:data:`LINK_KINDS`).
    kind: Mapped[str] = mapped_column(String(16))
    #: Meter, service point or transformer id (by ``kind``).
    child_id: Mapped[int] = mapped_column(Integer)
    #: DCU, transformer or feeder id (by ``kind``).
    parent_id: Mapped[int] = mapped_column(Integer)
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)
    valid_to: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Who reported the link: ``hes``, ``cli``, ``api``, ``masterdata``.
    source: Mapped[str] = mapped_column(String(64), default="hes")
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


Index("ix_network_link_child", NetworkLink.kind, NetworkLink.child_id, NetworkLink.valid_from)
Index("ix_network_link_parent", NetworkLink.kind, NetworkLink.parent_id)


class BoundaryMeter(Base):
    """A meter measuring the energy into a distribution transformer (``kind`` ``dt``) or a feeder
    (``feeder``) over ``[valid_from, valid_to)``; an ordinary meter with ordinary channels."""

    __tablename__ = "boundary_meter"
    id: Mapped[int] = mapped_column(primary_key=True)
    meter_id: Mapped[int] = mapped_column(ForeignKey("meter.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    dt_id: Mapped[int | None] = mapped_column(ForeignKey("distribution_transformer.id"), index=True)
    feeder_id: Mapped[int | None] = mapped_column(ForeignKey("feeder.id"), index=True)
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)
    valid_to: Mapped[datetime | None] = mapped_column(UTCDateTime)
