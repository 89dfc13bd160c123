"""Supply commands for agreements: the meter that serves an agreement, and disconnect/connect
commands issued for agreements through the MDM's command store."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from meter2cash.cis.parties.models import ServiceAgreement
from meter2cash.mdm.commands.service import issue_many
from meter2cash.mdm.models import Installation


def agreement_meters(session: Session, agreement_ids: Sequence[int], at: datetime) -> dict[int, int]:
    """The meter installed at each agreement's service point at ``at`` (agreements without one are
    left out)."""
    out: dict[int, int] = {}
    ids = sorted(set(agreement_ids))
    for lo in range(0, len(ids), 2000):
        chunk = ids[lo : lo + 2000]
        rows = session.execute(
            select(ServiceAgreement.id, Installation.meter_id, Installation.installed_at)
            .join(Installation, Installation.service_point_id == ServiceAgreement.service_point_id)
            .where(
                ServiceAgreement.id.in_(chunk),
                Installation.installed_at <= at,
                or_(Installation.removed_at.is_(None), Installation.removed_at > at),
            )
            .order_by(Installation.installed_at)
        )
        for sa_id, meter_id, _ in rows:
            out[sa_id] = meter_id  # the latest installation wins
    return out


def issue_supply_commands(
    session: Session, rows: Sequence[dict[str, Any]], *, by: str, at: datetime
) -> list[int]:
    """Issue connect/disconnect commands for agreements: each row has ``service_agreement_id``,
    ``kind`` (``connect`` or ``disconnect``), ``reason`` and optionally ``requested_at`` and
    ``deadline``. Each goes to the meter serving the agreement at ``at``; a command for an
    agreement without one is stored and fails when it is due to be sent, with the reason."""
    meters = agreement_meters(session, [r["service_agreement_id"] for r in rows], at)
    return issue_many(
        session,
        [
            {
                **r,
                "meter_id": meters.get(r["service_agreement_id"]),
                "requested_at": r.get("requested_at", at),
            }
            for r in rows
        ],
        by=by,
    )
