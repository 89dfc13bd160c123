"""The platform's event subscribers, through the in-process bus and through NATS JetStream."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from meter2cash.bootstrap import subscribers
from meter2cash.cis.ledger.journal import ensure_chart
from meter2cash.cis.parties.models import Account, Person
from meter2cash.cis.payments.receipts import receive
from meter2cash.integration.nats_bus import consume, relay_outbox
from meter2cash.notify.models import Notification


def _payment(platform) -> int:
    with platform.sessions() as s, s.begin():
        ensure_chart(s)
        person = Person(name="Asha Rao", email="asha@example.org")
        s.add(person)
        s.flush()
        account = Account(number="AC-1", person_id=person.id)
        s.add(account)
        s.flush()
        receive(s, account.id, Decimal("250"), channel="cash", currency="INR")
        return account.id


def test_every_event_has_its_subscribers(settings):
    dispatcher = subscribers(settings)
    assert [c for c, _ in dispatcher.handlers_for("vee.estimate_replaced")] == ["billing.rebill"]
    assert [c for c, _ in dispatcher.handlers_for("payment.received")] == ["notifications.receipt"]


def test_a_payment_queues_one_receipt_in_process(platform):
    account_id = _payment(platform)
    dispatcher = subscribers(platform.settings)
    assert dispatcher.dispatch_pending(platform.sessions) >= 1
    dispatcher.dispatch_pending(platform.sessions)
    with platform.sessions() as s:
        notes = s.scalars(select(Notification).where(Notification.account_id == account_id)).all()
    assert [(n.template, n.channel, n.recipient) for n in notes] == [("receipt", "email", "asha@example.org")]
    assert notes[0].context["amount"] == "250.00"  # in the currency's minor units


def test_a_payment_queues_one_receipt_through_nats(platform, nats_stream):
    account_id = _payment(platform)
    relay_outbox(platform.sessions, nats_stream)
    dispatcher = subscribers(platform.settings)
    consume(platform.sessions, nats_stream, dispatcher, durable="a", idle_timeout_s=0.5)
    consume(platform.sessions, nats_stream, dispatcher, durable="b", idle_timeout_s=0.5)  # a redelivery
    with platform.sessions() as s:
        notes = s.scalars(select(Notification).where(Notification.account_id == account_id)).all()
    assert len(notes) == 1
