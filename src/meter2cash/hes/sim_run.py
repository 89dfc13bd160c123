"""Running a :class:`~meter2cash.hes.sim.SimEngine` against the clock, on a link.

:func:`run` steps the engine block by block until the end of the simulated window, taking the
messages that arrived from the MDM in between (a :class:`~meter2cash.hes.links.Link`'s
``fetch``; each is acknowledged once the engine took it). ``speed`` 0 runs as fast as it can;
``speed`` X moves X simulated seconds per real second. After the last block, with ``idle``, it
keeps answering commands until ``idle`` real seconds pass without a message from the MDM (a
command, or a reply: an MDM still replying to the pushes is still at work) and no answer is still
due: with speed 0 the clock jumps to the next answer due; otherwise simulated time moves on at
``speed`` (at least real time).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol

from meter2cash.core.errors import InvalidInput
from meter2cash.hes import protocol as p
from meter2cash.hes.sim import SimEngine

Progress = Callable[[int, int], None]
#: Real seconds between two looks at the link while simulating as fast as possible.
POLL_EVERY_S = 0.2


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


def _take_arrived(engine: SimEngine, source: Source, timeout: float = 0.0) -> int:
    """Take what arrived from the MDM; how many messages."""
    items = source.fetch(timeout, 500)
    for item in items:
        take(engine, item.payload)
        item.ack()
    return len(items)


def run(
    engine: SimEngine,
    source: Source,
    *,
    blocks: int,
    speed: float = 0.0,
    idle: float | None = None,
    progress: Progress | None = None,
) -> None:
    """Start the engine, simulate ``blocks`` blocks, then answer commands while not idle."""
    engine.start()
    real0, sim0 = time.monotonic(), engine.now
    polled = 0.0
    for b in range(blocks):
        if time.monotonic() - polled >= POLL_EVERY_S:
            _take_arrived(engine, source)
            polled = time.monotonic()
        engine.step()
        if progress:
            progress(b + 1, blocks)
        if speed > 0:
            ahead = (engine.now - sim0) / speed - (time.monotonic() - real0)
            while ahead > 0:
                _take_arrived(engine, source, min(ahead, POLL_EVERY_S))
                ahead = (engine.now - sim0) / speed - (time.monotonic() - real0)
    if idle is None:
        _take_arrived(engine, source)  # what already came back (a REST link holds its replies)
        return
    rate = max(speed, 1.0)
    last = real_mark = time.monotonic()
    sim_mark = engine.now
    while True:
        if _take_arrived(engine, source, 0.0 if engine.next_due() is not None and speed == 0 else 0.1):
            last = time.monotonic()
        due = engine.next_due()
        if speed == 0 and due is not None:
            engine.advance_to(due)
            continue
        engine.advance_to(max(engine.now, sim_mark + int((time.monotonic() - real_mark) * rate)))
        if due is None and time.monotonic() - last >= idle:
            return
