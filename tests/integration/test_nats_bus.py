"""The outbox relayed through the real NATS JetStream server at 127.0.0.1:4222."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from meter2cash.integration.models import OutboxMessage
from meter2cash.integration.nats_bus import NatsConfig, consume, delete_stream, relay_outbox, stream_count
from meter2cash.integration.outbox import Dispatcher, emit

NATS_URL = os.environ.get("M2C_TEST_NATS_URL", "nats://127.0.0.1:4222")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _reachable(url: str) -> bool:
    host, port = url.rsplit("//", 1)[-1].split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture
def bus() -> Iterator[NatsConfig]:
    """A stream of its own for this test, deleted afterwards."""
    if not _reachable(NATS_URL):
        if IN_CI:
            pytest.fail(f"NATS is required under CI=true but unreachable at {NATS_URL}")
        pytest.skip(f"NATS not reachable at {NATS_URL}")
    tag = uuid.uuid4().hex[:10]
    cfg = NatsConfig(url=NATS_URL, stream=f"M2C_TEST_{tag}", prefix=f"m2ctest{tag}")
    try:
        yield cfg
    finally:
        delete_stream(cfg)


def _emit(platform, n: int) -> None:
    with platform.sessions() as s, s.begin():
        for i in range(n):
            emit(s, "bill.issued", {"bill": i}, key=str(i))


def test_relay_publishes_each_committed_message_once(platform, bus):
    _emit(platform, 3)
    assert relay_outbox(platform.sessions, bus) == 3
    assert relay_outbox(platform.sessions, bus) == 0
    assert stream_count(bus) == 3
    with platform.sessions() as s:
        assert all(m.dispatched_at is not None for m in s.scalars(select(OutboxMessage)))


def test_a_message_relayed_again_is_stored_once(platform, bus):
    _emit(platform, 2)
    relay_outbox(platform.sessions, bus)
    with platform.sessions() as s, s.begin():  # as if the relay crashed before its commit
        for m in s.scalars(select(OutboxMessage)):
            m.dispatched_at = None
    assert relay_outbox(platform.sessions, bus) == 2
    assert stream_count(bus) == 2


def test_consumers_handle_each_message_once_even_when_redelivered(platform, bus):
    _emit(platform, 4)
    relay_outbox(platform.sessions, bus)
    seen: list[int] = []
    dispatcher = Dispatcher()
    dispatcher.subscribe("bill.", "notifier", lambda s, m: seen.append(m.payload["bill"]))
    assert consume(platform.sessions, bus, dispatcher, durable="w1", idle_timeout_s=0.5) == 4
    assert sorted(seen) == [0, 1, 2, 3]
    # A second durable consumer reads the whole stream again: the subscriber ignores what it handled.
    assert consume(platform.sessions, bus, dispatcher, durable="w2", idle_timeout_s=0.5) == 4
    assert sorted(seen) == [0, 1, 2, 3]


def test_an_unreachable_server_is_a_clear_error(platform):
    from meter2cash.integration.nats_bus import BusUnavailable

    _emit(platform, 1)
    with pytest.raises(BusUnavailable, match="cannot reach NATS"):
        relay_outbox(platform.sessions, NatsConfig(url="nats://127.0.0.1:1", connect_timeout_s=0.5))
    with platform.sessions() as s:
        assert s.scalars(select(OutboxMessage)).one().dispatched_at is None
