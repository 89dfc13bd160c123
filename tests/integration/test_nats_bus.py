"""The outbox relayed through the real NATS JetStream server at 127.0.0.1:4222."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from meter2cash.events.models import OutboxMessage
from meter2cash.events.outbox import Dispatcher, emit
from meter2cash.integration.nats_bus import NatsConfig, consume, relay_outbox, stream_count


def _emit(platform, n: int) -> None:
    with platform.sessions() as s, s.begin():
        for i in range(n):
            emit(s, "bill.issued", {"bill": i}, key=str(i))


def test_relay_publishes_each_committed_message_once(platform, nats_stream):
    _emit(platform, 3)
    assert relay_outbox(platform.sessions, nats_stream) == 3
    assert relay_outbox(platform.sessions, nats_stream) == 0
    assert stream_count(nats_stream) == 3
    with platform.sessions() as s:
        assert all(m.dispatched_at is not None for m in s.scalars(select(OutboxMessage)))


def test_a_message_relayed_again_is_stored_once(platform, nats_stream):
    _emit(platform, 2)
    relay_outbox(platform.sessions, nats_stream)
    with platform.sessions() as s, s.begin():  # as if the relay crashed before its commit
        for m in s.scalars(select(OutboxMessage)):
            m.dispatched_at = None
    assert relay_outbox(platform.sessions, nats_stream) == 2
    assert stream_count(nats_stream) == 2


def test_consumers_handle_each_message_once_even_when_redelivered(platform, nats_stream):
    _emit(platform, 4)
    relay_outbox(platform.sessions, nats_stream)
    seen: list[int] = []
    dispatcher = Dispatcher()
    dispatcher.subscribe("bill.", "notifier", lambda s, m: seen.append(m.payload["bill"]))
    assert consume(platform.sessions, nats_stream, dispatcher, durable="w1", idle_timeout_s=0.5) == 4
    assert sorted(seen) == [0, 1, 2, 3]
    # A second durable consumer reads the whole stream again: the subscriber ignores what it handled.
    assert consume(platform.sessions, nats_stream, dispatcher, durable="w2", idle_timeout_s=0.5) == 4
    assert sorted(seen) == [0, 1, 2, 3]


def test_an_unreachable_server_is_a_clear_error(platform):
    from meter2cash.integration.nats_bus import BusUnavailable

    _emit(platform, 1)
    with pytest.raises(BusUnavailable, match="cannot reach NATS"):
        relay_outbox(platform.sessions, NatsConfig(url="nats://127.0.0.1:1", connect_timeout_s=0.5))
    with platform.sessions() as s:
        assert s.scalars(select(OutboxMessage)).one().dispatched_at is None
