"""The head-end interface over REST: messages in (JSON and CIM XML), commands out, API keys."""

from __future__ import annotations

import json
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from conftest import make_meter
from meter2cash.api.app import create_app
from meter2cash.bootstrap import Platform
from meter2cash.hes.protocol import BLOCK_LOAD, CLOCK, ProfileMessage, parse_message
from meter2cash.mdm.models import ChannelDay, Meter
from meter2cash.mdm.store import decode_values

with warnings.catch_warnings():  # the test client warns about its httpx transport on import
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

KEY = "hes-key-4c1d9e7a2b5f8036"
AT = datetime(2026, 10, 2, 6, 0, tzinfo=UTC)
URL = "/api/v1/hes"
PROFILE = {
    "kind": "profile",
    "message_id": "p-1",
    "sent_at": "2026-10-02T06:00:00Z",
    "sender": "north",
    "profile": BLOCK_LOAD,
    "capture_period_s": 900,
    "columns": [CLOCK, "1.0.1.29.0.255"],
    "meters": [{"meter": "SM1", "rows": [["2026-10-01T00:15:00Z", 0.25], ["2026-10-01T00:30:00Z", 0.5]]}],
}


@pytest.fixture
def hes_platform(platform) -> Platform:
    """The test's platform (SQLite and PostgreSQL) with an API key, meter SM1 and the clock at AT."""
    p = platform.with_settings(api_keys=KEY)
    p.clock = lambda: AT
    with p.sessions() as s:
        make_meter(s, "SM1", {"kwh_import_15m": "1"})
        s.commit()
    return p


@pytest.fixture
def client(hes_platform) -> Iterator[TestClient]:
    with TestClient(create_app(hes_platform), headers={"X-API-Key": KEY}) as c:
        yield c


def test_without_a_key_nothing_gets_in_or_out(hes_platform):
    with TestClient(create_app(hes_platform)) as anonymous:
        r = anonymous.post(f"{URL}/messages", json=PROFILE)
        assert (r.status_code, r.json()["error"]["code"]) == (401, "auth.missing_key")
        r = anonymous.get(f"{URL}/commands", headers={"X-API-Key": "wrong"})
        assert (r.status_code, r.json()["error"]["code"]) == (401, "auth.invalid_key")
    with hes_platform.sessions() as s:
        assert s.scalar(select(ChannelDay.channel_id)) is None


def test_a_profile_is_stored_and_answered_once(client, hes_platform):
    r = client.post(f"{URL}/messages", json=PROFILE)
    assert r.status_code == 200, r.text
    reply = parse_message(r.content)
    assert (reply.kind, reply.result, reply.correlation_id) == ("reply", "OK", "p-1")
    assert reply.stats["rows"] == 2
    again = client.post(f"{URL}/messages", json=PROFILE)
    assert again.json() == r.json()
    with hes_platform.sessions() as s:
        row = s.scalars(select(ChannelDay)).one()
        assert (row.day, row.version) == (date(2026, 10, 1), 1)
        assert list(decode_values(row.raw_values)[:2]) == [0.25, 0.5]


