"""The MDM's long-running end of a head-end link (``m2c hes serve``).

:func:`serve` receives messages on an MQTT or NATS link (role ``mdm``), applies them in a
transaction (:func:`~meter2cash.integration.hes_gateway.handle`; what arrived together is applied
in one, :func:`handle_batch`), sends each reply on the ``reply`` topic or subject and only then
acknowledges the message, so a crash in between gets it delivered again (and answered again,
from the remembered reply). A message that cannot be read is answered FAILED with the reason; on
NATS it is also copied to the dead-letter subject. Every ``dispatch_every`` seconds the commands
due are sent (to the link, or POSTed to ``M2C_HES_CALLBACK_URL`` when that is set).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Protocol

import httpx
from sqlalchemy.orm import Session, sessionmaker

from meter2cash.config import Settings
from meter2cash.core.errors import InvalidInput, M2CError
from meter2cash.db import transaction
from meter2cash.hes.links import Link, Received, open_link
from meter2cash.hes.protocol import CommandMessage, Reply, dump
from meter2cash.integration.field_jobs import acquire_now, route_now
from meter2cash.integration.hes_commands import CommandSender, dispatch, post_command
from meter2cash.integration.hes_gateway import UNREADABLE, handle

log = logging.getLogger(__name__)


class Platform(Protocol):
    """What the loop needs of the platform (``meter2cash.bootstrap.Platform`` has it)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def sessions(self) -> sessionmaker[Session]: ...
    @property
    def clock(self) -> Callable[[], datetime]: ...


@dataclass
class ServeStats:
    """What a serve loop did so far."""

    messages: int = 0
    rows: int = 0
    events: int = 0
    reports: int = 0
    changes: int = 0
    duplicates: int = 0
    ok: int = 0
    partial: int = 0
    failed: int = 0
    dead_letters: int = 0
    commands_sent: int = 0
    #: Rounds of sending commands that failed (the broker or the head-end away).
    dispatch_errors: int = 0
    #: Events routed (outages, tamper, load violations: ``route_events``).
    events_routed: int = 0
    #: Re-acquisition commands issued for missed intervals.
    reacquisitions: int = 0
    #: Rounds of the periodic jobs that failed (logged; the loop goes on).
    job_errors: int = 0

    def count(self, reply: Reply) -> None:
        self.messages += 1
        for key in ("rows", "events", "reports", "changes", "duplicates"):
            setattr(self, key, getattr(self, key) + reply.stats.get(key, 0))
        name = reply.result.lower()
        setattr(self, name, getattr(self, name) + 1)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def unreadable(reply: Reply) -> str | None:
    """The reason a message could not be read at all, or ``None``."""
    if reply.result == "FAILED" and reply.errors and reply.errors[0].code in UNREADABLE:
        return f"{reply.errors[0].code}: {reply.errors[0].message}"
    return None


def handle_received(platform: Platform, link: Link, item: Received, hes: str, stats: ServeStats) -> Reply:
    """Apply one received message in its own transaction, reply, dead-letter it when it cannot be
    read, and acknowledge it."""
    with transaction(platform.sessions) as session:
        reply = _apply(platform, session, item, hes)
    _answer(link, item, reply, stats)
    return reply


def handle_batch(
    platform: Platform, link: Link, items: list[Received], hes: str, stats: ServeStats
) -> list[Reply]:
    """Apply the messages of one fetch in one transaction, then reply to and acknowledge each:
    a head-end's many small messages (a re-acquired window, a command's report) cost one commit,
    not one each. A message that breaks the transaction (an error that is not an answer, such as
    a lost database) rolls the whole batch back, and each is then applied in its own transaction,
    so the others are kept and that one is left unacknowledged to come again."""
    if len(items) == 1:
        return [handle_received(platform, link, items[0], hes, stats)]
    try:
        with transaction(platform.sessions) as session:
            replies = [_apply(platform, session, item, hes) for item in items]
    except Exception as exc:  # retried one by one below, where it is raised again
        log.warning("a batch of %d messages was rolled back (%s); applying each on its own", len(items), exc)
        return [handle_received(platform, link, item, hes, stats) for item in items]
    for item, reply in zip(items, replies, strict=True):
        _answer(link, item, reply, stats)
    return replies


def _apply(platform: Platform, session: Session, item: Received, hes: str) -> Reply:
    return handle(
        session,
        item.payload,
        content_type=item.headers.get("content-type", "application/json"),
        received_at=platform.clock(),
        hes=hes,
    )


def _answer(link: Link, item: Received, reply: Reply, stats: ServeStats) -> None:
    """Reply to a message applied and committed, dead-letter it when it could not be read, and
    only then acknowledge it."""
    link.send_reply(dump(reply), message_id=reply.message_id)
    reason = unreadable(reply)
    if reason is not None and link.dead_letter(item.payload, reason):
        stats.dead_letters += 1
    item.ack()
    stats.count(reply)


