"""Running a :class:`~meter2cash.hes.sim.SimEngine` against the clock, on a link.

:func:`run` steps the engine block by block until the end of the simulated window, taking the
messages that arrived from the MDM in between (a :class:`~meter2cash.hes.links.Link`'s
``fetch``; each is acknowledged once the engine took it). ``speed`` 0 runs as fast as it can;
``speed`` X moves X simulated seconds per real second. After the last block, with ``idle``, it
keeps answering commands until ``idle`` real seconds pass without a message from the MDM (a
command, or a reply: an MDM still replying to the pushes is still at work) and no answer is still
due: with speed 0 the clock jumps to the next answer due; otherwise simulated time moves on at
``speed`` (at least real time).

Like a head-end that waits for the MDM's replies, it keeps at most ``window`` messages awaiting
a reply: a broker holds only so many messages for a consumer that is behind (Mosquitto's
``max_queued_messages``, 1,000 by default) and drops the rest. Replies that never come (lost, or
an MDM gone) do not hold it forever: after ``patience`` seconds without one, the messages still
unanswered are counted ``unanswered`` and it goes on.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

from meter2cash.core.errors import InvalidInput
from meter2cash.hes import protocol as p
from meter2cash.hes.sim import SimEngine

Progress = Callable[[int, int], None]
#: Real seconds between two looks at the link while simulating as fast as possible.
POLL_EVERY_S = 0.2
#: Messages sent ahead of the MDM's replies at most (0: no limit).
WINDOW = 200
#: Seconds without a reply after which the messages still unanswered are given up.
PATIENCE_S = 30.0
#: Results of a reply (the other counts of ``replies`` are messages that were not replies).
_ANSWERS = ("OK", "PARTIAL", "FAILED")


class Arrived(Protocol):
    payload: bytes

    def ack(self) -> None: ...


class Source(Protocol):
    def fetch(self, timeout: float = 1.0, limit: int = 100) -> Sequence[Arrived]: ...


def take(engine: SimEngine, raw: bytes) -> None:
    """Handle one message from the MDM: a command is executed, a reply counted; anything else or
    anything unreadable is counted as ignored."""
    try:
        msg = p.parse_message(raw)
    except InvalidInput:
        engine.stats.replies["unreadable"] += 1
        return
    if isinstance(msg, p.CommandMessage):
        engine.commands.receive(msg)
    elif isinstance(msg, p.Reply):
        engine.stats.replies[msg.result] += 1
    else:
        engine.stats.replies["ignored"] += 1


class _Link:
    """The run's end of the link: what arrived from the MDM is taken in order, and a message is
    sent only while fewer than ``window`` await the MDM's reply (0: no limit). While it waits,
    replies are counted and anything else (a command) is acknowledged and kept to be taken
    afterwards, so that answering a command never sends from inside a wait."""

    def __init__(self, engine: SimEngine, source: Source, window: int, patience: float) -> None:
        self.engine, self.source, self.window, self.patience = engine, source, window, patience
        self.later: deque[Arrived] = deque()
        self.send_on = engine.wrap_send(self.send)

    def take_arrived(self, timeout: float = 0.0) -> int:
        """Take what arrived from the MDM; how many messages."""
        items = list(self.later)
        self.later.clear()
        items += self.source.fetch(0.0 if items else timeout, 500)
        for item in items:
            take(self.engine, item.payload)
            item.ack()
        return len(items)

    def answered(self) -> int:
        return sum(self.engine.stats.replies[k] for k in _ANSWERS)

    def awaiting(self) -> int:
        """Messages sent and not answered, not counting the one being sent (the engine counts a
        message before it is handed on)."""
        stats = self.engine.stats
        return sum(stats.sent.values()) - 1 - self.answered() - stats.unanswered

    def send(self, kind: str, payload: bytes) -> None:
        self.hold()
        self.send_on(kind, payload)

    def hold(self) -> None:
        if self.window <= 0:
            return
        seen, since = self.answered(), time.monotonic()
        while self.awaiting() >= self.window:
            for item in self.source.fetch(POLL_EVERY_S, 500):
                # acknowledged at once, kept or not: the broker holds back what comes after
                # messages a client has not acknowledged (the replies waited for among them)
                item.ack()
                if isinstance(_reply(item.payload), p.Reply):
                    take(self.engine, item.payload)
                else:
                    self.later.append(item)
            if self.answered() != seen:
                seen, since = self.answered(), time.monotonic()
            elif time.monotonic() - since > self.patience:
                self.engine.stats.unanswered += self.awaiting()
                return


def _reply(raw: bytes) -> p.Message | None:
    try:
        return p.parse_message(raw)
    except InvalidInput:
        return None


def run(
    engine: SimEngine,
    source: Source,
    *,
    blocks: int,
    speed: float = 0.0,
    idle: float | None = None,
    progress: Progress | None = None,
    window: int = WINDOW,
    patience: float = PATIENCE_S,
) -> None:
    """Start the engine, simulate ``blocks`` blocks, then answer commands while not idle."""
    link = _Link(engine, source, window, patience)
    engine.start()
    real0, sim0 = time.monotonic(), engine.now
    polled = 0.0
    for b in range(blocks):
        if time.monotonic() - polled >= POLL_EVERY_S:
            link.take_arrived()
            polled = time.monotonic()
        engine.step()
        if progress:
            progress(b + 1, blocks)
        if speed > 0:
            ahead = (engine.now - sim0) / speed - (time.monotonic() - real0)
            while ahead > 0:
                link.take_arrived(min(ahead, POLL_EVERY_S))
                ahead = (engine.now - sim0) / speed - (time.monotonic() - real0)
    if idle is None:
        link.take_arrived()  # what already came back (a REST link holds its replies)
        return
    rate = max(speed, 1.0)
    last = real_mark = time.monotonic()
    sim_mark = engine.now
    while True:
        if link.take_arrived(0.0 if engine.next_due() is not None and speed == 0 else 0.1):
            last = time.monotonic()
        due = engine.next_due()
        if speed == 0 and due is not None:
            engine.advance_to(due)
            continue
        engine.advance_to(max(engine.now, sim_mark + int((time.monotonic() - real_mark) * rate)))
        if due is None and time.monotonic() - last >= idle:
            return
