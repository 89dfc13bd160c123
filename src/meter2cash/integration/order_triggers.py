"""Carrying out what service-order actions set off (``service_order_trigger``).

:func:`run_triggers` takes the pending triggers, oldest first, and for each kind:

- ``command``: a command to the order's meter through the command store (``command`` names the
  kind, ``params`` its params; a ``payment_mode`` command takes the order's ``mode``, a
  ``configure`` command its ``sanctioned_kw`` as the load limit), idempotent per trigger;
- ``work_order``: a work order of kind ``work`` for the field (one per order and kind);
- ``notification``: an SMS and an e-mail to the account's person, from ``template``;
- ``contract``: ``change_load`` (the order's ``sanctioned_kw`` from ``effective_from``),
  ``change_tariff`` (``tariff`` from ``effective_from``) and ``change_payment_mode`` (``mode``
  from ``effective_from``, the balance settled) on the order's agreement, through the contract
  services, with their checks.

The meter is the order's, else the one its data names (``meter``: a serial). A trigger that cannot
be carried out fails with the reason (the order stays where it is; staff see it on the order).
Billing and settlement triggers, and the contract events ``start_supply`` and ``end_agreement``,
have no runner yet: they stay ``pending``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from meter2cash.cis.contracts.changes import change_load, change_tariff
from meter2cash.cis.contracts.payment_mode import change_payment_mode
from meter2cash.cis.orders.models import ServiceOrder, ServiceOrderTrigger
from meter2cash.cis.orders.service import workflow_of
from meter2cash.cis.parties.models import Account, ServiceAgreement
from meter2cash.core.errors import InvalidInput, M2CError
from meter2cash.mdm.commands.service import issue_command
from meter2cash.mdm.models import Meter
from meter2cash.mdm.usage.port import UsageFactory
from meter2cash.notify.models import Notification
from meter2cash.workforce.service import create_work_order

#: Trigger kinds carried out here; the others wait.
RUN_KINDS = ("command", "work_order", "notification", "contract")
#: Contract events carried out here; the others wait.
CONTRACT_EVENTS = ("change_load", "change_tariff", "change_payment_mode")


@dataclass(frozen=True, slots=True)
class Context:
    """What a payment-mode change needs of the platform (its local day, money and usage)."""

    tz: str
    currency: str
    usage: UsageFactory


@dataclass(frozen=True, slots=True)
class TriggerRun:
    done: int
    failed: int
    waiting: int

    def to_dict(self) -> dict[str, int]:
        return {"done": self.done, "failed": self.failed, "waiting": self.waiting}


def _meter_id(session: Session, order: ServiceOrder) -> int:
    if order.meter_id is not None:
        return order.meter_id
    serial = (order.data or {}).get("meter")
    if serial:
        found = session.scalar(select(Meter.id).where(Meter.serial == str(serial)))
        if found is not None:
            return int(found)
        raise InvalidInput(f"no meter {serial}", code="order.unknown_meter", field="meter")
    raise InvalidInput("the order names no meter", code="order.no_meter", field="meter")


def _command(session: Session, order: ServiceOrder, t: ServiceOrderTrigger, at: datetime) -> dict[str, Any]:
    kind = str(t.spec.get("command", ""))
    params = dict(t.spec.get("params") or {})
    data = order.data or {}
    if kind == "payment_mode":
        params.setdefault("mode", data.get("mode"))
    if kind == "configure" and "sanctioned_kw" in data:
        params.setdefault("load_limit_kw", data["sanctioned_kw"])
    cmd = issue_command(
        session,
        kind=kind,
        meter_id=_meter_id(session, order),
        service_agreement_id=order.service_agreement_id,
        reason=f"order.{order.type}"[:40],
        requested_by=f"order {order.number}",
        params=params or None,
        idempotency_key=f"order-{order.number}-t{t.id}",
        at=at,
    )
    return {"command_id": cmd.id, "command": kind}


def _work_order(
    session: Session, order: ServiceOrder, t: ServiceOrderTrigger, at: datetime
) -> dict[str, Any]:
    meter_id = order.meter_id
    if meter_id is None and (order.data or {}).get("meter"):
        meter_id = _meter_id(session, order)
    wo = create_work_order(
        session,
        kind=str(t.spec.get("work", "")),
        meter_id=meter_id,
        service_point_id=order.service_point_id,
        source=f"order:{order.number}",
        context={"order": order.number, "order_type": order.type, **(order.data or {})},
        at=at,
        actor=f"order {order.number}",
    )
    return {"work_order": wo.number}


def _notification(
    session: Session, order: ServiceOrder, t: ServiceOrderTrigger, at: datetime
) -> dict[str, Any]:
    if order.account_id is None:
        return {"skipped": "the order has no account"}
    account = session.get(Account, order.account_id)
    assert account is not None
    wf = workflow_of(session, order)
    context = {
        "number": order.number,
        "title": wf.title.lower(),
        "due": f"{order.due_at:%Y-%m-%d}" if order.due_at else "",
        "reason": str((order.data or {}).get("reason", "")),
        "meter": str((order.data or {}).get("meter", "")),
    }
    queued = []
    for channel, recipient in (("sms", account.person.phone), ("email", account.person.email)):
        if recipient:
            session.add(
                Notification(
                    account_id=account.id, channel=channel, recipient=recipient,
                    template=str(t.spec.get("template", "")), context=context, created_at=at,
                )
            )  # fmt: skip
            queued.append(channel)
    return {"queued": queued}


def _day(value: Any, name: str) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise InvalidInput(
            f"{name} {value!r} is not a date (YYYY-MM-DD)", code="order.bad_data", field=name
        ) from None


def _contract(
    session: Session, order: ServiceOrder, t: ServiceOrderTrigger, at: datetime, ctx: Context | None
) -> dict[str, Any]:
    event = str(t.spec.get("event", ""))
    if order.service_agreement_id is None:
        raise InvalidInput(
            "the order names no service agreement", code="order.no_agreement", field="agreement"
        )
    sa = session.get(ServiceAgreement, order.service_agreement_id)
    assert sa is not None
    data = order.data or {}
    when = _day(data.get("effective_from"), "effective_from")
    why, by = f"order {order.number}", f"order {order.number}"
    if event == "change_load":
        change_load(session, sa, when, data.get("sanctioned_kw"), data.get("contract_kva"), reason=why, by=by)
    elif event == "change_tariff":
        change_tariff(session, sa, when, str(data.get("tariff", "")), reason=why, by=by)
    else:
        if ctx is None:
            raise InvalidInput(
                "a payment-mode change runs with the platform's settings", code="order.no_context"
            )
        today = at.astimezone(ZoneInfo(ctx.tz)).date()
        change_payment_mode(
            session, sa, when, str(data.get("mode", "")), reason=why, by=by, today=today, tz=ctx.tz,
            currency=ctx.currency, usage=ctx.usage,
        )  # fmt: skip
    return {"agreement": sa.number, "event": event, "effective_from": when.isoformat()}


_RUNNERS = {"command": _command, "work_order": _work_order, "notification": _notification}


def context_of(platform: Any) -> Context:
    """The trigger context of a platform (its settings and usage source)."""
    return Context(platform.settings.timezone, platform.settings.currency, platform.usage)


def _runs(t: ServiceOrderTrigger) -> bool:
    return t.kind in _RUNNERS or (t.kind == "contract" and t.spec.get("event") in CONTRACT_EVENTS)


def run_triggers(
    session: Session, at: datetime, *, context: Context | None = None, limit: int = 500
) -> TriggerRun:
    """Carry out the pending triggers this runner knows, oldest first; each in a savepoint, so a
    failure marks that trigger ``failed`` with the reason and the others go on. ``context`` is
    what a payment-mode change needs of the platform."""
    pending = [
        t
        for t in session.scalars(
            select(ServiceOrderTrigger)
            .where(ServiceOrderTrigger.status == "pending", ServiceOrderTrigger.kind.in_(RUN_KINDS))
            .order_by(ServiceOrderTrigger.id)
            .limit(limit)
        )
        if _runs(t)
    ]
    done = failed = 0
    for t in pending:
        order = session.get(ServiceOrder, t.order_id)
        assert order is not None
        try:
            with session.begin_nested():
                if t.kind == "contract":
                    t.result = _contract(session, order, t, at, context)
                else:
                    t.result = _RUNNERS[t.kind](session, order, t, at)
                t.status, t.done_at = "done", at
            done += 1
        except M2CError as exc:
            t.status, t.error, t.done_at = "failed", f"{exc.code}: {exc.message}"[:500], at
            failed += 1
    session.flush()
    waiting = session.scalar(
        select(func.count()).select_from(ServiceOrderTrigger).where(ServiceOrderTrigger.status == "pending")
    )
    return TriggerRun(done, failed, int(waiting or 0))


__all__ = ["CONTRACT_EVENTS", "RUN_KINDS", "Context", "TriggerRun", "context_of", "run_triggers"]
