"""Online payments through a gateway: orders, signed webhooks (idempotent), settlement reconciliation.

A webhook credits an order at most once, however often and in whatever order events arrive:
the event id is remembered (:class:`GatewayEvent`), the order moves to ``paid`` once, and the
receipt's ``external_id`` (``gw:<order id>``) is unique. A forged, stale or malformed webhook
raises :class:`~meter2cash.payment_gateway.signing.SignatureError` before anything is read or
written. Functions take a Session and flush; none commits (the API commits a request that returns
normally).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from meter2cash.cis.ledger.journal import CASH, GATEWAY_FEES, ensure_chart, post
from meter2cash.cis.ledger.models import JournalEntry
from meter2cash.cis.payments.models import GatewayEvent, GatewayOrder, Payment
from meter2cash.cis.payments.receipts import check_amount, receive
from meter2cash.cis.prepaid.policy import PrepaidPolicy
from meter2cash.core.errors import InvalidInput
from meter2cash.payment_gateway.adapter import PaymentGateway
from meter2cash.payment_gateway.signing import SignatureError, verify


def start_order(
    session: Session,
    gateway: PaymentGateway,
    account_id: int,
    amount: Decimal,
    *,
    currency: str,
    purpose: str = "payment",
    reference: str = "",
) -> GatewayOrder:
    """Create an order at the gateway for a bill payment or a wallet ``recharge``."""
    if purpose not in ("payment", "recharge"):
        raise InvalidInput(f"unknown purpose {purpose!r}", code="payment.bad_purpose")
    check_amount(amount, currency)
    info = gateway.create_order(amount, currency, reference or f"account {account_id}")
    order = GatewayOrder(
        order_id=info.order_id,
        gateway=gateway.name,
        account_id=account_id,
        purpose=purpose,
        amount=amount,
        currency=currency,
    )
    session.add(order)
    session.flush()
    return order


def handle_webhook(
    session: Session,
    body: bytes,
    signature_header: str | None,
    *,
    secret: str,
    tolerance_s: int = 300,
    now: float | None = None,
    tz: str = "Asia/Kolkata",
    policy: PrepaidPolicy | None = None,
) -> dict[str, Any]:
    """Verify and apply one webhook; returns ``{"event", "outcome"}``.

    Outcomes: ``credited`` (a receipt was recorded), ``duplicate`` (event id seen before),
    ``already_paid`` (another event already credited the order), ``failed`` (the payer's payment
    failed), ``amount_mismatch`` (nothing credited), ``ignored`` (an event type we do not use),
    ``unknown_order`` (not ours: nothing credited).
    """
    verify(secret, signature_header, body, now=now, tolerance_s=tolerance_s)
    try:
        event = json.loads(body)
        event_id, kind, data = str(event["id"]), str(event["type"]), dict(event["data"])
        order_id = str(data["order_id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise SignatureError(f"signed webhook body is not an event: {exc}", code="gateway.bad_event") from exc
    try:
        with session.begin_nested():
            record = GatewayEvent(event_id=event_id, type=kind, order_id=order_id, outcome="processing")
            session.add(record)
            session.flush()
    except IntegrityError:
        return {"event": event_id, "outcome": "duplicate"}
    record.outcome = _apply(session, kind, order_id, data, tz, policy)
    session.flush()
    return {"event": event_id, "outcome": record.outcome}


def _apply(
    session: Session, kind: str, order_id: str, data: dict[str, Any], tz: str, policy: PrepaidPolicy | None
) -> str:
    order = session.scalar(select(GatewayOrder).where(GatewayOrder.order_id == order_id).with_for_update())
    if order is None:
        return "unknown_order"
    if kind == "order.failed":
        if order.status == "created":
            order.status = "failed"
        return "failed"
    if kind != "order.paid":
        return "ignored"
    if order.status == "paid":
        return "already_paid"
    try:
        amount = Decimal(str(data.get("amount")))
    except InvalidOperation:
        return "amount_mismatch"
    if amount != order.amount or str(data.get("currency")) != order.currency:
        return "amount_mismatch"
    paid_on = date.fromisoformat(str(data.get("paid_at") or "")[:10]) if data.get("paid_at") else None
    kw: dict[str, Any] = dict(
        channel="online",
        currency=order.currency,
        received_on=paid_on,
        reference=f"{order.gateway} {order_id}",
        external_id=f"gw:{order_id}",
    )
    if order.purpose == "recharge":
        from meter2cash.cis.prepaid.wallet import recharge_account

        payment = recharge_account(session, order.account_id, amount, tz=tz, policy=policy, **kw)
    else:
        payment = receive(session, order.account_id, amount, **kw)
    order.status = "paid"
    order.payment_id = payment.id
    return "credited"


@dataclass(slots=True)
class Reconciliation:
    """Settlement report against our receipts for one day."""

    day: date
    matched: int = 0
    fees: Decimal = Decimal("0.00")
    unrecorded: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    unsettled: list[str] = field(default_factory=list)
    fee_entry: bool = False

    @property
    def clean(self) -> bool:
        return not (self.unrecorded or self.mismatched or self.unsettled)

    def to_dict(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "matched": self.matched,
            "fees": str(self.fees),
            "unrecorded": self.unrecorded,
            "mismatched": self.mismatched,
            "unsettled": self.unsettled,
            "clean": self.clean,
            "fee_entry_posted": self.fee_entry,
        }


def reconcile(
    session: Session, day: date, settlement_csv: str, *, currency: str, post_fees: bool = True
) -> Reconciliation:
    """Match a gateway settlement report (CSV) with our online receipts of ``day``.

    ``unrecorded``: settled orders we never credited (a webhook that never arrived: apply it with
    the order id); ``mismatched``: amounts that differ; ``unsettled``: our receipts missing from
    the report. With ``post_fees``, the day's gateway fees post once: Dr 6200, Cr 1000.
    """
    rec = Reconciliation(day)
    ours = {
        p.external_id.removeprefix("gw:"): p
        for p in session.scalars(
            select(Payment).where(
                Payment.channel == "online", Payment.received_on == day, Payment.external_id.like("gw:%")
            )
        )
        if p.external_id
    }
    seen = set()
    for row in csv.DictReader(io.StringIO(settlement_csv)):
        oid = row.get("order_id", "")
        seen.add(oid)
        rec.fees += Decimal(row.get("fee") or "0")
        mine = ours.get(oid)
        if mine is None:
            rec.unrecorded.append(oid)
        elif mine.amount != Decimal(row.get("amount") or "0"):
            rec.mismatched.append(oid)
        else:
            rec.matched += 1
    rec.unsettled = sorted(set(ours) - seen)
    reference = f"SETTLE-{day.isoformat()}"
    if post_fees and rec.fees:
        ensure_chart(session)
        if session.scalar(select(JournalEntry.id).where(JournalEntry.reference == reference)) is None:
            post(
                session,
                kind="gateway.fees",
                effective_date=day,
                reference=reference,
                memo=f"payment gateway fees {day}",
                lines=[(GATEWAY_FEES, rec.fees, None), (CASH, -rec.fees, None)],
                currency=currency,
            )
            rec.fee_entry = True
    return rec