def test_bad_messages_are_answered_failed_or_refused(client):
    r = client.post(
        f"{URL}/messages",
        content=json.dumps({**PROFILE, "columns": "no"}),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 200
    assert (r.json()["result"], r.json()["errors"][0]["code"]) == ("FAILED", "hes.bad_message")
    r = client.post(f"{URL}/messages", content=b"hello", headers={"content-type": "text/plain"})
    assert (r.status_code, r.json()["error"]["code"]) == (415, "api.unsupported_media_type")


def test_the_head_end_pulls_due_commands_once(client, hes_platform):
    from meter2cash.mdm.commands.models import MeterCommand
    from meter2cash.mdm.commands.service import issue_command

    with hes_platform.sessions() as s:
        meter_id = s.scalar(select(Meter.id).where(Meter.serial == "SM1"))
        cmd_id = issue_command(
            s, kind="connect", meter_id=meter_id, reason="manual", requested_by="t", at=AT
        ).id
        s.commit()
    r = client.get(f"{URL}/commands", params={"limit": 10})
    assert r.status_code == 200, r.text
    assert [(c["command_id"], c["message_id"], c["meter"], c["action"]) for c in r.json()] == [
        (cmd_id, f"cmd-{cmd_id}-1", "SM1", "connect")
    ]
    assert client.get(f"{URL}/commands").json() == []
    with hes_platform.sessions() as s:
        assert s.get(MeterCommand, cmd_id).status == "sent"


def test_a_cim_meter_readings_message_is_answered_in_cim(client, hes_platform):
    from meter2cash.hes.cim_build import meter_readings_xml

    xml = meter_readings_xml(
        [ProfileMessage.model_validate(PROFILE)], message_id="cim-1", source="north", at=AT
    )
    r = client.post(f"{URL}/messages", content=xml, headers={"content-type": "application/xml"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(r.content)
    texts = {el.tag.rsplit("}", 1)[-1]: (el.text or "") for el in root.iter()}
    assert (texts["Result"], texts["CorrelationID"]) == ("OK", "cim-1")
    with hes_platform.sessions() as s:
        row = s.scalars(select(ChannelDay)).one()
        assert list(decode_values(row.raw_values)[:2]) == [0.25, 0.5]


def test_with_a_callback_url_due_commands_are_posted_to_the_head_end(hes_platform):
    """The head-end's callback answers 503 once, then takes the read (sent once) and refuses the
    time sync (failed)."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from meter2cash.integration.hes_serve import serve
    from meter2cash.mdm.commands.models import MeterCommand
    from meter2cash.mdm.commands.service import issue_command

    received: list[tuple[int, dict]] = []

    class Callback(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            status = 503 if not received else 400 if body["action"] == "time_sync" else 202
            received.append((status, body))
            self.send_response(status)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            """Quiet."""

    server = HTTPServer(("127.0.0.1", 0), Callback)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with hes_platform.sessions() as s:
            meter_id = s.scalar(select(Meter.id).where(Meter.serial == "SM1"))
            cmd_id = issue_command(
                s,
                kind="read",
                meter_id=meter_id,
                reason="manual",
                requested_by="t",
                params={"profile": "events"},
                at=AT,
            ).id
            sync_id = issue_command(
                s, kind="time_sync", meter_id=meter_id, reason="manual", requested_by="t", at=AT
            ).id
            s.commit()
        p = hes_platform.with_settings(hes_callback_url=f"http://127.0.0.1:{server.server_port}/commands")
        p.clock = lambda: AT
        stats = serve(p, "rest", hes="north", idle=0.5, dispatch_every=0.1, poll_s=0.1)
    finally:
        server.shutdown()
        server.server_close()
    assert stats.commands_sent == 1
    assert [(status, body["message_id"]) for status, body in received] == [
        (503, f"cmd-{cmd_id}-1"),
        (202, f"cmd-{cmd_id}-1"),
        (400, f"cmd-{sync_id}-1"),
    ]
    with hes_platform.sessions() as s:
        assert s.get(MeterCommand, cmd_id).status == "sent"
        refused = s.get(MeterCommand, sync_id)
        assert refused.status == "failed" and refused.detail.startswith(
            "the head-end refused the command: 400"
        )


def test_a_head_end_on_the_rest_link_sends_messages_and_pulls_commands(hes_platform):
    from meter2cash.hes.links import RestLink
    from meter2cash.mdm.commands.service import issue_command

    with TestClient(create_app(hes_platform), headers={"X-API-Key": KEY}) as http:
        link = RestLink("http://testserver", hes="north", client=http)
        link.send("profile", json.dumps(PROFILE).encode())
        got = link.fetch(0)
        assert [(r.kind, parse_message(r.payload).result) for r in got] == [("reply", "OK")]
        with hes_platform.sessions() as s:
            meter_id = s.scalar(select(Meter.id).where(Meter.serial == "SM1"))
            cmd_id = issue_command(
                s, kind="time_sync", meter_id=meter_id, reason="manual", requested_by="t", at=AT
            ).id
            s.commit()
        commands = [parse_message(r.payload) for r in link.fetch(0)]
        assert [(c.kind, c.command_id) for c in commands] == [("command", cmd_id)]
        with pytest.raises(Exception, match="does not send"):
            link.send("command", b"{}")


def test_xml_that_is_not_cim_is_answered_failed_in_cim(client):
    r = client.post(
        f"{URL}/messages", content=b"<html><body/></html>", headers={"content-type": "application/xml"}
    )
    assert r.status_code == 200, r.text
    root = ET.fromstring(r.content)
    texts = {el.tag.rsplit("}", 1)[-1]: (el.text or "") for el in root.iter()}
    assert (texts["Result"], texts["code"]) == ("FAILED", "hes.bad_message")
    assert texts["reason"].startswith("hes.cim.")
