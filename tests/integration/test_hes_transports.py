"""The head-end link over a real Mosquitto broker and a real NATS JetStream server: a head-end
link publishes, the MDM's serve loop stores and replies, commands go out and their reports come
back, unreadable messages are refused (and dead-lettered on NATS), and an MQTT session keeps
what was published while the head-end was away."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np
import pytest
from sqlalchemy import select

from conftest import IN_CI, NATS_URL, make_meter
from meter2cash.bootstrap import Platform
from meter2cash.hes.links import Link, MqttLink, NatsLink, Received, dead_letters, stream_name
from meter2cash.hes.protocol import BLOCK_LOAD, CLOCK, CommandMessage, Reply, dump, parse_message
from meter2cash.integration.hes_commands import dispatch
from meter2cash.integration.hes_serve import ServeStats, serve
from meter2cash.mdm.models import ChannelDay, Meter, MeterEvent
from meter2cash.mdm.store import decode_values

MQTT_URL = os.environ.get("M2C_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")
AT = datetime(2026, 10, 2, 6, 0, tzinfo=UTC)


def _reachable(url: str, default_port: int) -> None:
    host, _, port = url.rsplit("//", 1)[-1].partition(":")
    try:
        with socket.create_connection((host, int(port or default_port)), timeout=2):
            return
    except OSError:
        if IN_CI:
            pytest.fail(f"{url} is required under CI=true but unreachable")
        pytest.skip(f"{url} not reachable")


@pytest.fixture
def mdm(platform) -> Platform:
    """The test's platform (SQLite and PostgreSQL) with meter SM1 and the clock at AT."""
    platform.clock = lambda: AT
    with platform.sessions() as s:
        make_meter(s, "SM1", {"kwh_import_15m": "1"})
        s.commit()
    return platform


@dataclass
class Wire:
    transport: str
    url: str
    hes: str
    prefix: str

    def link(self, role: str) -> Link:
        cls = MqttLink if self.transport == "mqtt" else NatsLink
        return cls(self.url, role=role, hes=self.hes, prefix=self.prefix)  # type: ignore[arg-type]


def _forget_mqtt_sessions(wire: Wire) -> None:
    """Drop the broker's persistent sessions of this test's client ids."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    for role in ("hes", "mdm"):
        c = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"m2c-{role}-{wire.prefix}-{wire.hes}", clean_session=True
        )
        c.connect("127.0.0.1", 1883)
        c.loop_start()
        c.disconnect()
        c.loop_stop()


def _delete_stream(wire: Wire) -> None:
    async def run() -> None:
        import nats

        nc = await nats.connect(wire.url)
        try:
            await nc.jetstream().delete_stream(stream_name(wire.hes))
        finally:
            await nc.close()

    asyncio.run(run())


@pytest.fixture(params=["mqtt", "nats"])
def wire(request: pytest.FixtureRequest) -> Iterator[Wire]:
    """A head-end name and topic prefix of this test's own on MQTT or NATS, cleaned up after."""
    url = MQTT_URL if request.param == "mqtt" else NATS_URL
    _reachable(url, 1883 if request.param == "mqtt" else 4222)
    tag = uuid.uuid4().hex[:10]
    w = Wire(request.param, url, f"hes{tag}", f"t{tag}")
    yield w
    if w.transport == "mqtt":
        _forget_mqtt_sessions(w)
    else:
        _delete_stream(w)


class Loop:
    """The MDM's serve loop in a thread."""

    def __init__(self, platform: Platform, wire: Wire) -> None:
        wire.link("mdm").close()  # the MDM's session or consumers exist before anything is sent
        self.stop = threading.Event()
        self.result: list[ServeStats] = []
        self.error: list[BaseException] = []

        def run() -> None:
            try:
                self.result.append(
                    serve(
                        platform,
                        wire.transport,
                        hes=wire.hes,
                        prefix=wire.prefix,
                        url=wire.url,
                        stop=self.stop,
                        poll_s=0.2,
                        dispatch_every=0.2,
                        route_every=0,  # the link alone: events are routed in the field-loop test
                    )
                )
            except BaseException as exc:
                self.error.append(exc)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def close(self) -> ServeStats:
        self.stop.set()
        self.thread.join(20)
        assert not self.error, self.error
        return self.result[0]


