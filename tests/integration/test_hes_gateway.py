"""The MDM side of the head-end interface (``handle``, ``dispatch``) on both databases with master data."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import numpy as np
import pytest
from sqlalchemy import func, select

from conftest import make_meter
from meter2cash.hes.protocol import (
    BLOCK_LOAD,
    CLOCK,
    DAILY,
    CommandMessage,
    command_message_id,
    parse_message,
)
from meter2cash.integration.hes_commands import dispatch
from meter2cash.integration.hes_gateway import handle
from meter2cash.mdm.hes_inbox import HesMessage
from meter2cash.mdm.models import ChannelDay, Meter, MeterEvent, RawBatch, RegisterRead
from meter2cash.mdm.store import decode_values

AT = datetime(2026, 10, 2, 6, 0, tzinfo=UTC)
KWH = "1.0.1.29.0.255"
VOLT_AVG = "1.0.12.27.0.255"


def _msg(**fields: object) -> bytes:
    base = {"message_id": "m-1", "sent_at": "2026-10-02T06:00:00Z", "sender": "hes-north"}
    return json.dumps({**base, **fields}).encode()


def _block_load(message_id: str = "p-1", rows=None, meters=None, **more: object) -> bytes:
    rows = rows or [
        # IST clocks at the END of each 15-min block
        ["2026-10-01T00:15:00+05:30", 231.5, 0.25],
        ["2026-10-01T00:30:00+05:30", 229.0, 0.5],
        ["2026-10-01T01:00:00+05:30", 230.0, 1.25],  # 00:45 block missing
    ]
    return _msg(
        kind="profile",
        message_id=message_id,
        profile=BLOCK_LOAD,
        capture_period_s=900,
        columns=[CLOCK, VOLT_AVG, KWH],
        meters=meters or [{"meter": "SM1", "dcu": "DCU-7", "rows": rows}],
        **more,
    )


def _day(session, channel_id: int, day: date) -> np.ndarray:
    row = session.get(ChannelDay, (channel_id, day))
    assert row is not None, f"no channel-day {day} for channel {channel_id}"
    return decode_values(row.raw_values)


@pytest.fixture
def sm1(session):
    ids = make_meter(
        session, "SM1", {"kwh_import_15m": "2", "voltage_avg_15m": "1", "kwh_import_register": "1"}
    )
    session.commit()
    return ids


def test_block_load_rows_are_stored_at_the_start_of_their_block(session, sm1):
    reply = handle(session, _block_load(), received_at=AT)
    session.commit()
    assert (reply.result, reply.correlation_id, reply.errors) == ("OK", "p-1", [])
    assert reply.stats["rows"] == 3 and reply.stats["values"] == 6
    kwh = _day(session, sm1["kwh_import_15m"], date(2026, 9, 30))
    volts = _day(session, sm1["voltage_avg_15m"], date(2026, 9, 30))
    # 00:15 IST ends the block 00:00-00:15 IST = 18:30-18:45 UTC on 30 Sep: slot 18*4+2 = 74
    assert kwh[74] == 0.5 and kwh[75] == 1.0 and np.isnan(kwh[76]) and kwh[77] == 2.5  # multiplier 2
    assert (volts[74], volts[75], volts[77]) == (231.5, 229.0, 230.0)
    assert np.isnan(kwh[:74]).all() and np.isnan(kwh[78:]).all()


def test_a_message_seen_before_changes_nothing_and_gets_the_same_reply(session, sm1):
    first = handle(session, _block_load(), received_at=AT)
    session.commit()
    versions = session.scalars(select(ChannelDay.version)).all()
    again = handle(session, _block_load(), received_at=datetime(2026, 10, 3, tzinfo=UTC))
    session.commit()
    assert again == first
    assert session.scalars(select(ChannelDay.version)).all() == versions
    assert session.scalar(select(func.count()).select_from(RawBatch)) == 1
    assert session.scalar(select(func.count()).select_from(HesMessage)) == 1
    stored = session.scalars(select(HesMessage)).one()
    assert (stored.sender, stored.message_id, stored.kind, stored.result) == (
        "hes-north",
        "p-1",
        "profile",
        "OK",
    )


def test_bad_rows_are_named_and_the_rest_kept(session, sm1):
    rows = [
        ["2026-10-01T00:15:00+05:30", 231.5, 0.25],
        ["2026-10-01T00:30:00+05:30", 0.5],  # one value short
        ["yesterday", 230.0, 1.0],
        ["2026-10-01T00:37:00+05:30", 230.0, 1.0],  # not the end of a block
        ["2026-10-01T01:00:00+05:30", 230.0, "lots"],
    ]
    meters = [
        {"meter": "SM1", "rows": rows},
        {"meter": "NOPE", "rows": [["2026-10-01T00:15:00+05:30", 230.0, 0.1]]},
    ]
    reply = handle(session, _block_load(meters=meters), received_at=AT)
    session.commit()
    assert reply.result == "PARTIAL"
    by_field = {e.field: e.code for e in reply.errors}
    assert by_field["meters[0].rows[1]"] == "hes.bad_row"
    assert by_field["meters[0].rows[2]"] == "hes.bad_clock"
    assert by_field["meters[0].rows[3]"] == "hes.bad_clock"
    assert by_field["meters[0].rows[4]"] == "ingest.bad_value"
    assert any(f.startswith("meters[1]") and c == "ingest.unknown_meter" for f, c in by_field.items())
    # kept: row 0 (both values) and row 4's voltage
    assert reply.stats["rows"] == 1 and reply.stats["values"] == 3
    kwh = _day(session, sm1["kwh_import_15m"], date(2026, 9, 30))
    assert kwh[74] == 0.5 and np.isnan(kwh[75:]).all()
    assert _day(session, sm1["voltage_avg_15m"], date(2026, 9, 30))[77] == 230.0


def test_daily_profile_columns_are_register_reads(session, sm1):
    data = _msg(
        kind="profile",
        message_id="d-1",
        profile=DAILY,
        columns=[CLOCK, "1.0.1.8.0.255"],
        meters=[
            {
                "meter": "SM1",
                "rows": [["2026-10-01T00:00:00+05:30", 1234.5], ["2026-10-02T00:00:00+05:30", None]],
            }
        ],
    )
    reply = handle(session, data, received_at=AT)
    session.commit()
    assert reply.result == "OK" and reply.stats["values"] == 1
    reads = session.execute(select(RegisterRead.read_at, RegisterRead.value)).all()
    assert reads == [(datetime(2026, 9, 30, 18, 30, tzinfo=UTC), 1234.5)]


def test_unknown_column_is_named(session, sm1):
    data = _msg(
        kind="profile",
        message_id="u-1",
        profile=BLOCK_LOAD,
        capture_period_s=900,
        columns=[CLOCK, KWH, "1.0.99.99.0.255"],
        meters=[{"meter": "SM1", "rows": [["2026-10-01T00:15:00+05:30", 0.25, 7]]}],
    )
    reply = handle(session, data, received_at=AT)
    assert reply.result == "PARTIAL"
    assert [(e.code, e.field) for e in reply.errors] == [("hes.unknown_column", "columns[2]")]


def test_events_are_stored_with_the_catalogue_category(session, sm1):
    data = _msg(
        kind="events",
        message_id="e-1",
        events=[
            {"meter": "SM1", "dcu": "DCU-7", "log": "0.0.99.98.2.255", "event_id": 101,
             "occurred_at": "2026-10-01T03:12:00+05:30", "data": {"voltage": 0}},
            {"meter": "SM1", "event_id": 69, "occurred_at": "2026-10-01T04:00:00Z"},
            {"meter": "NOPE", "event_id": 101, "occurred_at": "2026-10-01T04:00:00Z"},
        ],
    )  # fmt: skip
    reply = handle(session, data, received_at=AT)
    session.commit()
    assert reply.result == "PARTIAL" and reply.stats["events"] == 2
    assert [(e.code, e.field) for e in reply.errors] == [("ingest.unknown_meter", "events[2].meter")]
    events = {e.code: e for e in session.scalars(select(MeterEvent))}
    assert set(events) == {"101", "69"}
    assert events["101"].category == "power" and events["101"].occurred_at == datetime(
        2026, 9, 30, 21, 42, tzinfo=UTC
    )
    assert events["101"].data == {"voltage": 0, "log": "0.0.99.98.2.255", "dcu": "DCU-7"}
    assert events["69"].category == "other"


def test_unreadable_message_is_failed_with_its_id(session):
    reply = handle(session, _msg(kind="profile", message_id="x-9", columns=[CLOCK]), received_at=AT)
    assert (reply.result, reply.correlation_id, reply.errors[0].code) == ("FAILED", "x-9", "hes.bad_message")
    reply = handle(session, b"{not json", received_at=AT)
    assert (reply.result, reply.correlation_id, reply.errors[0].code) == ("FAILED", "", "hes.bad_message")
    assert session.scalar(select(func.count()).select_from(HesMessage)) == 0


def _meter_id(session, serial: str) -> int:
    return session.scalar(select(Meter.id).where(Meter.serial == serial))


def test_command_goes_out_and_its_report_is_applied(session, sm1):
    from meter2cash.mdm.commands.models import MeterCommand
    from meter2cash.mdm.commands.service import issue_command

    cmd = issue_command(
        session,
        kind="time_sync",
        meter_id=_meter_id(session, "SM1"),
        reason="manual",
        requested_by="t",
        at=AT,
    )
    session.commit()
    out: list[CommandMessage] = []
    assert dispatch(session, out.append, AT) == 1
    session.commit()
    assert [(m.message_id, m.meter, m.action, m.command_id) for m in out] == [
        (f"cmd-{cmd.id}-1", "SM1", "time_sync", cmd.id)
    ]
    assert parse_message(out[0].model_dump_json()) == out[0]
    assert session.get(MeterCommand, cmd.id).status == "sent"
    assert dispatch(session, out.append, AT) == 0  # sent: not due again before its answer is late

    report = _msg(
        kind="command_report",
        message_id="r-1",
        command_id=cmd.id,
        correlation_id=command_message_id(cmd.id, 1),
        status="executed",
        at="2026-10-02T06:00:05Z",
        result={"clock": "2026-10-02T06:00:05Z"},
    )
    reply = handle(session, report, received_at=AT)
    session.commit()
    assert (reply.result, reply.stats) == ("OK", {"reports": 1})
    session.refresh(cmd)
    assert cmd.status == "executed" and cmd.result == {"clock": "2026-10-02T06:00:05Z"}

    # a progress report overtaken by the outcome is stale: accepted, and nothing changes
    late = handle(
        session, report.replace(b'"r-1"', b'"r-2"').replace(b"executed", b"acknowledged"), received_at=AT
    )
    assert (late.result, late.errors) == ("OK", [])
    contrary = handle(
        session, report.replace(b'"r-1"', b'"r-4"').replace(b'"executed"', b'"failed"'), received_at=AT
    )
    assert (contrary.result, contrary.errors[0].code, contrary.errors[0].field) == (
        "FAILED",
        "command.bad_transition",
        "command_id",
    )
    unknown = handle(
        session, report.replace(b'"r-1"', b'"r-3"').replace(f": {cmd.id},".encode(), b": 99999,")
    )
    assert (unknown.result, unknown.errors[0].code) == ("FAILED", "command.not_found")
    session.refresh(cmd)
    assert cmd.status == "executed"


def test_profile_answering_a_reacquire_reports_the_command_executed(session, sm1):
    from meter2cash.mdm.commands.models import MeterCommand
    from meter2cash.mdm.commands.service import issue_command

    cmd = issue_command(
        session,
        kind="reacquire",
        meter_id=_meter_id(session, "SM1"),
        reason="acquisition.gap",
        requested_by="t",
        params={"channel": "kwh_import_15m", "from": "2026-09-30T18:30:00Z", "to": "2026-09-30T19:30:00Z"},
        at=AT,
    )
    session.commit()
    out: list[CommandMessage] = []
    dispatch(session, out.append, AT)
    session.commit()
    reply = handle(session, _block_load(correlation_id=out[0].message_id), received_at=AT)
    session.commit()
    assert reply.result == "OK"
    session.refresh(cmd)
    assert (cmd.status, cmd.result) == ("executed", {"rows": 3})
    assert session.get(MeterCommand, cmd.id).finished_at is not None


def test_network_changes_are_applied_and_unknown_codes_named(session, sm1):
    from meter2cash.mdm.models import DCU

    session.add_all([DCU(code="DCU-7"), DCU(code="DCU-8")])
    session.commit()
    change = {"link": "meter_dcu", "child": "SM1", "parent": "DCU-8", "effective_at": "2026-10-01T12:00:00Z"}
    unknown = {**change, "parent": "DCU-99"}
    reply = handle(session, _msg(kind="network", message_id="n-1", changes=[change, unknown]), received_at=AT)
    session.commit()
    assert (reply.result, reply.stats) == ("PARTIAL", {"changes": 1, "duplicates": 0})
    assert [(e.code, e.field) for e in reply.errors] == [("network.unknown_parent", "changes[1]")]
    dcu8 = session.scalar(select(DCU.id).where(DCU.code == "DCU-8"))
    assert session.scalar(select(Meter.dcu_id).where(Meter.serial == "SM1")) == dcu8
    again = handle(session, _msg(kind="network", message_id="n-2", changes=[change]), received_at=AT)
    assert (again.result, again.stats) == ("OK", {"changes": 0, "duplicates": 1})
