"""Audit entries of the VEE exceptions work queue: who changed an exception, when, from what to what."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from meter2cash.audit.models import AuditEntry
from meter2cash.mdm.vee.models import VeeException


def audit_exception(
    session: Session, actor: str, action: str, e: VeeException, before: Any, after: Any
) -> None:
    """An audit entry for a change of an exception (its state before and after)."""
    session.add(
        AuditEntry(
            actor=actor,
            action=action,
            entity="vee_exception",
            entity_id=str(e.id),
            before=before,
            after=after,
        )
    )
