"""The outbox on NATS JetStream: the production event bus.

:func:`relay_outbox` publishes committed outbox messages to JetStream subjects ``<prefix>.events.<topic>``
with the message id as ``Nats-Msg-Id``, so a message relayed twice (a crash between the publish
and the commit) is stored once within the stream's duplicate window. Messages are marked
dispatched only after JetStream acknowledged them. On PostgreSQL several relays may run at once:
each takes its rows with ``FOR UPDATE SKIP LOCKED``.

:func:`consume` reads a durable pull consumer and hands each message to the subscribers of a
:class:`~meter2cash.events.outbox.Dispatcher`, through ``consume_once``: a redelivered
message changes nothing. A message is acknowledged after the handler's transaction committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import nats
from nats.js.api import StreamConfig
from nats.js.errors import NotFoundError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from meter2cash.core.errors import M2CError
from meter2cash.core.timeutil import utcnow
from meter2cash.events.models import OutboxMessage
from meter2cash.events.outbox import Dispatcher, consume_once


@dataclass(frozen=True)
class NatsConfig:
    url: str = "nats://127.0.0.1:4222"
    stream: str = "M2C_EVENTS"
    prefix: str = "m2c"
    #: JetStream's de-duplication window for ``Nats-Msg-Id`` [s].
    duplicate_window_s: float = 600.0
    connect_timeout_s: float = 5.0

    def subject(self, name: str) -> str:
        """``<prefix>.<name>``: events are ``events.<topic>``, readings ``hes.readings``."""
        return f"{self.prefix}.{name}"


class BusUnavailable(M2CError):
    code = "bus.unavailable"
    http_status = 503


async def _quiet(_: Exception) -> None:
    """Connection errors surface as :class:`BusUnavailable`, not as log noise."""


async def _connect(cfg: NatsConfig) -> Any:
    try:
        # nats-py keeps retrying an unreachable server; the caller wants an answer.
        return await asyncio.wait_for(
            nats.connect(
                cfg.url,
                connect_timeout=cfg.connect_timeout_s,
                max_reconnect_attempts=0,
                allow_reconnect=False,
                error_cb=_quiet,
            ),
            timeout=cfg.connect_timeout_s * 2,
        )
    except Exception as exc:
        raise BusUnavailable(f"cannot reach NATS at {cfg.url}: {exc}", url=cfg.url) from exc


EVENTS = "events"


async def ensure_stream(js: Any, cfg: NatsConfig, subjects: list[str]) -> None:
    """Create ``cfg.stream`` over ``subjects`` unless it exists."""
    try:
        await js.stream_info(cfg.stream)
    except NotFoundError:
        await js.add_stream(
            StreamConfig(name=cfg.stream, subjects=subjects, duplicate_window=cfg.duplicate_window_s)
        )


def envelope(msg: OutboxMessage) -> bytes:
    """The JSON a subscriber receives: the outbox row as it was committed."""
    created: datetime | None = msg.created_at
    return json.dumps(
        {
            "message_id": msg.message_id,
            "topic": msg.topic,
            "key": msg.key,
            "payload": msg.payload,
            "created_at": created.isoformat() if created else None,
        },
        separators=(",", ":"),
        default=str,
    ).encode()


def relay_outbox(sessions: sessionmaker[Session], cfg: NatsConfig, *, limit: int = 1000) -> int:
    """Publish up to ``limit`` undispatched outbox messages, oldest first; returns how many."""
    return asyncio.run(_relay(sessions, cfg, limit))


async def _relay(sessions: sessionmaker[Session], cfg: NatsConfig, limit: int) -> int:
    nc = await _connect(cfg)
    try:
        js = nc.jetstream()
        await ensure_stream(js, cfg, [cfg.subject(f"{EVENTS}.>")])
        with sessions() as session, session.begin():
            stmt = (
                select(OutboxMessage)
                .where(OutboxMessage.dispatched_at.is_(None))
                .order_by(OutboxMessage.id)
                .limit(limit)
            )
            if session.get_bind().dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            sent = 0
            failure: Exception | None = None
            for msg in session.scalars(stmt):
                msg.attempts += 1
                try:
                    await js.publish(
                        cfg.subject(f"{EVENTS}.{msg.topic}"),
                        envelope(msg),
                        headers={"Nats-Msg-Id": msg.message_id},
                    )
                except Exception as exc:  # keep what was acknowledged; retry the rest next time
                    failure = exc
                    break
                msg.dispatched_at = utcnow()
                sent += 1
        if failure is not None and sent == 0:
            raise BusUnavailable(f"publishing to NATS failed: {failure}", url=cfg.url) from failure
        return sent
    finally:
        await nc.close()


def consume(
    sessions: sessionmaker[Session],
    cfg: NatsConfig,
    dispatcher: Dispatcher,
    *,
    durable: str = "m2c-worker",
    batch: int = 100,
    idle_timeout_s: float = 1.0,
    max_messages: int | None = None,
) -> int:
    """Deliver stream messages to ``dispatcher``'s subscribers until the stream is idle.

    Returns how many messages were acknowledged. Stops after ``idle_timeout_s`` without a new
    message, or after ``max_messages``.
    """
    return asyncio.run(_consume(sessions, cfg, dispatcher, durable, batch, idle_timeout_s, max_messages))


async def _consume(
    sessions: sessionmaker[Session],
    cfg: NatsConfig,
    dispatcher: Dispatcher,
    durable: str,
    batch: int,
    idle_timeout_s: float,
    max_messages: int | None,
) -> int:
    nc = await _connect(cfg)
    acked = 0
    try:
        js = nc.jetstream()
        await ensure_stream(js, cfg, [cfg.subject(f"{EVENTS}.>")])
        sub = await js.pull_subscribe(cfg.subject(f"{EVENTS}.>"), durable=durable, stream=cfg.stream)
        while max_messages is None or acked < max_messages:
            want = batch if max_messages is None else min(batch, max_messages - acked)
            try:
                msgs = await sub.fetch(want, timeout=idle_timeout_s)
            except TimeoutError:  # nothing more within idle_timeout_s
                break
            for m in msgs:
                env = json.loads(m.data)
                message = OutboxMessage(
                    message_id=env["message_id"],
                    topic=env["topic"],
                    key=env.get("key", ""),
                    payload=env.get("payload", {}),
                )
                with sessions() as session, session.begin():
                    for consumer, handler in dispatcher.handlers_for(message.topic):
                        consume_once(session, consumer, message, handler)
                await m.ack()
                acked += 1
        return acked
    finally:
        await nc.close()


def delete_stream(cfg: NatsConfig) -> None:
    """Remove the stream (tests and resets)."""

    async def run() -> None:
        nc = await _connect(cfg)
        try:
            with contextlib.suppress(NotFoundError):
                await nc.jetstream().delete_stream(cfg.stream)
        finally:
            await nc.close()

    asyncio.run(run())


def stream_count(cfg: NatsConfig) -> int:
    """Messages held in the stream."""

    async def run() -> int:
        nc = await _connect(cfg)
        try:
            info = await nc.jetstream().stream_info(cfg.stream)
            return int(info.state.messages)
        finally:
            await nc.close()

    return asyncio.run(run())