def _wait(link: Link, kind: str, n: int = 1, timeout: float = 20.0) -> list[Received]:
    got: list[Received] = []
    deadline = datetime.now().timestamp() + timeout
    while len(got) < n and datetime.now().timestamp() < deadline:
        for item in link.fetch(0.5):
            item.ack()
            if item.kind == kind:
                got.append(item)
    assert len(got) >= n, f"{len(got)} of {n} {kind} message(s) arrived"
    return got


def _replies(link: Link, n: int) -> dict[str, Reply]:
    replies = [parse_message(r.payload) for r in _wait(link, "reply", n)]
    assert all(isinstance(r, Reply) for r in replies)
    return {r.correlation_id: r for r in replies}  # type: ignore[union-attr]


def _base(**fields: object) -> bytes:
    return json.dumps({"sent_at": "2026-10-02T06:00:00Z", "sender": "north", **fields}).encode()


PROFILE = _base(
    kind="profile",
    message_id="p-1",
    profile=BLOCK_LOAD,
    capture_period_s=900,
    columns=[CLOCK, "1.0.1.29.0.255"],
    meters=[{"meter": "SM1", "rows": [["2026-10-01T00:15:00Z", 0.25], ["2026-10-01T00:30:00Z", 0.5]]}],
)
EVENTS = _base(
    kind="events",
    message_id="e-1",
    events=[
        {"meter": "SM1", "event_id": 251, "log": "0.0.99.98.5.255", "occurred_at": "2026-10-01T01:00:00Z"}
    ],
)


def test_messages_are_stored_and_answered_and_commands_come_back(mdm, wire):
    from meter2cash.mdm.commands.models import MeterCommand
    from meter2cash.mdm.commands.service import issue_command

    hes = wire.link("hes")
    loop = Loop(mdm, wire)
    try:
        hes.send("profile", PROFILE)
        hes.send("events", EVENTS)
        hes.send("profile", b'{"kind": "profile", "message_id": "bad-1", "columns": 7}')
        replies = _replies(hes, 3)
        assert (replies["p-1"].result, replies["p-1"].stats["rows"]) == ("OK", 2)
        assert (replies["e-1"].result, replies["e-1"].stats["events"]) == ("OK", 1)
        assert replies["bad-1"].result == "FAILED" and replies["bad-1"].errors[0].code == "hes.bad_message"
        with mdm.sessions() as s:
            channel_id = s.scalar(select(ChannelDay.channel_id))
            kwh = decode_values(s.get(ChannelDay, (channel_id, date(2026, 10, 1))).raw_values)
            assert (kwh[0], kwh[1]) == (0.25, 0.5)  # clocks 00:15 and 00:30 end the blocks 00:00, 00:15
            assert [(e.code, e.category) for e in s.scalars(select(MeterEvent))] == [("251", "tamper")]
            meter_id = s.scalar(select(Meter.id).where(Meter.serial == "SM1"))
            cmd = issue_command(
                s, kind="disconnect", meter_id=meter_id, reason="manual", requested_by="t", at=AT
            )
            s.commit()
            cmd_id = cmd.id

        command = parse_message(_wait(hes, "command")[0].payload)
        assert isinstance(command, CommandMessage)
        assert (command.command_id, command.meter, command.action) == (cmd_id, "SM1", "disconnect")
        report = _base(
            kind="command_report",
            message_id="r-1",
            command_id=cmd_id,
            correlation_id=command.message_id,
            status="executed",
            at="2026-10-02T06:00:03Z",
            result={"relay": "disconnected"},
        )
        hes.send("command_report", report)
        assert _replies(hes, 1)["r-1"].result == "OK"
        with mdm.sessions() as s:
            done = s.get(MeterCommand, cmd_id)
            assert (done.status, done.relay_state) == ("executed", "disconnected")
    finally:
        stats = loop.close()
        hes.close()
    assert (stats.messages, stats.ok, stats.failed, stats.commands_sent) == (4, 3, 1, 1)
    if wire.transport == "nats":
        dead = dead_letters(wire.url, hes=wire.hes, prefix=wire.prefix)
        assert len(dead) == 1 and dead[0][0].startswith(b'{"kind": "profile", "message_id": "bad-1"')
        assert dead[0][1].startswith("hes.bad_message")
        assert stats.dead_letters == 1