def command_sender(platform: Platform, link: Link | None) -> CommandSender:
    """Where due commands go: the head-end's callback URL when set, else the link."""
    url = platform.settings.hes_callback_url
    if url:
        return post_command(url)
    if link is None:
        raise InvalidInput(
            "commands over REST go to M2C_HES_CALLBACK_URL, which is not set", code="hes.bad_transport"
        )

    def send(message: CommandMessage) -> None:
        link.send("command", dump(message), message_id=message.message_id)

    return send


def serve(
    platform: Platform,
    transport: str,
    *,
    hes: str,
    prefix: str = "m2c",
    url: str | None = None,
    idle: float | None = None,
    dispatch_every: float = 1.0,
    route_every: float = 5.0,
    acquire_every: float = 0.0,
    acquire_days: int = 2,
    poll_s: float = 0.5,
    batch: int = 100,
    stop: threading.Event | None = None,
    on_progress: Callable[[ServeStats], None] | None = None,
) -> ServeStats:
    """Run the MDM side of the link until ``stop`` is set or, with ``idle``, until nothing was
    received or sent for ``idle`` seconds. ``transport``: ``mqtt`` or ``nats`` (``url`` the
    broker or server), or ``rest`` (only dispatching, to ``M2C_HES_CALLBACK_URL``: the head-end
    POSTs its messages to the API). Every ``route_every`` seconds the events received are routed,
    and every ``acquire_every`` seconds missed intervals of the last ``acquire_days`` complete days
    are asked for again (:mod:`~meter2cash.integration.field_jobs`; 0 switches a job off). Up to
    ``batch`` messages received together are applied in one transaction (:func:`handle_batch`)."""
    link = None if transport == "rest" else open_link(transport, url, role="mdm", hes=hes, prefix=prefix)
    stats = ServeStats()
    try:
        send = command_sender(platform, link)
        last_traffic = time.monotonic()
        next_dispatch = 0.0
        jobs = _Jobs(route_every, acquire_every, acquire_days)
        while stop is None or not stop.is_set():
            if link is None:
                items: list[Received] = []
                time.sleep(min(poll_s, dispatch_every))
            else:
                items = link.fetch(timeout=poll_s, limit=batch)
                if items:
                    handle_batch(platform, link, items, hes, stats)
            if items:
                last_traffic = time.monotonic()
            if time.monotonic() >= next_dispatch:
                next_dispatch = time.monotonic() + dispatch_every
                try:
                    with transaction(platform.sessions) as session:
                        sent = dispatch(session, send, platform.clock())
                except (M2CError, httpx.HTTPError) as exc:  # the head-end away: the commands stay due
                    stats.dispatch_errors += 1
                    log.warning("sending commands failed: %s", exc)
                    sent = 0
                if sent:
                    stats.commands_sent += sent
                    last_traffic = time.monotonic()
            if jobs.run(platform, stats):
                last_traffic = time.monotonic()
            if on_progress is not None:
                on_progress(stats)
            if idle is not None and time.monotonic() - last_traffic > idle:
                break
    finally:
        if link is not None:
            link.close()
    return stats


class _Jobs:
    """The periodic jobs of the loop and when each is next due."""

    def __init__(self, route_every: float, acquire_every: float, acquire_days: int) -> None:
        self.route_every, self.acquire_every, self.acquire_days = route_every, acquire_every, acquire_days
        self.next_route = self.next_acquire = time.monotonic()

    def run(self, platform: Platform, stats: ServeStats) -> bool:
        """Run the jobs that are due; True when one did something."""
        did = False
        now = time.monotonic()
        if self.route_every > 0 and now >= self.next_route:
            self.next_route = now + self.route_every
            did |= self._guarded(platform, stats, "routing events", lambda s: self._route(s, platform, stats))
        if self.acquire_every > 0 and now >= self.next_acquire:
            self.next_acquire = now + self.acquire_every
            did |= self._guarded(
                platform, stats, "re-acquisition", lambda s: self._acquire(s, platform, stats)
            )
        return did

    @staticmethod
    def _route(session: Session, platform: Platform, stats: ServeStats) -> bool:
        n = route_now(session, platform.clock())
        stats.events_routed += n
        return n > 0

    def _acquire(self, session: Session, platform: Platform, stats: ServeStats) -> bool:
        done = acquire_now(session, platform.clock(), days=self.acquire_days)
        stats.reacquisitions += done.commands_new
        return done.commands_new > 0

    @staticmethod
    def _guarded(platform: Platform, stats: ServeStats, what: str, job: Callable[[Session], bool]) -> bool:
        try:
            with transaction(platform.sessions) as session:
                return job(session)
        except M2CError as exc:
            stats.job_errors += 1
            log.warning("%s failed: %s", what, exc)
            return False


__all__ = ["ServeStats", "command_sender", "handle_batch", "handle_received", "serve", "unreadable"]
