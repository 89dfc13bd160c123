"""What arrives together is applied together: one commit for a fetch of messages, each replied to
and acknowledged after it; a message that breaks the transaction leaves the others kept."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import event, select

from meter2cash.hes.links import Link, Received
from meter2cash.integration import hes_serve
from meter2cash.integration.hes_serve import ServeStats, handle_batch
from meter2cash.mdm.hes_inbox import HesMessage


class Recorder(Link):
    """A link end that keeps what is sent on it."""

    def __init__(self) -> None:
        super().__init__(role="mdm", hes="north", prefix="t")
        self.replies: list[dict[str, object]] = []

    def send(self, kind: str, payload: bytes, *, message_id: str | None = None) -> None:
        self.replies.append(json.loads(payload))

    def fetch(self, timeout: float = 1.0, limit: int = 100) -> list[Received]:
        return []

    def close(self) -> None:
        self.closed = True


def _received(n: int, acked: list[str]) -> list[Received]:
    out = []
    for i in range(n):
        mid = f"ev-{i}"
        body = {"kind": "events", "message_id": mid, "sent_at": "2026-10-01T00:00:00Z", "events": []}
        out.append(Received("events", json.dumps(body).encode(), {}, lambda mid=mid: acked.append(mid)))
    return out


def _stored(platform) -> list[str]:
    with platform.sessions() as s:
        return sorted(s.scalars(select(HesMessage.message_id)))


def test_a_fetch_is_applied_in_one_commit_then_each_is_replied_to_and_acknowledged(platform):
    link, acked, commits = Recorder(), [], []

    def committed(conn) -> None:
        commits.append(1)

    event.listen(platform.engine, "commit", committed)
    try:
        replies = handle_batch(platform, link, _received(5, acked), "north", ServeStats())
    finally:
        event.remove(platform.engine, "commit", committed)
    assert [r.result for r in replies] == ["OK"] * 5
    assert len(commits) == 1
    assert acked == [f"ev-{i}" for i in range(5)]
    assert [r["correlation_id"] for r in link.replies] == [f"ev-{i}" for i in range(5)]
    assert _stored(platform) == [f"ev-{i}" for i in range(5)]


def test_a_message_that_breaks_the_batch_is_left_unacknowledged_and_the_others_kept(platform, monkeypatch):
    real = hes_serve.handle

    def handle(session, data, **kw):  # a fault the gateway does not answer (the database lost)
        if b'"ev-2"' in data:
            raise RuntimeError("connection lost")
        return real(session, data, **kw)

    monkeypatch.setattr(hes_serve, "handle", handle)
    link, acked, stats = Recorder(), [], ServeStats()
    items = _received(4, acked)
    with pytest.raises(RuntimeError):
        handle_batch(platform, link, items, "north", stats)
    # applied again one by one: the two before it kept, replied to and acknowledged; it and the
    # rest left for the broker to deliver again
    assert _stored(platform) == ["ev-0", "ev-1"]
    assert acked == ["ev-0", "ev-1"]
    assert stats.messages == 2
    monkeypatch.setattr(hes_serve, "handle", real)
    handle_batch(platform, link, items[2:], "north", stats)
    assert _stored(platform) == ["ev-0", "ev-1", "ev-2", "ev-3"]
    assert acked == ["ev-0", "ev-1", "ev-2", "ev-3"]
