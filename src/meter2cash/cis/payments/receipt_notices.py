"""Receipts to customers: every payment received queues a receipt notification (e-mail when the
account holder has an address, else SMS), from the ``payment.received`` outbox event, so nothing
is sent for a rolled-back payment; :func:`meter2cash.notify.sender.send_pending` sends it."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from meter2cash.cis.parties.models import Account, Person
from meter2cash.core.money import format_money
from meter2cash.events.models import OutboxMessage
from meter2cash.events.outbox import Dispatcher
from meter2cash.notify.models import Notification


def queue_receipt(session: Session, msg: OutboxMessage) -> None:
    """Outbox handler: a receipt notification for a ``payment.received`` event (e-mail if known, else SMS)."""
    p = msg.payload
    contact = session.execute(
        select(Person.email, Person.phone)
        .join(Account, Account.person_id == Person.id)
        .where(Account.id == p["account_id"])
    ).first()
    email, phone = contact if contact else ("", "")
    if not (email or phone):
        return
    session.add(
        Notification(
            account_id=p["account_id"],
            channel="email" if email else "sms",
            recipient=email or phone,
            template="receipt",
            context={
                **{k: str(p[k]) for k in ("receipt", "currency", "channel", "purpose")},
                "amount": format_money(Decimal(p["amount"]), p["currency"]),  # 250.00, not 250
            },
        )
    )


def subscribe(dispatcher: Dispatcher) -> None:
    """Queue a receipt for every payment received."""
    dispatcher.subscribe("payment.received", "notifications.receipt", queue_receipt)
