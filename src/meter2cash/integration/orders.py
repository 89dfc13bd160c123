"""Service orders as staff reach them from the CLI and the API: the order's account, agreement,
service point and meter named by their numbers, codes and serials; an action followed at once by
what it sets off (:mod:`meter2cash.integration.order_triggers`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from meter2cash.cis.orders import service as orders
from meter2cash.cis.parties.models import Account, ServiceAgreement, ServicePoint
from meter2cash.core.errors import NotFound
from meter2cash.integration.order_triggers import Context, run_triggers
from meter2cash.mdm.models import Meter

_KEYS: dict[str, tuple[Any, Any]] = {
    "account": (Account, Account.number),
    "agreement": (ServiceAgreement, ServiceAgreement.number),
    "service_point": (ServicePoint, ServicePoint.code),
    "meter": (Meter, Meter.serial),
}


def _id(session: Session, what: str, value: str | None) -> int | None:
    if not value:
        return None
    model, column = _KEYS[what]
    found = session.scalar(select(model.id).where(column == value))
    if found is None:
        raise NotFound(f"no {what.replace('_', ' ')} {value}", code=f"order.unknown_{what}", field=what)
    return int(found)


def open_order(
    session: Session,
    *,
    type: str,
    by: str,
    role: str,
    at: datetime,
    reason: str = "",
    area: str = "",
    account: str | None = None,
    agreement: str | None = None,
    service_point: str | None = None,
    meter: str | None = None,
    data: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> orders.OrderView:
    """Open an order whose account, agreement, service point and meter are given by number, code
    and serial (``order.unknown_account`` … when one does not exist)."""
    order = orders.open_order(
        session,
        type=type,
        by=by,
        role=role,
        reason=reason,
        area=area,
        account_id=_id(session, "account", account),
        service_agreement_id=_id(session, "agreement", agreement),
        service_point_id=_id(session, "service_point", service_point),
        meter_id=_id(session, "meter", meter),
        data=data,
        idempotency_key=idempotency_key,
        at=at,
    )
    return orders.view_order(session, order.number)


def act(
    session: Session,
    number: str,
    *,
    action: str,
    by: str,
    role: str,
    at: datetime,
    reason: str = "",
    data: dict[str, Any] | None = None,
    run: bool = True,
    context: Context | None = None,
) -> orders.OrderView:
    """Take ``action`` on an order and, with ``run``, carry out what it sets off at once
    (``context``: the platform's, for a payment-mode change)."""
    orders.take_action(session, number, action=action, by=by, role=role, reason=reason, data=data, at=at)
    if run:
        run_triggers(session, at, context=context)
    return orders.view_order(session, number)


__all__ = ["act", "open_order"]
