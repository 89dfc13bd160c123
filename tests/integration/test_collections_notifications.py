"""Notifications: templates, the outbox-driven receipt, SMS and e-mail over a real local SMTP server."""

from __future__ import annotations

from decimal import Decimal

import pytest
from jinja2 import UndefinedError
from sqlalchemy import select
from test_payments import make_account

from conftest import IN_CI
from meter2cash.cis.payments.receipt_notices import subscribe
from meter2cash.cis.payments.receipts import receive
from meter2cash.events.outbox import Dispatcher
from meter2cash.notify import MemorySms, SmtpEmail, render
from meter2cash.notify.models import Notification
from meter2cash.notify.sender import send_pending
from support import free_port

try:
    from aiosmtpd import controller as aiosmtpd_controller
except ImportError:  # pragma: no cover - depends on the environment
    if IN_CI:
        pytest.fail(
            "aiosmtpd is not installed: the e-mail tests against a real SMTP server must run in CI; "
            "install the dev extras (pip install -e '.[dev]')",
            pytrace=False,
        )
    pytest.skip("aiosmtpd is not installed (pip install aiosmtpd)", allow_module_level=True)


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
def smtp():
    inbox = Inbox()
    port = free_port()
    controller = aiosmtpd_controller.Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def test_templates_render_and_refuse_missing_values():
    subject, body = render("low_balance", {"balance": "12.50", "threshold": "10%"})
    assert subject == "Low prepaid balance" and "12.50" in body and "10%" in body
    with pytest.raises(UndefinedError, match="debt"):
        render("dunning_notice", {"oldest_due": "2026-10-01"})
    with pytest.raises(KeyError):
        render("nope", {})


def test_receipt_is_queued_from_the_outbox_and_mailed_over_smtp(platform, session, smtp):
    inbox, port = smtp
    acct = make_account(session, "A-7")
    receive(session, acct, Decimal("450.00"), channel="cash", currency="INR")
    session.commit()
    dispatcher = Dispatcher()
    subscribe(dispatcher)
    assert dispatcher.dispatch_pending(platform.sessions) == 1
    assert dispatcher.dispatch_pending(platform.sessions) == 0  # delivered once
    sms = MemorySms()
    email = SmtpEmail("127.0.0.1", port, "billing@utility.example")
    result = send_pending(session, sms, email)
    session.commit()
    assert result.to_dict() == {"sent": 1, "failed": 0, "retry": 0}
    ((sender, rcpts, content),) = inbox.messages
    assert sender == "billing@utility.example" and rcpts == ["holder@example.org"]
    assert b"Subject: Payment receipt R-" in content and b"450.00 INR by cash" in content
    n = session.scalars(select(Notification)).one()
    assert n.status == "sent" and n.sent_at is not None
    assert send_pending(session, sms, email).sent == 0


def test_failures_are_retried_then_recorded(session):
    session.add(
        Notification(
            channel="email",
            recipient="x@example.org",
            template="low_balance",
            context={"balance": "1", "threshold": "0%"},
        )
    )
    session.add(
        Notification(
            channel="sms",
            recipient="+91",
            template="low_balance",
            context={"balance": "1", "threshold": "0%"},
        )
    )
    session.flush()
    down = SmtpEmail("127.0.0.1", free_port(), "b@example.org", timeout=2)
    sms = MemorySms()
    first = send_pending(session, sms, down)
    assert (first.sent, first.retry) == (1, 1) and sms.sent[0][0] == "+91"
    send_pending(session, sms, down)
    last = send_pending(session, sms, down)
    assert last.failed == 1
    failed = session.scalars(select(Notification).where(Notification.status == "failed")).one()
    assert failed.attempts == 3 and "ConnectionRefusedError" in failed.error