def test_the_same_events_again_under_another_message_id_are_duplicates(mdm, wire):
    hes = wire.link("hes")
    loop = Loop(mdm, wire)
    try:
        hes.send("events", EVENTS)
        first = _replies(hes, 1)["e-1"]
        hes.send("events", EVENTS.replace(b"e-1", b"e-2"))
        second = _replies(hes, 1)["e-2"]
    finally:
        stats = loop.close()
        hes.close()
    assert (first.stats, second.stats) == ({"events": 1, "duplicates": 0}, {"events": 0, "duplicates": 1})
    assert stats.messages == 2


def test_mqtt_session_keeps_a_command_while_the_head_end_is_away(mdm):
    from meter2cash.mdm.commands.service import issue_command

    _reachable(MQTT_URL, 1883)
    tag = uuid.uuid4().hex[:10]
    wire = Wire("mqtt", MQTT_URL, f"hes{tag}", f"t{tag}")
    try:
        wire.link("hes").close()  # the head-end's session exists: its subscriptions stay
        with mdm.sessions() as s:
            meter_id = s.scalar(select(Meter.id).where(Meter.serial == "SM1"))
            issue_command(s, kind="time_sync", meter_id=meter_id, reason="manual", requested_by="t", at=AT)
            s.commit()
        with wire.link("mdm") as link, mdm.sessions() as s:
            assert dispatch(s, lambda m: link.send("command", dump(m)), AT) == 1
            s.commit()
        with wire.link("hes") as hes:
            got = [parse_message(r.payload) for r in _wait(hes, "command")]
        assert [(c.action, c.meter) for c in got] == [("time_sync", "SM1")]  # type: ignore[union-attr]
    finally:
        _forget_mqtt_sessions(wire)


def test_links_refuse_the_other_sides_kinds():
    _reachable(NATS_URL, 4222)
    tag = uuid.uuid4().hex[:10]
    wire = Wire("nats", NATS_URL, f"hes{tag}", f"t{tag}")
    try:
        with wire.link("hes") as hes:
            with pytest.raises(Exception, match="does not send"):
                hes.send("command", b"{}")
            hes.send("profile", b'{"message_id": "x"}')
            hes.send("profile", b'{"message_id": "x"}')  # the same message id: stored once
        with wire.link("mdm") as link:
            got = link.fetch(1.0)
            assert [r.payload for r in got] == [b'{"message_id": "x"}']
            assert np.all([r.kind == "profile" for r in got])
    finally:
        _delete_stream(wire)


def test_m2c_hes_serve_applies_what_waits_and_prints_what_it_did(one_meter_db):
    from typer.testing import CliRunner

    from meter2cash.cli import app

    _reachable(NATS_URL, 4222)
    tag = uuid.uuid4().hex[:10]
    wire = Wire("nats", NATS_URL, f"hes{tag}", f"t{tag}")
    profile = PROFILE.replace(b'"SM1"', b'"M1"')
    try:
        with wire.link("hes") as hes:  # sent before the MDM's end ever ran: the stream keeps it
            hes.send("profile", profile)
        args = ["hes", "serve", "--transport", "nats", "--nats", NATS_URL, "--hes", wire.hes]
        result = CliRunner().invoke(app, [*args, "--prefix", wire.prefix, "--idle", "1", "--json"])
        assert result.exit_code == 0, result.output
        out = json.loads(result.output)
        assert (out["messages"], out["ok"], out["rows"], out["failed"]) == (1, 1, 2, 0)
        with wire.link("hes") as hes:
            assert _replies(hes, 1)["p-1"].result == "OK"
    finally:
        _delete_stream(wire)


def test_replies_sent_without_waiting_all_arrive_once_the_link_is_closed(wire):
    """Replies go out without waiting for the broker's acknowledgement; closing the MDM's end at
    once still delivers every one of them."""
    hes = wire.link("hes")
    try:
        mdm = wire.link("mdm")
        for i in range(200):
            reply = Reply(message_id=f"re-{i}", correlation_id=f"m-{i}", sent_at=AT, result="OK")
            mdm.send_reply(dump(reply), message_id=reply.message_id)
        mdm.close()
        assert sorted(_replies(hes, 200)) == sorted(f"m-{i}" for i in range(200))
    finally:
        hes.close()
