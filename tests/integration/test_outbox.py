from __future__ import annotations

from sqlalchemy import func, select

from meter2cash.events.models import ConsumedMessage, OutboxMessage
from meter2cash.events.outbox import Dispatcher, consume_once, emit


def test_events_commit_with_the_change_and_vanish_with_a_rollback(platform):
    with platform.sessions() as s:
        with s.begin():
            emit(s, "bill.issued", {"bill": 1})
        s.begin()
        emit(s, "bill.issued", {"bill": 2})
        s.rollback()
        payloads = [m.payload for m in s.scalars(select(OutboxMessage))]
    assert payloads == [{"bill": 1}]


def test_dispatch_delivers_once_per_consumer(platform):
    seen: list[tuple[str, dict]] = []
    bus = Dispatcher()
    bus.subscribe("bill.", "ledger-mirror", lambda s, m: seen.append(("ledger", m.payload)))
    bus.subscribe("bill.issued", "notifier", lambda s, m: seen.append(("notify", m.payload)))
    bus.subscribe("readings.", "vee-trigger", lambda s, m: seen.append(("vee", m.payload)))
    with platform.sessions() as s, s.begin():
        emit(s, "bill.issued", {"bill": 7})
    assert bus.dispatch_pending(platform.sessions) == 1
    assert bus.dispatch_pending(platform.sessions) == 0
    assert sorted(seen) == [("ledger", {"bill": 7}), ("notify", {"bill": 7})]
    with platform.sessions() as s, s.begin():
        msg = s.scalars(select(OutboxMessage)).one()
        assert msg.dispatched_at is not None
        # A redelivery (e.g. after a crash before dispatched_at was written) changes nothing.
        assert consume_once(s, "notifier", msg, lambda s, m: seen.append(("again", m.payload))) is False
        assert s.scalar(select(func.count()).select_from(ConsumedMessage)) == 2
    assert ("again", {"bill": 7}) not in seen
