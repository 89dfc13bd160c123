"""Service orders, the steps each took, what each step set off, and the workflow versions they
run (an order keeps the version it was opened under)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from meter2cash.core.timeutil import utcnow
from meter2cash.db import Base, UTCDateTime


class WorkflowDefinition(Base):
    """One version of an order type's workflow, as validated, kept for the orders that run it."""

    __tablename__ = "workflow_definition"
    __table_args__ = (UniqueConstraint("type", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(String(40))
    version: Mapped[str] = mapped_column(String(40))
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(Text, default="")
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ServiceOrder(Base):
    """An order with a number, a state of its workflow, a deadline and the team it waits on."""

    __tablename__ = "service_order"
    id: Mapped[int] = mapped_column(primary_key=True)
    #: ``<prefix>-<year>-<six digits>``: ``NC-2026-000042``.
    number: Mapped[str] = mapped_column(String(24), unique=True)
    type: Mapped[str] = mapped_column(String(40), index=True)
    workflow_version: Mapped[str] = mapped_column(String(40))
    state: Mapped[str] = mapped_column(String(40), index=True)
    #: The queue the order waits in (the state's team).
    team: Mapped[str] = mapped_column(String(40), default="", index=True)
    #: ``metro``, ``urban``, ``rural`` or empty: the deadline depends on it.
    area: Mapped[str] = mapped_column(String(16), default="")
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id"), index=True)
    service_agreement_id: Mapped[int | None] = mapped_column(ForeignKey("service_agreement.id"), index=True)
    service_point_id: Mapped[int | None] = mapped_column(ForeignKey("service_point.id"), index=True)
    meter_id: Mapped[int | None] = mapped_column(ForeignKey("meter.id"), index=True)
    #: What the order carries: the application's fields and what each action added.
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100), default="")
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    state_entered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: When the order is past the SLA of its current state.
    state_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    idempotency_key: Mapped[str | None] = mapped_column(String(100), unique=True)


class ServiceOrderStep(Base):
    """One action taken on an order: who, in which role, when, why, from and to which state."""

    __tablename__ = "service_order_step"
    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("service_order.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    action: Mapped[str] = mapped_column(String(40))
    from_state: Mapped[str | None] = mapped_column(String(40))
    to_state: Mapped[str] = mapped_column(String(40))
    by: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(24))
    reason: Mapped[str] = mapped_column(String(200), default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ServiceOrderTrigger(Base):
    """What a step set off (a command, a work order, a notification, a billing, contract or
    settlement event), carried out by the trigger runner: ``pending``, ``done`` or ``failed``."""

    __tablename__ = "service_order_trigger"
    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("service_order.id"), index=True)
    step_id: Mapped[int] = mapped_column(ForeignKey("service_order_step.id"))
    kind: Mapped[str] = mapped_column(String(24))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ServiceOrderEscalation(Base):
    """An order past its state's SLA raised to a level of its workflow's escalation, once per
    level and stay in a state (``entered_at``: when the order entered the state)."""

    __tablename__ = "service_order_escalation"
    __table_args__ = (UniqueConstraint("order_id", "entered_at", "level"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("service_order.id"), index=True)
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    state: Mapped[str] = mapped_column(String(40))
    level: Mapped[int] = mapped_column()
    #: Whom the order went up to (a role or a named queue).
    to: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


__all__ = [
    "ServiceOrder",
    "ServiceOrderEscalation",
    "ServiceOrderStep",
    "ServiceOrderTrigger",
    "WorkflowDefinition",
]
