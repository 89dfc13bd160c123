"""The head-end link on PostgreSQL: block-load pushes through the broker, an outage storm, and
connect/disconnect commands round trip, each against a baseline measured in the same run.

1. **Ingestion** (MQTT and NATS JetStream): M meters (default 10,000) behind DCUs of 100 meters,
   master data inserted in bulk (meters, DCUs, transformers, four block-load channels each). One
   hour of 15-minute block-load pushes: every DCU publishes four ProfileMessages (one per
   quarter hour, one row per meter, kWh, kVAh, average voltage and current), consumed by
   ``m2c hes serve`` in its own process. The clock runs from the first publish to the last reply.
   Baselines: the same messages through the broker to a consumer that only answers each with an
   OK reply (no database), and the same profiles as JSON reading documents through
   ``ingest_bytes`` in this process (no broker), one transaction per message as ``serve`` does.
2. **Outage storm** (MQTT): E meters (default 50,000) under 500 transformers; within one minute
   every meter's last gasp (IS 15959 ID 101) arrives, one events message per DCU, then the
   restorations (102). Events are routed here (``route_events``) while ``serve`` stores them;
   the clock runs from the first publish until every event is stored and the routing cursor is at
   the last one (a routing run every ``--route-every`` seconds, 2 by default: each run takes
   what arrived meanwhile). Checked: events stored = events sent, one outage per transformer,
   every outage restored with all its meters. Baseline: the same messages to the answer-only
   consumer.
3. **Commands** (MQTT): a group of N connect or disconnect commands (default 5,000) issued
   through the command store, sent by the serve loop to a head-end in this process that answers
   each with ``acknowledged`` and then ``executed`` with the relay read back; the clock runs from
   the issue until the last report is applied. Baseline: the command store alone (issue, send
   and both reports applied in batches of 500, as ``bench_commands.py`` does), rolled back.

The head-end keeps at most ``--window`` messages unanswered (Mosquitto queues at most 1,000
messages per client and drops the rest). Every database (``m2c_bench_<random>``, 127.0.0.1:5432,
``M2C_BENCH_PG`` overrides the server) is created and dropped here, every topic prefix and NATS
stream is this run's own and removed at the end. Warm-up (process start, connection, a first
message answered) is not timed; figures are medians of ``--repeats``. The broker, the MDM process,
the publisher and PostgreSQL share the machine's cores.

Run: ``python benchmarks/bench_hes.py [--quick] [--only ingest|storm|commands] [--repeats R]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.orm import Session, sessionmaker

from meter2cash.core.timeutil import utcnow
from meter2cash.db import make_engine, session_factory, upgrade
from meter2cash.hes import protocol as p
from meter2cash.hes.links import Link, MqttLink, message_id_of, open_link, stream_name
from meter2cash.integration.event_routing import route_events
from meter2cash.integration.hes_profile import profile_document
from meter2cash.integration.nats_bus import NatsConfig, delete_stream
from meter2cash.mdm.commands.models import MeterCommand
from meter2cash.mdm.commands.service import Report, apply_reports, due_commands, issue_group, mark_sent_many
from meter2cash.mdm.events.models import Outage
from meter2cash.mdm.ingest import ingest_bytes
from meter2cash.mdm.models import DCU, Channel, DistributionTransformer, Feeder, Meter, MeterEvent
from meter2cash.mdm.reading_types import ensure_catalogue

ADMIN = os.environ.get("M2C_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
MQTT = os.environ.get("M2C_MQTT_URL", "mqtt://127.0.0.1:1883")
NATS = os.environ.get("M2C_NATS_URL", "nats://127.0.0.1:4222")
URLS = {"mqtt": MQTT, "nats": NATS}
TZ_OFFSET = timedelta(hours=5, minutes=30)
#: Local midnight of the measured day (Asia/Kolkata), in UTC.
DAY = datetime(2026, 10, 1, tzinfo=UTC) - TZ_OFFSET
BLOCK_COLUMNS = ["1.0.1.29.0.255", "1.0.9.29.0.255", "1.0.12.27.0.255", "1.0.11.27.0.255"]
BLOCK_CHANNELS = ("kwh_import_15m", "kvah_import_15m", "voltage_avg_15m", "current_avg_15m")
PER_DCU = 100
BATCH = 20_000
SENDER = "bench-hes"
console = Console()


# --- databases ---------------------------------------------------------------------------------


@contextlib.contextmanager
def database() -> Iterator[str]:
    """A fresh, migrated database of its own; dropped afterwards."""
    name = f"m2c_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = ADMIN.rsplit("/", 1)[0] + f"/{name}"
        upgrade(url)
        yield url
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def serial(i: int) -> str:
    return f"HM{i:07d}"


def dcu_code(d: int) -> str:
    return f"DCU-{d:04d}"


def load_network(sessions: sessionmaker[Session], meters: int, *, channels: bool) -> None:
    """Feeders (one per 100 transformers), one transformer and one DCU per :data:`PER_DCU` meters,
    the meters (and their four block-load channels)."""
    dcus = -(-meters // PER_DCU)
    feeders = -(-dcus // 100)
    with sessions.begin() as s:
        rt = ensure_catalogue(s)
        s.execute(insert(Feeder), [{"id": f + 1, "code": f"FDR-{f:03d}"} for f in range(feeders)])
        s.execute(
            insert(DistributionTransformer),
            [{"id": d + 1, "code": f"DT-{d:04d}", "feeder_id": d // 100 + 1} for d in range(dcus)],
        )
        s.execute(insert(DCU), [{"id": d + 1, "code": dcu_code(d), "dt_id": d + 1} for d in range(dcus)])
        rows = [
            {"id": i + 1, "serial": serial(i), "status": "installed", "dcu_id": i // PER_DCU + 1,
             "created_at": DAY}
            for i in range(meters)
        ]  # fmt: skip
        for k in range(0, meters, BATCH):
            s.execute(insert(Meter), rows[k : k + BATCH])
        if channels:
            ids = [rt[code].id for code in BLOCK_CHANNELS]
            chans = [{"meter_id": i + 1, "reading_type_id": r} for i in range(meters) for r in ids]
            for k in range(0, len(chans), BATCH):
                s.execute(insert(Channel), chans[k : k + BATCH])
        for t in ("feeder", "distribution_transformer", "dcu", "meter"):
            s.execute(text(f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), (SELECT max(id) FROM {t}))"))
    with sessions() as s:
        s.execute(text("ANALYZE"))


# --- messages ----------------------------------------------------------------------------------


def iso_local(t: datetime) -> str:
    return (t + TZ_OFFSET).replace(tzinfo=None).isoformat() + "+05:30"


def hour_of_pushes(meters: int, hour: int, seed: int) -> list[p.ProfileMessage]:
    """One hour of block-load pushes: per quarter hour, one message per DCU with one row per meter."""
    rng = np.random.default_rng(seed)
    kwh = rng.uniform(0.02, 0.4, (4, meters)).round(3)
    kvah = (kwh * rng.uniform(1.0, 1.1, (4, meters))).round(3)
    volts = rng.uniform(215.0, 245.0, (4, meters)).round(1)
    amps = rng.uniform(0.3, 6.0, (4, meters)).round(2)
    values = np.stack([kwh, kvah, volts, amps], axis=2).tolist()  # (quarter, meter, column)
    out = []
    sent = DAY + timedelta(hours=hour + 1, minutes=1)
    for q in range(4):
        clock = iso_local(DAY + timedelta(hours=hour, minutes=15 * (q + 1)))
        for d in range(-(-meters // PER_DCU)):
            lo, hi = d * PER_DCU, min(meters, (d + 1) * PER_DCU)
            out.append(
                p.ProfileMessage(
                    message_id=f"bl-{hour:02d}-{q}-{d:04d}",
                    sent_at=sent,
                    sender=SENDER,
                    profile="1.0.99.1.0.255",
                    capture_period_s=900,
                    columns=[p.CLOCK, *BLOCK_COLUMNS],
                    meters=[
                        p.ProfileMeter(meter=serial(i), dcu=dcu_code(d), rows=[[clock, *values[q][i]]])
                        for i in range(lo, hi)
                    ],
                )
            )
    return out


def storm_messages(meters: int, event_id: int, start: datetime, seed: int) -> list[p.EventsMessage]:
    """Every meter's event ``event_id`` within the minute after ``start``, one message per DCU."""
    offsets = np.random.default_rng(seed).integers(0, 60, meters).tolist()
    sent = start + timedelta(seconds=61)
    return [
        p.EventsMessage(
            message_id=f"ev-{event_id}-{d:04d}",
            sent_at=sent,
            sender=SENDER,
            events=[
                p.MeterEventItem(
                    meter=serial(i),
                    dcu=dcu_code(d),
                    log="0.0.99.98.2.255",
                    event_id=event_id,
                    occurred_at=start + timedelta(seconds=offsets[i]),
                )
                for i in range(d * PER_DCU, min(meters, (d + 1) * PER_DCU))
            ],
        )
        for d in range(-(-meters // PER_DCU))
    ]


def warmup_message() -> bytes:
    return p.dump(p.NetworkMessage(message_id=f"warm-{uuid.uuid4().hex[:8]}", sent_at=utcnow(), changes=[]))


# --- the two ends of the link ------------------------------------------------------------------


@dataclass
class Wire:
    """This run's own head-end name and topic prefix on one transport."""

    transport: str
    hes: str = field(default_factory=lambda: f"bench{uuid.uuid4().hex[:8]}")
    prefix: str = field(default_factory=lambda: f"b{uuid.uuid4().hex[:8]}")

    @property
    def url(self) -> str:
        return URLS[self.transport]

    def prepare(self) -> None:
        """Create the MDM's broker session (MQTT) so messages wait for it while it starts."""
        if self.transport == "mqtt":
            MqttLink(self.url, role="mdm", hes=self.hes, prefix=self.prefix).close()

    def cleanup(self) -> None:
        if self.transport == "nats":
            with contextlib.suppress(Exception):
                delete_stream(NatsConfig(url=self.url, stream=stream_name(self.hes), prefix=self.prefix))
            return
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        where = urlsplit(self.url)
        for role in ("hes", "mdm"):
            c = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=f"m2c-{role}-{self.prefix}-{self.hes}",
                clean_session=True,
            )
            with contextlib.suppress(OSError):
                c.connect(where.hostname or "127.0.0.1", where.port or 1883)
                c.loop_start()
                c.disconnect()
                c.loop_stop()


_ROUTE_FLAG: list[str] | None = None


def _route_off() -> list[str]:
    """``--route-every 0`` when the serve command has that option (events are routed here)."""
    global _ROUTE_FLAG
    if _ROUTE_FLAG is None:
        out = subprocess.run(
            [sys.executable, "-m", "meter2cash.cli", "hes", "serve", "--help"],
            capture_output=True,
            text=True,
            env={**os.environ, "COLUMNS": "200"},
        ).stdout
        _ROUTE_FLAG = ["--route-every", "0"] if "--route-every" in out else []
    return _ROUTE_FLAG


@contextlib.contextmanager
def consumer(wire: Wire, db_url: str | None) -> Iterator[None]:
    """The MDM's end in a process of its own: ``m2c hes serve`` on ``db_url``, or (``None``) the
    answer-only consumer of this script."""
    env = {k: v for k, v in os.environ.items() if k != "M2C_HES_CALLBACK_URL"}
    if db_url is None:
        cmd = [sys.executable, __file__, "--answer-only", wire.transport, wire.url, wire.hes, wire.prefix]
    else:
        env["M2C_DATABASE_URL"] = db_url
        url_opt = "--mqtt-url" if wire.transport == "mqtt" else "--nats"
        cmd = [
            sys.executable, "-m", "meter2cash.cli", "hes", "serve", "--transport", wire.transport,
            url_opt, wire.url, "--hes", wire.hes, "--prefix", wire.prefix, "--idle", "900", "--json",
            *_route_off(),
        ]  # fmt: skip
    wire.prepare()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        try:
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.returncode not in (0, -15, 143):
                err.seek(0)
                console.print(f"[red]consumer exited {proc.returncode}[/red]: {err.read().decode()[-2000:]}")


def answer_only(transport: str, url: str, hes: str, prefix: str) -> None:
    """Answer every message with an OK reply, touching no database (the broker baseline)."""
    with open_link(transport, url, role="mdm", hes=hes, prefix=prefix) as link:
        last = time.monotonic()
        while time.monotonic() - last < 900:
            items = link.fetch(timeout=0.5, limit=500)
            for item in items:
                mid = message_id_of(item.payload) or "?"
                reply = p.reply_to(mid, [], kept=0, at=utcnow())
                link.send("reply", p.dump(reply), message_id=reply.message_id)
                item.ack()
            if items:
                last = time.monotonic()


@dataclass
class Pushed:
    """What a head-end saw of its messages: the time from the first publish to the last reply,
    the replies' results and summed counts."""

    seconds: float
    results: dict[str, int]
    stats: dict[str, int]


def push(
    link: Link,
    kind: str,
    payloads: Sequence[bytes],
    *,
    window: int,
    on_command: Callable[[dict[str, Any]], list[tuple[str, bytes]]] | None = None,
    expect: int | None = None,
    finished: Callable[[str], str | None] | None = None,
    timeout: float = 900.0,
) -> Pushed:
    """Publish ``payloads`` keeping at most ``window`` unanswered, until every message sent was
    answered, or until replies to ``expect`` distinct items came back (``finished`` names the item
    a reply finishes, from its ``correlation_id``, or ``None``). ``on_command`` answers a
    received command with messages to send (a head-end's reports)."""
    queue: list[tuple[str, bytes]] = [(kind, b) for b in payloads]
    head, sent, answered = 0, 0, 0
    seen: set[str] = set()
    done: set[str] = set()
    results: dict[str, int] = {}
    stats: dict[str, int] = {}
    t0 = time.perf_counter()
    while expect is None or len(done) < expect:
        if expect is None and head >= len(queue) and answered >= sent:
            break
        while head < len(queue) and sent - answered < window:
            k, body = queue[head]
            link.send(k, body)
            head += 1
            sent += 1
        for item in link.fetch(timeout=0.05 if head < len(queue) else 0.5, limit=1000):
            doc = json.loads(item.payload)
            if item.kind == "reply" and doc["correlation_id"] not in seen:
                seen.add(doc["correlation_id"])
                if not doc["correlation_id"].startswith("warm-"):
                    answered += 1
                    item_done = finished(doc["correlation_id"]) if finished is not None else None
                    if item_done is not None and doc["result"] == "OK":
                        done.add(item_done)
                    results[doc["result"]] = results.get(doc["result"], 0) + 1
                    for key, value in doc.get("stats", {}).items():
                        stats[key] = stats.get(key, 0) + value
            elif item.kind == "command" and on_command is not None:
                queue += on_command(doc)
            item.ack()
        if time.perf_counter() - t0 > timeout:
            raise RuntimeError(f"{answered} of {sent} messages answered in {timeout:.0f} s")
    return Pushed(time.perf_counter() - t0, results, stats)


def warm_up(link: Link, timeout: float = 120.0) -> None:
    """Send a message of no consequence and wait for its reply: the other end is up and connected."""
    body = warmup_message()
    mid = message_id_of(body)
    link.send("network", body)
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        for item in link.fetch(timeout=0.5):
            item.ack()
            if item.kind == "reply" and json.loads(item.payload).get("correlation_id") == mid:
                return
    raise RuntimeError("the MDM's end did not answer the warm-up message")


@contextlib.contextmanager
def head_end(wire: Wire, db_url: str | None) -> Iterator[Link]:
    """The MDM's end started and warmed up, and the head-end's link to it."""
    try:
        with (
            consumer(wire, db_url),
            open_link(wire.transport, wire.url, role="hes", hes=wire.hes, prefix=wire.prefix) as link,
        ):
            warm_up(link)
            yield link
    finally:
        wire.cleanup()


# --- 1. ingestion ------------------------------------------------------------------------------


def bench_ingest(meters: int, repeats: int, window: int) -> None:
    hours = [hour_of_pushes(meters, 1 + r, seed=r) for r in range(repeats)]
    payloads = [[p.dump(m) for m in msgs] for msgs in hours]
    docs = [
        [json.dumps(profile_document(m).doc, separators=(",", ":"), default=str).encode() for m in msgs]
        for msgs in hours
    ]
    n_msgs, profiles = len(payloads[0]), meters * 4
    values = profiles * len(BLOCK_COLUMNS)
    console.print(
        f"ingestion: {meters:,} meters behind {-(-meters // PER_DCU)} DCUs, one hour = {n_msgs} profile "
        f"messages, {profiles:,} meter-blocks, {values:,} values"
    )
    times: dict[str, list[float]] = {}

    with database() as url:  # baseline: the reading documents through ingest_bytes, no broker
        engine = make_engine(url)
        sessions = session_factory(engine)
        load_network(sessions, meters, channels=True)
        with sessions() as s:  # warm-up: the first document, rolled back, not timed
            ingest_bytes(s, docs[0][0], filename="warm.json", source=SENDER, fmt="json")
            s.rollback()
        for r in range(repeats):
            t = time.perf_counter()
            stored = 0
            for i, doc in enumerate(docs[r]):
                with sessions.begin() as s:
                    res = ingest_bytes(s, doc, filename=f"hes-{r}-{i}.json", source=SENDER, fmt="json")
                    stored += res.intervals_new + res.intervals_changed
            times.setdefault("direct", []).append(time.perf_counter() - t)
            check(stored == values, f"direct ingest stored {stored:,} values, expected {values:,}")
        engine.dispose()

    for transport in ("mqtt", "nats"):
        wire = Wire(transport)
        with head_end(wire, None) as link:
            for r in range(repeats):
                got = push(link, "profile", payloads[r], window=window)
                check(got.results == {"OK": n_msgs}, f"answer-only {transport}: {got.results}")
                times.setdefault(f"noop-{transport}", []).append(got.seconds)
        with database() as url:
            engine = make_engine(url)
            load_network(session_factory(engine), meters, channels=True)
            engine.dispose()
            wire = Wire(transport)
            with head_end(wire, url) as link:
                for r in range(repeats):
                    got = push(link, "profile", payloads[r], window=window)
                    check(got.results == {"OK": n_msgs}, f"serve {transport}: {got.results}")
                    check(got.stats.get("values") == values, f"serve {transport} stored {got.stats}")
                    times.setdefault(f"serve-{transport}", []).append(got.seconds)

    med = {k: statistics.median(v) for k, v in times.items()}
    table = Table(
        title=f"1. One hour of 15-minute block-load pushes, {meters:,} meters (medians of {repeats})"
    )
    for col in ("path", "seconds", "meter-blocks/min", "values/s", "messages/s"):
        table.add_column(col, justify="left" if col == "path" else "right")
    rows = [
        ("baseline: answer-only consumer over MQTT (no database)", "noop-mqtt"),
        ("baseline: answer-only consumer over NATS (no database)", "noop-nats"),
        ("baseline: ingest_bytes of the same documents, no broker", "direct"),
        ("MQTT → m2c hes serve, first publish to last reply", "serve-mqtt"),
        ("NATS → m2c hes serve, first publish to last reply", "serve-nats"),
    ]
    for label, key in rows:
        secs = med[key]
        table.add_row(
            label,
            f"{secs:.2f}",
            f"{profiles / secs * 60:,.0f}",
            f"{values / secs:,.0f}",
            f"{n_msgs / secs:,.0f}",
        )
    console.print(table)
    for transport in ("mqtt", "nats"):
        console.print(
            f"{transport}: serve takes {med[f'serve-{transport}'] / med['direct']:.2f}× the direct ingest; "
            f"{profiles / med[f'serve-{transport}'] * 60:,.0f} meter-blocks per minute (target ≥ 10,000)"
        )


# --- 2. outage storm ---------------------------------------------------------------------------


class Router(threading.Thread):
    """Routes the events stored, a run every ``every`` seconds at most (a run takes what arrived
    meanwhile), until ``expected`` events are stored and routed."""

    def __init__(self, sessions: sessionmaker[Session], expected: int, every: float) -> None:
        super().__init__(daemon=True)
        self.sessions, self.expected, self.every = sessions, expected, every
        self.t0 = time.perf_counter()
        self.seconds = 0.0
        self.runs = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while time.perf_counter() - self.t0 < 900:
                started = time.perf_counter()
                with self.sessions.begin() as s:
                    result = route_events(s, now=utcnow())
                self.runs += 1
                with self.sessions() as s:
                    stored, last = s.execute(
                        select(func.count(), func.coalesce(func.max(MeterEvent.id), 0))
                    ).one()
                if stored >= self.expected and result.cursor >= last:
                    self.seconds = time.perf_counter() - self.t0
                    return
                time.sleep(max(0.05, self.every - (time.perf_counter() - started)))
            raise RuntimeError("the storm was not routed in 15 minutes")
        except BaseException as exc:  # reported by the caller
            self.error = exc


def bench_storm(meters: int, repeats: int, window: int, route_every: float) -> None:
    start = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
    fails = [p.dump(m) for m in storm_messages(meters, 101, start, seed=1)]
    backs = [p.dump(m) for m in storm_messages(meters, 102, start + timedelta(minutes=40), seed=2)]
    dts = -(-meters // PER_DCU)
    console.print(
        f"outage storm: {meters:,} meters under {dts} transformers, {len(fails)} events messages each way"
    )
    times: dict[str, list[float]] = {}
    wire = Wire("mqtt")
    with head_end(wire, None) as link:
        for _ in range(repeats):
            for key, msgs in (("noop-fail", fails), ("noop-back", backs)):
                got = push(link, "events", msgs, window=window)
                check(got.results == {"OK": len(msgs)}, f"answer-only: {got.results}")
                times.setdefault(key, []).append(got.seconds)
    for _ in range(repeats):
        with database() as url:
            engine = make_engine(url)
            sessions = session_factory(engine)
            load_network(sessions, meters, channels=False)
            wire = Wire("mqtt")
            with head_end(wire, url) as link:
                for key, msgs, expected in (("fail", fails, meters), ("back", backs, 2 * meters)):
                    router = Router(sessions, expected, route_every)
                    router.start()
                    got = push(link, "events", msgs, window=window)
                    router.join()
                    if router.error is not None:
                        raise router.error
                    check(got.stats.get("events") == meters, f"{key}: replies count {got.stats}")
                    times.setdefault(f"{key}-stored", []).append(got.seconds)
                    times.setdefault(f"{key}-routed", []).append(router.seconds)
            with sessions() as s:
                events = s.scalar(select(func.count()).select_from(MeterEvent))
                outages = s.execute(
                    select(
                        func.count(),
                        func.count(Outage.restored_at),
                        func.sum(Outage.meters_affected),
                        func.sum(Outage.meters_restored),
                    )
                ).one()
            engine.dispose()
            check(events == 2 * meters, f"{events:,} events stored of {2 * meters:,} sent")
            check(outages[0] == dts, f"{outages[0]} outages for {dts} transformers")
            check(outages[1] == dts, f"{outages[1]} of {outages[0]} outages restored")
            check(outages[2] == meters and outages[3] == meters, f"meters affected/restored {outages[2:]}")
    med = {k: statistics.median(v) for k, v in times.items()}
    table = Table(title=f"2. Outage storm, {meters:,} meters under {dts} transformers (medians of {repeats})")
    for col in ("phase", "seconds", "events/s"):
        table.add_column(col, justify="left" if col == "phase" else "right")
    for label, key in (
        ("baseline: last gasps to the answer-only consumer", "noop-fail"),
        ("last gasps (101): stored, last reply", "fail-stored"),
        ("last gasps (101): stored and routed (drained)", "fail-routed"),
        ("baseline: restorations to the answer-only consumer", "noop-back"),
        ("restorations (102): stored, last reply", "back-stored"),
        ("restorations (102): stored and routed (drained)", "back-routed"),
    ):
        table.add_row(label, f"{med[key]:.2f}", f"{meters / med[key]:,.0f}")
    console.print(table)
    console.print(
        f"checked: {2 * meters:,} events stored of {2 * meters:,} sent, {dts} outages for {dts} "
        "transformers, every outage restored with all its meters"
    )


# --- 3. commands -------------------------------------------------------------------------------


def relay_of(kind: str) -> str:
    return "disconnected" if kind == "disconnect" else "connected"


def answer_command(doc: dict[str, Any]) -> list[tuple[str, bytes]]:
    """A head-end's answer to a relay command: acknowledged, then executed with the relay read."""
    cmd = p.CommandMessage.model_validate(doc)
    now = utcnow()
    out = []
    for status, result in (("acknowledged", {}), ("executed", {"relay": relay_of(cmd.action)})):
        rep = p.CommandReport(
            message_id=f"rep-{cmd.message_id}-{status}",
            sent_at=now,
            sender=SENDER,
            command_id=cmd.command_id,
            correlation_id=cmd.message_id,
            status=status,
            at=now,
            result=result,
        )
        out.append(("command_report", p.dump(rep)))
    return out


def executed_command(correlation_id: str) -> str | None:
    """The command whose ``executed`` report a reply answers (``rep-cmd-<id>-<attempt>-executed``)."""
    parts = correlation_id.split("-")
    return parts[2] if correlation_id.endswith("-executed") and len(parts) >= 5 else None


def store_alone(sessions: sessionmaker[Session], meter_ids: list[int], kind: str) -> float:
    """Issue, send and confirm a group through the command store alone; rolled back."""
    with sessions() as s:
        now = utcnow()
        t = time.perf_counter()
        parent = issue_group(s, kind=kind, meter_ids=meter_ids, reason="bench", requested_by="bench", at=now)
        sent: list[int] = []
        while due := due_commands(s, now, limit=500):
            mark_sent_many(s, [(c.id, f"cmd-{c.id}-1") for c in due], at=now)
            sent.extend(c.id for c in due)
        for lo in range(0, len(sent), 500):
            chunk = sent[lo : lo + 500]
            apply_reports(s, [Report(c, "acknowledged", now) for c in chunk])
            apply_reports(s, [Report(c, "executed", now, result={"relay": relay_of(kind)}) for c in chunk])
        secs = time.perf_counter() - t
        check(parent.status == "success", f"store alone: group {parent.status}")
        s.rollback()
    return secs


def bench_commands(n: int, repeats: int, window: int) -> None:
    console.print(f"commands: groups of {n:,} connect/disconnect commands over MQTT")
    times: dict[str, list[float]] = {}
    reports: list[int] = []
    with database() as url:
        engine = make_engine(url)
        sessions = session_factory(engine)
        load_network(sessions, n, channels=False)
        meter_ids = list(range(1, n + 1))
        store_alone(sessions, meter_ids[:50], "disconnect")  # warm-up
        for r in range(repeats):
            times.setdefault("store", []).append(
                store_alone(sessions, meter_ids, ("disconnect", "connect")[r % 2])
            )
        wire = Wire("mqtt")
        with head_end(wire, url) as link:
            for r in range(repeats):
                kind = ("disconnect", "connect")[r % 2]
                t = time.perf_counter()
                with sessions.begin() as s:
                    parent = issue_group(
                        s, kind=kind, meter_ids=meter_ids, reason="bench", requested_by="bench", at=utcnow()
                    )
                    parent_id = parent.id
                issued = time.perf_counter() - t
                got = push(
                    link,
                    "command_report",
                    [],
                    window=window,
                    on_command=answer_command,
                    expect=n,
                    finished=executed_command,
                )
                times.setdefault("issue", []).append(issued)
                times.setdefault("round-trip", []).append(issued + got.seconds)
                check(set(got.results) == {"OK"}, f"reports: {got.results}")
                reports.append(sum(got.results.values()))
                with sessions() as s:
                    done = s.scalar(
                        select(func.count()).where(
                            MeterCommand.parent_id == parent_id,
                            MeterCommand.status == "executed",
                            MeterCommand.relay_state == relay_of(kind),
                            MeterCommand.relay_confirmed_at.is_not(None),
                        )
                    )
                    status = s.scalar(select(MeterCommand.status).where(MeterCommand.id == parent_id))
                check(done == n, f"{done:,} of {n:,} commands executed with the relay confirmed")
                check(status == "success", f"group {status}")
        engine.dispose()
    med = {k: statistics.median(v) for k, v in times.items()}
    table = Table(title=f"3. Connect/disconnect groups of {n:,} commands round trip (medians of {repeats})")
    for col in ("path", "seconds", "commands/s"):
        table.add_column(col, justify="left" if col == "path" else "right")
    for label, key in (
        ("baseline: command store alone (issue, send, ack + executed in batches)", "store"),
        ("issue the group (store)", "issue"),
        ("issued → executed and relay confirmed, over MQTT via m2c hes serve", "round-trip"),
    ):
        table.add_row(label, f"{med[key]:.2f}", f"{n / med[key]:,.0f}")
    console.print(table)
    console.print(f"the round trip takes {med['round-trip'] / med['store']:.1f}× the store alone")
    if max(reports) > 2 * n:
        console.print(
            f"report messages answered per group: {', '.join(f'{r:,}' for r in reports)} of {2 * n:,} "
            "(commands sent again before their report arrived were answered again)"
        )


# --- main --------------------------------------------------------------------------------------


def check(ok: bool, what: str) -> None:
    if not ok:
        raise SystemExit(f"check failed: {what}")


@contextlib.contextmanager
def nodelay_broker() -> Iterator[str]:
    """A Mosquitto of this run's own on a free port with ``set_tcp_nodelay true``; its URL."""
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as conf:
        conf.write(f"listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n")
    proc = subprocess.Popen([exe, "-c", conf.name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        os.unlink(conf.name)


def main() -> None:
    if len(sys.argv) == 6 and sys.argv[1] == "--answer-only":
        answer_only(*sys.argv[2:6])
        return
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1,000 / 5,000 / 500 and one repeat")
    ap.add_argument("--only", choices=("ingest", "storm", "commands"), action="append")
    ap.add_argument("--meters", type=int, default=10_000, help="ingestion fleet")
    ap.add_argument("--storm", type=int, default=50_000, help="meters in the outage storm")
    ap.add_argument("--commands", type=int, default=5_000, help="commands in a group")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--window", type=int, default=200, help="unanswered messages a head-end allows")
    ap.add_argument("--route-every", type=float, default=2.0, help="seconds between routing runs (storm)")
    ap.add_argument(
        "--mqtt-nodelay",
        action="store_true",
        help="the MQTT paths on a Mosquitto of this run's own with set_tcp_nodelay true",
    )
    args = ap.parse_args()
    if args.quick:
        args.meters, args.storm, args.commands, args.repeats = 1_000, 5_000, 500, 1
    only = set(args.only or ("ingest", "storm", "commands"))
    console.print(
        f"{os.cpu_count()} cores shared by the broker, PostgreSQL, the MDM process and the head-end"
    )
    with contextlib.ExitStack() as stack:
        if args.mqtt_nodelay:
            URLS["mqtt"] = stack.enter_context(nodelay_broker())
        console.print(f"MQTT broker {URLS['mqtt']}{' (set_tcp_nodelay true)' if args.mqtt_nodelay else ''}")
        if "ingest" in only:
            bench_ingest(args.meters, args.repeats, args.window)
        if "storm" in only:
            bench_storm(args.storm, args.repeats, args.window, args.route_every)
        if "commands" in only:
            bench_commands(args.commands, args.repeats, args.window)


if __name__ == "__main__":
    main()
