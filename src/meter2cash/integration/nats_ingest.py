"""Reading ingestion over NATS JetStream: the HES publishes, stateless workers ingest.

A reading message is a file in the documented CSV or JSON format (``docs/formats.md``), published
to ``<prefix>.hes.readings`` with the headers ``M2C-Filename`` and ``M2C-Source``. Large files are
split on record boundaries below the server's payload limit (CSV: whole lines under the header;
JSON: slices of the ``readings``/``registers``/``events`` arrays), deterministically, so the same
file always yields the same messages, and ``Nats-Msg-Id`` is each message's SHA-256.

Any number of workers share one durable pull consumer (a work queue: each message goes to one
worker). A worker acknowledges a message after the ingest transaction committed; a message that
fails is not acknowledged and comes back after the ack wait. Ingest is idempotent by content, so
a redelivered message changes nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

from nats.js.api import ConsumerConfig
from sqlalchemy.orm import Session, sessionmaker

from meter2cash.core.errors import M2CError
from meter2cash.core.jsonsafe import loads_bounded
from meter2cash.integration.nats_bus import NatsConfig, _connect, ensure_stream
from meter2cash.mdm.ingest import IngestResult, ingest_committed

SUBJECT = "hes.readings"
#: Below NATS's default 1 MiB max_payload, with room for headers.
MAX_MESSAGE = 900_000
JSON_SECTIONS = ("readings", "registers", "events")


def split_file(data: bytes, filename: str, max_bytes: int = MAX_MESSAGE) -> list[bytes]:
    """Split a reading file into self-contained parts of at most ``max_bytes`` (deterministic)."""
    if len(data) <= max_bytes:
        return [data]
    if filename.lower().endswith(".json") or data.lstrip()[:1] == b"{":
        return list(_split_json(data, max_bytes))
    return list(_split_csv(data, max_bytes))


def _split_csv(data: bytes, max_bytes: int) -> Iterator[bytes]:
    header, _, body = data.partition(b"\n")
    header += b"\n"
    part: list[bytes] = []
    size = len(header)
    for line in body.splitlines(keepends=True):
        if part and size + len(line) > max_bytes:
            yield header + b"".join(part)
            part, size = [], len(header)
        part.append(line)
        size += len(line)
    if part:
        yield header + b"".join(part)


def _split_json(data: bytes, max_bytes: int) -> Iterator[bytes]:
    try:
        doc = loads_bounded(data)
    except ValueError as exc:
        raise M2CError(f"not a JSON reading document: {exc}", code="ingest.bad_file") from exc
    base = {k: v for k, v in doc.items() if k not in JSON_SECTIONS}
    for section in JSON_SECTIONS:
        items = doc.get(section) or []
        chunk: list[object] = []
        size = 0
        for item in items:
            item_size = len(json.dumps(item, separators=(",", ":"))) + 1
            if chunk and size + item_size > max_bytes - 200:
                yield json.dumps({**base, section: chunk}, separators=(",", ":")).encode()
                chunk, size = [], 0
            chunk.append(item)
            size += item_size
        if chunk:
            yield json.dumps({**base, section: chunk}, separators=(",", ":")).encode()


def publish_files(
    paths: list[Path], cfg: NatsConfig, *, source: str = "hes", max_bytes: int = MAX_MESSAGE
) -> int:
    """Publish reading files to the ingestion stream; returns the number of messages stored."""

    async def run() -> int:
        nc = await _connect(cfg)
        try:
            js = nc.jetstream()
            await ensure_stream(js, cfg, [cfg.subject(SUBJECT)])
            stored = 0
            for path in paths:
                parts = split_file(path.read_bytes(), path.name, max_bytes)
                for i, part in enumerate(parts):
                    name = path.name if len(parts) == 1 else f"{path.name}#{i + 1}/{len(parts)}"
                    ack = await js.publish(
                        cfg.subject(SUBJECT),
                        part,
                        headers={
                            "Nats-Msg-Id": hashlib.sha256(part).hexdigest(),
                            "M2C-Filename": name,
                            "M2C-Source": source,
                        },
                    )
                    stored += 0 if ack.duplicate else 1
            return stored
        finally:
            await nc.close()

    return asyncio.run(run())


def run_worker(
    sessions: sessionmaker[Session],
    cfg: NatsConfig,
    *,
    durable: str = "m2c-ingest",
    batch: int = 10,
    idle_timeout_s: float = 2.0,
    max_messages: int | None = None,
    ack_wait_s: float = 60.0,
    on_result: Callable[[str, IngestResult], None] | None = None,
    on_error: Callable[[str, M2CError], None] | None = None,
) -> int:
    """Ingest messages from the stream, one transaction of ``sessions`` each, until it is idle for
    ``idle_timeout_s``; returns how many.

    A message whose whole content is unreadable is terminated (reported through ``on_error``);
    any other failure (the database away) leaves it unacknowledged, so it is delivered again.
    """

    async def run() -> int:
        nc = await _connect(cfg)
        done = 0
        try:
            js = nc.jetstream()
            await ensure_stream(js, cfg, [cfg.subject(SUBJECT)])
            sub = await js.pull_subscribe(
                cfg.subject(SUBJECT),
                durable=durable,
                stream=cfg.stream,
                config=ConsumerConfig(ack_wait=ack_wait_s),
            )
            while max_messages is None or done < max_messages:
                want = batch if max_messages is None else min(batch, max_messages - done)
                try:
                    msgs = await sub.fetch(want, timeout=idle_timeout_s)
                except TimeoutError:
                    break
                for msg in msgs:
                    headers = msg.headers or {}
                    name = headers.get("M2C-Filename", "")
                    try:
                        result = ingest_committed(
                            sessions, msg.data, filename=name, source=headers.get("M2C-Source", "nats")
                        )
                    except M2CError as exc:
                        # A file that can never be read (not CSV/JSON, no header): stop redelivery.
                        await msg.term()
                        done += 1
                        if on_error is not None:
                            on_error(name, exc)
                        continue
                    await msg.ack()
                    done += 1
                    if on_result is not None:
                        on_result(name, result)
            return done
        finally:
            await nc.close()

    return asyncio.run(run())
