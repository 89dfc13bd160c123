"""The notification sender: pending :class:`Notification` rows are rendered and sent through adapters.

Services queue notifications in their own transaction (alerts, dunning notices); receipts are
queued from ``payment.received`` outbox events (:func:`subscribe`), so nothing is sent for a
rolled-back payment. :func:`send_pending` sends and records the outcome; it does not commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from meter2cash.cis.parties.models import Account, Person
from meter2cash.core.money import format_money
from meter2cash.core.timeutil import utcnow
from meter2cash.integration.models import OutboxMessage
from meter2cash.integration.notify.adapters import EmailAdapter, SmsAdapter
from meter2cash.integration.notify.models import Notification
from meter2cash.integration.notify.templates import render
from meter2cash.integration.outbox import Dispatcher

MAX_ATTEMPTS = 3


@dataclass(slots=True)
class SendResult:
    sent: int = 0
    failed: int = 0
    retry: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"sent": self.sent, "failed": self.failed, "retry": self.retry}


def send_pending(session: Session, sms: SmsAdapter, email: EmailAdapter, *, limit: int = 500) -> SendResult:
    """Send up to ``limit`` pending notifications, oldest first. A failure is retried by the next
    call, up to :data:`MAX_ATTEMPTS`, then the notification is ``failed`` with the error."""
    result = SendResult()
    todo = session.scalars(
        select(Notification).where(Notification.status == "pending").order_by(Notification.id).limit(limit)
    ).all()
    for n in todo:
        n.attempts += 1
        try:
            subject, body = render(n.template, n.context)
            if n.channel == "email":
                email.send(n.recipient, subject, body)
            else:
                sms.send(n.recipient, body)
        except Exception as exc:  # an adapter's error of any kind is recorded, never lost
            n.error = f"{type(exc).__name__}: {exc}"[:200]
            if n.attempts >= MAX_ATTEMPTS or isinstance(exc, KeyError):
                n.status = "failed"
                result.failed += 1
            else:
                result.retry += 1
            continue
        n.status, n.sent_at, n.error = "sent", utcnow(), ""
        result.sent += 1
    session.flush()
    return result


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
