"""Transactional outbox: events are written with the change that raised them, then dispatched.

``emit`` adds a message in the caller's transaction, so nothing is published for a rollback.
``dispatch_pending`` hands undispatched messages to subscribers; a subscriber is called through
``consume_once`` so a redelivered message changes nothing.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from meter2cash.core.timeutil import utcnow
from meter2cash.events.models import ConsumedMessage, OutboxMessage

Handler = Callable[[Session, OutboxMessage], None]


def emit(session: Session, topic: str, payload: dict[str, Any], *, key: str = "") -> OutboxMessage:
    """Record an event in the current transaction."""
    msg = OutboxMessage(message_id=str(uuid.uuid4()), topic=topic, key=key, payload=payload)
    session.add(msg)
    return msg


class Dispatcher:
    """In-process dispatcher: topic prefix → handlers. The embedded default bus."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[tuple[str, Handler]]] = defaultdict(list)

    def subscribe(self, topic_prefix: str, consumer: str, handler: Handler) -> None:
        self._handlers[topic_prefix].append((consumer, handler))

    def handlers_for(self, topic: str) -> list[tuple[str, Handler]]:
        return [h for prefix, hs in self._handlers.items() if topic.startswith(prefix) for h in hs]

    def dispatch_pending(self, sessions: sessionmaker[Session], *, limit: int = 1000) -> int:
        """Deliver up to ``limit`` undispatched messages, oldest first; returns how many."""
        with sessions() as session, session.begin():
            msgs = list(
                session.scalars(
                    select(OutboxMessage)
                    .where(OutboxMessage.dispatched_at.is_(None))
                    .order_by(OutboxMessage.id)
                    .limit(limit)
                )
            )
            for msg in msgs:
                msg.attempts += 1
                for consumer, handler in self.handlers_for(msg.topic):
                    consume_once(session, consumer, msg, handler)
                msg.dispatched_at = utcnow()
            return len(msgs)


def consume_once(session: Session, consumer: str, msg: OutboxMessage, handler: Handler) -> bool:
    """Run ``handler`` unless ``consumer`` has already handled ``msg``; True if it ran."""
    try:
        with session.begin_nested():
            session.add(ConsumedMessage(consumer=consumer, message_id=msg.message_id))
            session.flush()
    except IntegrityError:
        return False
    handler(session, msg)
    return True
