"""The notification sender: pending :class:`Notification` rows are rendered and sent through adapters.

Services queue notifications in their own transaction (low-balance alerts, dunning notices,
receipts from ``payment.received`` events), so nothing is sent for a rolled-back change.
:func:`send_pending` sends and records the outcome; it does not commit.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from meter2cash.core.timeutil import utcnow
from meter2cash.notify.adapters import EmailAdapter, SmsAdapter
from meter2cash.notify.models import Notification
from meter2cash.notify.templates import render

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
