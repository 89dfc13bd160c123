"""The IEC 61968-9 (CIM) XML adapter of the head-end interface: CIM to protocol messages and back."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import xmlschema
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import shared_data
from meter2cash.core.errors import InvalidInput
from meter2cash.hes import cim, cim_codes, protocol
from meter2cash.mdm import reading_types

DATA = Path(__file__).resolve().parents[1] / "data" / "cim"
MSG = "{http://iec.ch/TC57/2011/schema/message}"
EDC = "{http://iec.ch/TC57/2011/EndDeviceControls#}"
EXT = "{urn:meter2cash:cim:extension:1}"
MR = "{http://iec.ch/TC57/2011/MeterReadings#}"
IST = timezone(timedelta(hours=5, minutes=30))
T0 = datetime(2026, 10, 1, tzinfo=UTC)


@cache
def _schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(shared_data("cim/MeterReadings.xsd")))


def _fixture(name: str) -> bytes:
    return (DATA / name).read_bytes()


def _profile(columns: list[str], rows: dict[str, list[list[Any]]], **kw: Any) -> protocol.ProfileMessage:
    return protocol.ProfileMessage(
        message_id=str(kw.pop("message_id", "p-1")),
        sent_at=T0,
        sender="hes-north",
        columns=[protocol.CLOCK, *columns],
        meters=[protocol.ProfileMeter(meter=m, rows=r) for m, r in rows.items()],
        **kw,
    )


def _payload(xml: bytes) -> ET.Element:
    root = ET.fromstring(xml)
    return next(iter(root.find(f"{MSG}Payload")))  # type: ignore[arg-type]


# --- MeterReadings ------------------------------------------------------------------------------


def test_round_trip_keeps_every_interval_and_validates_against_the_schema() -> None:
    block = _profile(
        ["1.0.1.29.0.255", "1.0.2.29.0.255"],
        {
            "SM0001": [
                ["2026-10-01T00:15:00+05:30", 0.125, 0.0],
                ["2026-10-01T00:30:00+05:30", 0.131, 0.002],
                ["2026-10-01T00:45:00+05:30", None, 0.004],
            ],
            "SM0002": [["2026-10-01T00:15:00+05:30", 1.5, None]],
        },
        profile=protocol.BLOCK_LOAD,
        capture_period_s=900,
    )
    xml = cim.meter_readings_xml([block], message_id="mr-1", source="hes-north")
    _schema().validate(ET.tostring(_payload(xml)).decode())
    _schema().validate(
        cim.meter_readings_xml([block], message_id="mr-1", source="hes", envelope=False).decode()
    )
    # the export names the 15-min import and export channels by their CIM ReadingType codes
    refs = [rt.get("ref") for rt in _payload(xml).iter(f"{MR}ReadingType")]
    assert (
        refs
        == [
            "0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.3.72.0",
            "0.0.2.4.19.1.12.0.0.0.0.0.0.0.0.3.72.0",
        ]
        * 2
    )

    messages, errors, header = cim.parse_cim(xml)

    assert errors == []
    assert (header.verb, header.noun, header.message_id, header.source) == (
        "created",
        "MeterReadings",
        "mr-1",
        "hes-north",
    )
    [msg] = messages
    assert isinstance(msg, protocol.ProfileMessage)
    assert (msg.message_id, msg.profile, msg.capture_period_s) == ("mr-1", "1.0.99.1.0.255", 900)
    assert msg.columns == ["0.0.1.0.0.255", "1.0.1.29.0.255", "1.0.2.29.0.255"]
    rows = {m.meter: m.rows for m in msg.meters}
    assert rows == {
        "SM0001": [
            ["2026-10-01T00:15:00+05:30", 0.125, 0.0],
            ["2026-10-01T00:30:00+05:30", 0.131, 0.002],
            ["2026-10-01T00:45:00+05:30", None, 0.004],
        ],
        # a value missing from the message travels as a reading without a value and comes back null
        "SM0002": [["2026-10-01T00:15:00+05:30", 1.5, None]],
    }


def test_register_and_instantaneous_reads_become_billing_and_instantaneous_rows() -> None:
    xml = b"""<MeterReadings xmlns="http://iec.ch/TC57/2011/MeterReadings#">
      <MeterReading>
        <IntervalBlocks>
          <IntervalReadings><timeStamp>2026-10-01T00:30:00Z</timeStamp><value>0.5</value></IntervalReadings>
          <IntervalReadings><timeStamp>2026-10-01T01:00:00Z</timeStamp><value>0.25</value></IntervalReadings>
          <ReadingType ref="0.0.5.4.1.1.12.0.0.0.0.0.0.0.0.3.72.0"/>
        </IntervalBlocks>
        <IntervalBlocks>
          <IntervalReadings><timeStamp>2026-10-01T00:30:00Z</timeStamp><value>0.75</value></IntervalReadings>
          <ReadingType ref="kvah_import_30m"/>
        </IntervalBlocks>
        <Meter><Names><name>SM0009</name></Names></Meter>
        <Readings><timeStamp>2026-10-01T01:00:00Z</timeStamp><value>812.5</value>
          <ReadingType ref="0.0.0.1.1.1.12.0.0.0.0.0.0.0.0.3.72.0"/></Readings>
        <Readings><timeStamp>2026-10-01T01:00:00Z</timeStamp><value>4.2</value>
          <ReadingType ref="8.8.0.6.1.1.8.0.0.0.0.0.0.0.0.3.38.0"/></Readings>
        <Readings><timeStamp>2026-10-01T01:00:00Z</timeStamp><value>231.4</value>
          <ReadingType ref="0.0.0.12.0.1.54.0.0.0.0.0.0.0.128.0.29.0"/></Readings>
        <Readings><timeStamp>2026-10-01T01:00:00Z</timeStamp><value>0.97</value>
          <ReadingType ref="1.0.13.7.0.255"/></Readings>
      </MeterReading>
    </MeterReadings>"""

    messages, errors, header = cim.parse_cim(xml)

    assert errors == []
    assert header.message_id.startswith("cim-")  # a bare document: the id comes from its bytes
    assert cim.parse_cim(xml)[2].message_id == header.message_id
    by_profile = {m.profile: m for m in messages if isinstance(m, protocol.ProfileMessage)}
    assert [m.message_id for m in messages] == [f"{header.message_id}.{n}" for n in (1, 2, 3)]
    block = by_profile["1.0.99.1.0.255"]
    assert block.capture_period_s == 1800
    assert block.columns == ["0.0.1.0.0.255", "1.0.1.29.0.255", "1.0.9.29.0.255"]
    assert block.meters[0].rows == [
        ["2026-10-01T00:30:00+00:00", 0.5, 0.75],
        ["2026-10-01T01:00:00+00:00", 0.25, None],
    ]
    billing = by_profile["1.0.98.1.0.255"]
    assert billing.columns == ["0.0.1.0.0.255", "1.0.1.8.0.255", "1.0.1.6.0.255"]
    assert billing.meters[0].rows == [["2026-10-01T01:00:00+00:00", 812.5, 4.2]]
    instant = by_profile["1.0.94.91.0.255"]
    # R-phase voltage sent as "instantaneous" (accumulation 12), power factor under its OBIS code
    assert instant.columns == ["0.0.1.0.0.255", "1.0.32.7.0.255", "1.0.13.7.0.255"]
    assert instant.meters[0].rows == [["2026-10-01T01:00:00+00:00", 231.4, 0.97]]


def test_a_bad_value_is_refused_with_its_location_and_the_rest_kept() -> None:
    messages, errors, header = cim.parse_cim(_fixture("meter_readings_bad_value.xml"))

    assert [(e.code, e.field) for e in errors] == [
        ("hes.cim.bad_value", "MeterReading[0]/IntervalBlock[0]/IntervalReading[2]")
    ]
    assert "'n/a'" in errors[0].message
    block, billing = messages
    assert isinstance(block, protocol.ProfileMessage) and isinstance(billing, protocol.ProfileMessage)
    assert block.message_id == "mr-20261001-0007.1"
    assert block.meters[0].meter == "SM0001"
    assert block.meters[0].rows == [
        ["2026-10-01T00:15:00+00:00", 0.125],
        ["2026-10-01T00:30:00+00:00", 0.131],
        ["2026-10-01T01:00:00+00:00", 0.118],
    ]
    assert billing.meters[0].meter == "SM0002"
    assert billing.meters[0].rows == [["2026-10-01T00:00:00+00:00", 10234.5]]
    reply = protocol.reply_to(header.message_id, errors, kept=4, at=T0)
    assert reply.result == "PARTIAL"


@pytest.mark.parametrize(
    ("ref", "code"),
    [
        ("0.0.2.4.1.1.99.0.0.0.0.0.0.0.0.3.72.0", "hes.cim.unknown_reading_type"),
        ("kwh_import_register", "hes.cim.unknown_reading_type"),  # a register is not an interval channel
    ],
)
def test_an_interval_block_of_an_unknown_reading_type_is_refused(ref: str, code: str) -> None:
    xml = f"""<MeterReadings xmlns="http://iec.ch/TC57/2011/MeterReadings#">
      <MeterReading><IntervalBlocks>
        <IntervalReadings><timeStamp>2026-10-01T00:15:00Z</timeStamp><value>1</value></IntervalReadings>
        <ReadingType ref="{ref}"/></IntervalBlocks>
        <Meter><mRID>SM1</mRID></Meter></MeterReading>
      <MeterReading><Readings><timeStamp>2026-10-01T00:15:00+02:00</timeStamp><value>5</value>
        <ReadingType ref="kwh_import_register"/></Readings></MeterReading>
    </MeterReadings>""".encode()

    messages, errors, _ = cim.parse_cim(xml)

    assert [(e.code, e.field) for e in errors] == [
        (code, "MeterReading[0]/IntervalBlock[0]/ReadingType"),
        ("hes.cim.no_meter", "MeterReading[1]/Meter"),
    ]
    assert messages == []


def test_the_block_length_of_an_obis_code_comes_from_the_spacing_of_its_readings() -> None:
    def doc(times: list[str]) -> bytes:
        readings = "".join(
            f"<IntervalReadings><timeStamp>{t}</timeStamp><value>1</value></IntervalReadings>" for t in times
        )
        return f"""<MeterReadings xmlns="http://iec.ch/TC57/2011/MeterReadings#"><MeterReading>
          <IntervalBlocks>{readings}<ReadingType ref="1.0.1.29.0.255"/></IntervalBlocks>
          <Meter><mRID>SM1</mRID></Meter></MeterReading></MeterReadings>""".encode()

    messages, errors, _ = cim.parse_cim(doc(["2026-10-01T00:30:00Z", "2026-10-01T01:00:00Z"]))
    assert errors == []
    assert messages[0].capture_period_s == 1800  # type: ignore[union-attr]
    # one reading of an OBIS code captured in 15-, 30- and 60-min blocks cannot be placed
    messages, errors, _ = cim.parse_cim(doc(["2026-10-01T00:30:00Z"]))
    assert messages == []
    assert [e.code for e in errors] == ["hes.cim.unknown_reading_type"]


def test_two_different_values_for_the_same_interval_keep_the_first() -> None:
    xml = b"""<MeterReadings xmlns="http://iec.ch/TC57/2011/MeterReadings#"><MeterReading>
      <IntervalBlocks>
        <IntervalReadings><timeStamp>2026-10-01T00:15:00Z</timeStamp><value>1.0</value></IntervalReadings>
        <IntervalReadings><timeStamp>2026-10-01T05:45:00+05:30</timeStamp><value>1</value></IntervalReadings>
        <IntervalReadings><timeStamp>2026-10-01T00:15:00Z</timeStamp><value>2.0</value></IntervalReadings>
        <ReadingType ref="kwh_import_15m"/></IntervalBlocks>
      <Meter><mRID>SM1</mRID></Meter></MeterReading></MeterReadings>"""

    messages, errors, _ = cim.parse_cim(xml)

    assert [(e.code, e.field) for e in errors] == [
        ("hes.cim.conflicting_value", "MeterReading[0]/IntervalBlock[0]/IntervalReading[2]")
    ]
    assert messages[0].meters[0].rows == [["2026-10-01T00:15:00+00:00", 1.0]]  # type: ignore[union-attr]


def test_a_meter_name_too_long_for_the_protocol_is_refused() -> None:
    xml = f"""<MeterReadings xmlns="http://iec.ch/TC57/2011/MeterReadings#"><MeterReading>
      <Meter><mRID>{"M" * 65}</mRID></Meter>
      <Readings><timeStamp>2026-10-01T00:00:00Z</timeStamp><value>5</value>
        <ReadingType ref="kwh_import_register"/></Readings></MeterReading></MeterReadings>""".encode()
    messages, errors, _ = cim.parse_cim(xml)
    assert messages == []
    assert [(e.code, e.field) for e in errors] == [("hes.cim.bad_meter", "MeterReading[0]/Meter")]


def test_times_without_an_offset_are_refused() -> None:
    xml = b"""<MeterReadings xmlns="http://iec.ch/TC57/2011/MeterReadings#"><MeterReading>
      <Meter><mRID>SM1</mRID></Meter>
      <Readings><timeStamp>2026-10-01T00:00:00</timeStamp><value>5</value>
        <ReadingType ref="kwh_import_register"/></Readings></MeterReading></MeterReadings>"""
    messages, errors, _ = cim.parse_cim(xml)
    assert messages == []
    assert [(e.code, e.field) for e in errors] == [("hes.cim.bad_time", "MeterReading[0]/Reading[0]")]


# --- the CIM ReadingType table ------------------------------------------------------------------


def test_the_reading_type_table_agrees_with_the_catalogue() -> None:
    for code, rt in cim_codes.READING_TYPES.items():
        spec = reading_types.BY_CODE[code]
        assert (rt.obis, rt.interval_s) == (spec.obis, spec.interval_s), code
    cim_ids = [rt.cim for rt in cim_codes.READING_TYPES.values() if rt.cim]
    assert len(cim_ids) == len(set(cim_ids))
    assert all(len(c.split(".")) == 18 for c in cim_ids)
    # the mRIDs of a few reading types, written out by hand from IEC 61968-9 Annex C
    expected = {
        "kwh_import_15m": "0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.3.72.0",
        "kwh_import_30m": "0.0.5.4.1.1.12.0.0.0.0.0.0.0.0.3.72.0",
        "kwh_export_15m": "0.0.2.4.19.1.12.0.0.0.0.0.0.0.0.3.72.0",
        "kvah_import_15m": "0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.3.71.0",
        "kwh_import_register": "0.0.0.1.1.1.12.0.0.0.0.0.0.0.0.3.72.0",
        "kwh_import_register_t2": "0.0.0.1.1.1.12.0.0.0.0.2.0.0.0.3.72.0",
        "kw_md_register": "8.8.0.6.1.1.8.0.0.0.0.0.0.0.0.3.38.0",
        "voltage_instant": "0.0.0.6.0.1.54.0.0.0.0.0.0.0.0.0.29.0",
        "current_y_instant": "0.0.0.6.0.1.4.0.0.0.0.0.0.0.64.0.5.0",
        "pf_instant": "0.0.0.6.0.1.38.0.0.0.0.0.0.0.0.0.65.0",
        "kw_instant": "0.0.0.6.1.1.37.0.0.0.0.0.0.0.0.3.38.0",
    }
    assert {code: cim_codes.READING_TYPES[code].cim for code in expected} == expected


# --- EndDeviceEvents ----------------------------------------------------------------------------


def test_events_get_their_is15959_ids_and_an_unknown_type_is_refused() -> None:
    messages, errors, header = cim.parse_cim(_fixture("end_device_events.xml"))

    assert header.message_id == "evt-20261001-0001"
    assert [(e.code, e.field) for e in errors] == [
        ("hes.cim.unknown_event_type", "EndDeviceEvent[2]/EndDeviceEventType")
    ]
    assert "3.99.1.1" in errors[0].message
    [msg] = messages
    assert isinstance(msg, protocol.EventsMessage)
    assert (msg.message_id, msg.sender) == ("evt-20261001-0001", "hes-north")
    # power failure 101 and its restoration 102 (power log), meter cover open 251 (non-rollover log)
    assert [(e.meter, e.event_id, e.log, e.occurred_at) for e in msg.events] == [
        ("SM0001", 101, "0.0.99.98.2.255", datetime(2026, 10, 1, 3, 12, tzinfo=IST)),
        ("SM0001", 102, "0.0.99.98.2.255", datetime(2026, 10, 1, 3, 17, 30, tzinfo=IST)),
        ("SM0002", 251, "0.0.99.98.5.255", datetime(2026, 10, 1, 3, 19, tzinfo=IST)),
    ]
    assert msg.events[0].data == {"voltage": "0"}
    assert msg.events[2].data == {"source": "tamper switch"}


def _phase_event(detail: str) -> bytes:
    return f"""<EndDeviceEvents xmlns="http://iec.ch/TC57/2011/EndDeviceEvents#"><EndDeviceEvent>
      <createdDateTime>2026-10-01T03:12:00Z</createdDateTime>
      <Assets><mRID>SM1</mRID></Assets>{detail}
      <EndDeviceEventType ref="3.26.25.85"/></EndDeviceEvent></EndDeviceEvents>""".encode()


def test_a_detail_picks_one_of_the_ids_a_cim_type_stands_for() -> None:
    # 3.26.25.85 is voltage missing in phase R (1), Y (3) or B (5)
    [msg], errors, _ = cim.parse_cim(_phase_event(""))
    assert errors == [] and [e.event_id for e in msg.events] == [1]  # type: ignore[union-attr]
    detail = "<EndDeviceEventDetails><name>is15959_id</name><value>3</value></EndDeviceEventDetails>"
    [msg], errors, _ = cim.parse_cim(_phase_event(detail))
    assert errors == [] and [(e.event_id, e.data) for e in msg.events] == [(3, {})]  # type: ignore[union-attr]
    messages, errors, _ = cim.parse_cim(_phase_event(detail.replace(">3<", ">7<")))
    assert messages == []
    assert [(e.code, e.field) for e in errors] == [
        ("hes.cim.event_id_mismatch", "EndDeviceEvent[0]/EndDeviceEventDetails[is15959_id]")
    ]


# --- unsafe and broken XML ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["billion_laughs.xml", "external_entity.xml"])
def test_entities_and_dtds_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        cim.parse_cim(_fixture(name))
    assert exc.value.code == "hes.cim.unsafe_xml"


def test_truncated_xml_is_refused_with_where_it_broke() -> None:
    data = _fixture("meter_readings_bad_value.xml")
    cut = data[: data.index(b"<m:Readings>")]
    with pytest.raises(InvalidInput) as exc:
        cim.parse_cim(cut)
    assert exc.value.code == "hes.cim.bad_xml"
    assert exc.value.data["line"] == cut.count(b"\n") + 1
    assert "line" in exc.value.message and "column" in exc.value.message


@pytest.mark.parametrize(
    ("xml", "code"),
    [
        (b"<Invoice/>", "hes.cim.not_cim"),
        (
            b"<m:EventMessage xmlns:m='http://iec.ch/TC57/2011/schema/message'><m:Header><m:Verb>created</m:Verb>"
            b"<m:Noun>MeterConfig</m:Noun></m:Header></m:EventMessage>",
            "hes.cim.unsupported_noun",
        ),
        (
            b"<m:RequestMessage xmlns:m='http://iec.ch/TC57/2011/schema/message'><m:Header><m:Verb>delete</m:Verb>"
            b"<m:Noun>MeterReadings</m:Noun></m:Header></m:RequestMessage>",
            "hes.cim.unsupported_verb",
        ),
        (
            b"<m:EventMessage xmlns:m='http://iec.ch/TC57/2011/schema/message'><m:Header><m:Verb>created</m:Verb>"
            b"<m:Noun>MeterReadings</m:Noun></m:Header><m:Payload><EndDeviceEvents/></m:Payload></m:EventMessage>",
            "hes.cim.noun_mismatch",
        ),
        (
            b"<m:EventMessage xmlns:m='http://iec.ch/TC57/2011/schema/message'><m:Header><m:Verb>created</m:Verb>"
            b"<m:Noun>MeterReadings</m:Noun><m:Timestamp>2026-10-01T10:00:00</m:Timestamp></m:Header>"
            b"</m:EventMessage>",
            "hes.cim.bad_time",
        ),
    ],
)
def test_messages_that_cannot_be_read_at_all_are_refused(xml: bytes, code: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        cim.parse_cim(xml)
    assert exc.value.code == code


def test_is_cim_tells_xml_from_json() -> None:
    assert cim.is_cim(b"\xef\xbb\xbf  \n<?xml version='1.0'?><x/>")
    assert cim.is_cim(b"<MeterReadings/>")
    assert not cim.is_cim(b'{"kind": "profile"}')
    assert not cim.is_cim(b"")


# --- EndDeviceControls --------------------------------------------------------------------------


def test_a_partial_reply_acknowledges_one_control_and_fails_the_one_named_in_an_error() -> None:
    messages, errors, header = cim.parse_cim(_fixture("end_device_controls_reply.xml"))

    assert header.result == "PARTIAL"
    assert [(e.code, e.field) for e in errors] == [("hes.cim.unknown_control", "EndDeviceControl[2]/mRID")]
    reports = [m for m in messages if isinstance(m, protocol.CommandReport)]
    assert [(r.command_id, r.correlation_id, r.status, r.detail) for r in reports] == [
        (41, "cmd-41-1", "acknowledged", ""),
        (42, "cmd-42-1", "failed", "2.12 meter not reachable"),
    ]
    assert reports[0].at == datetime(2026, 10, 1, 10, 0, 5, tzinfo=IST)
    assert len({r.message_id for r in reports}) == 2


def test_a_created_notification_reports_execution_with_what_the_meter_answered() -> None:
    xml = b"""<msg:EventMessage xmlns:msg="http://iec.ch/TC57/2011/schema/message"
        xmlns:edc="http://iec.ch/TC57/2011/EndDeviceControls#" xmlns:ext="urn:meter2cash:cim:extension:1">
      <msg:Header><msg:Verb>created</msg:Verb><msg:Noun>EndDeviceControls</msg:Noun>
        <msg:Timestamp>2026-10-01T10:02:00Z</msg:Timestamp><msg:MessageID>hes-ev-9</msg:MessageID></msg:Header>
      <msg:Payload><edc:EndDeviceControls><edc:EndDeviceControl><edc:mRID>cmd-43-2</edc:mRID>
        <ext:Extension><ext:Result name="relay">disconnected</ext:Result>
          <ext:Result name="tries">2</ext:Result></ext:Extension></edc:EndDeviceControl>
      </edc:EndDeviceControls></msg:Payload>
    </msg:EventMessage>"""

    [report], errors, _ = cim.parse_cim(xml)

    assert errors == []
    assert isinstance(report, protocol.CommandReport)
    assert (report.command_id, report.status, report.result) == (
        43,
        "executed",
        {"relay": "disconnected", "tries": 2},
    )
    assert report.message_id == "hes-ev-9"


@pytest.mark.parametrize(
    ("verb", "extension", "status"),
    [
        ("reply", "", "acknowledged"),
        ("executed", "", "executed"),
        ("canceled", "", "cancelled"),
        ("changed", "<ext:Extension><ext:Status>timed_out</ext:Status></ext:Extension>", "timed_out"),
        ("reply", "<ext:Extension><ext:Status>sent</ext:Status></ext:Extension>", "sent"),
        ("reply", "<ext:Extension><ext:Status>lost</ext:Status></ext:Extension>", None),
    ],
)
def test_the_verb_or_a_stated_status_gives_the_reported_status(
    verb: str, extension: str, status: str | None
) -> None:
    xml = f"""<msg:EventMessage xmlns:msg="http://iec.ch/TC57/2011/schema/message"
        xmlns:edc="http://iec.ch/TC57/2011/EndDeviceControls#" xmlns:ext="urn:meter2cash:cim:extension:1">
      <msg:Header><msg:Verb>{verb}</msg:Verb><msg:Noun>EndDeviceControls</msg:Noun>
        <msg:MessageID>hes-ev-10</msg:MessageID></msg:Header>
      <msg:Payload><edc:EndDeviceControls><edc:EndDeviceControl><edc:mRID>cmd-45-3</edc:mRID>{extension}
      </edc:EndDeviceControl></edc:EndDeviceControls></msg:Payload>
    </msg:EventMessage>""".encode()

    messages, errors, _ = cim.parse_cim(xml)

    if status is None:
        assert messages == []
        assert [(e.code, e.field) for e in errors] == [
            ("hes.cim.bad_status", "EndDeviceControl[0]/Extension/Status")
        ]
    else:
        assert errors == []
        assert [(m.command_id, m.status) for m in messages] == [(45, status)]  # type: ignore[union-attr]


def test_a_failed_reply_without_payload_fails_the_correlated_command() -> None:
    xml = b"""<ResponseMessage xmlns="http://iec.ch/TC57/2011/schema/message">
      <Header><Verb>reply</Verb><Noun>EndDeviceControls</Noun><Timestamp>2026-10-01T10:00:00Z</Timestamp>
        <MessageID>r-1</MessageID><CorrelationID>cmd-44-1</CorrelationID></Header>
      <Reply><Result>FAILED</Result><Error><code>5.1</code><reason>unknown meter</reason></Error></Reply>
    </ResponseMessage>"""
    [report], errors, _ = cim.parse_cim(xml)
    assert errors == []
    assert (report.command_id, report.status, report.detail) == (44, "failed", "5.1 unknown meter")  # type: ignore[union-attr]


# --- the way out --------------------------------------------------------------------------------


def test_a_disconnect_becomes_an_end_device_control_of_type_3_31_0_68() -> None:
    deadline = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
    cmd = protocol.CommandMessage(
        message_id="cmd-41-1",
        sent_at=T0,
        sender="mdm",
        command_id=41,
        meter="SM0001",
        action="disconnect",
        deadline=deadline,
    )
    root = ET.fromstring(cim.command_to_cim(cmd))

    assert root.tag == f"{MSG}RequestMessage"
    assert root.findtext(f"{MSG}Header/{MSG}Verb") == "create"
    assert root.findtext(f"{MSG}Header/{MSG}Noun") == "EndDeviceControls"
    assert root.findtext(f"{MSG}Header/{MSG}MessageID") == "cmd-41-1"
    control = root.find(f"{MSG}Payload/{EDC}EndDeviceControls/{EDC}EndDeviceControl")
    assert control is not None
    assert control.findtext(f"{EDC}mRID") == "cmd-41-1"
    assert control.find(f"{EDC}EndDeviceControlType").get("ref") == "3.31.0.68"  # type: ignore[union-attr]
    assert control.findtext(f"{EDC}EndDevices/{EDC}Names/{EDC}name") == "SM0001"
    assert control.findtext(f"{EDC}scheduledInterval/{EDC}end") == "2026-10-01T12:00:00+00:00"
    assert control.find(f"{EXT}Extension") is None  # a disconnect has no parameters


def test_command_parameters_travel_as_extension_items() -> None:
    cmd = protocol.CommandMessage(
        message_id="cmd-50-1",
        sent_at=T0,
        command_id=50,
        meter="SM0003",
        action="configure",
        params={"load_limit_kw": 5, "tou": {"peak": ["18:00", "22:00"]}},
    )
    control = ET.fromstring(cim.command_to_cim(cmd)).find(
        f"{MSG}Payload/{EDC}EndDeviceControls/{EDC}EndDeviceControl"
    )
    assert control is not None
    items = {p.get("name"): p.text for p in control.iter(f"{EXT}Parameter")}
    assert items == {"load_limit_kw": "5", "tou": '{"peak": ["18:00", "22:00"]}'}
    assert control.find(f"{EDC}EndDeviceControlType").get("ref") == "3.7.0.24"  # type: ignore[union-attr]
    connect = cmd.model_copy(update={"action": "connect", "params": {}})
    other = ET.fromstring(cim.command_to_cim(connect, control_types={"connect": "3.31.0.99"}))
    assert next(other.iter(f"{EDC}EndDeviceControlType")).get("ref") == "3.31.0.99"


def test_a_partial_reply_becomes_a_response_message_with_its_errors() -> None:
    errors = [
        protocol.ReplyError(
            code="hes.cim.bad_value",
            message="value 'n/a' is not a number",
            field="MeterReading[0]/IntervalBlock[0]/IntervalReading[2]",
        ),
        protocol.ReplyError(
            code="ingest.unknown_meter", message="meter SM0404 is unknown", field="MeterReading[1]"
        ),
    ]
    reply = protocol.reply_to("mr-20261001-0007", errors, kept=4, at=T0, stats={"rows": 4})

    root = ET.fromstring(cim.reply_to_cim(reply, "MeterReadings"))

    assert root.tag == f"{MSG}ResponseMessage"
    head = root.find(f"{MSG}Header")
    assert head is not None
    assert [head.findtext(f"{MSG}{n}") for n in ("Verb", "Noun", "CorrelationID")] == [
        "reply",
        "MeterReadings",
        "mr-20261001-0007",
    ]
    assert root.findtext(f"{MSG}Reply/{MSG}Result") == "PARTIAL"
    assert [
        (e.findtext(f"{MSG}code"), e.findtext(f"{MSG}details"))
        for e in root.iterfind(f"{MSG}Reply/{MSG}Error")
    ] == [
        ("hes.cim.bad_value", "MeterReading[0]/IntervalBlock[0]/IntervalReading[2]"),
        ("ingest.unknown_meter", "MeterReading[1]"),
    ]
    assert head.findtext(f"{MSG}Property/{MSG}Name") == "stats.rows"


def test_readings_answering_a_command_travel_as_a_reply_to_it() -> None:
    msg = _profile(
        ["1.0.1.8.0.255"],
        {"SM0001": [["2026-10-01T10:00:00+05:30", 1234.5]]},
        profile=protocol.BILLING,
        correlation_id="cmd-60-1",
    )
    xml = cim.meter_readings_xml([msg], message_id="hes-r-60", source="hes-north")
    root = ET.fromstring(xml)
    assert root.tag == f"{MSG}ResponseMessage"
    [back], errors, header = cim.parse_cim(xml)
    assert (header.verb, header.correlation_id, errors) == ("reply", "cmd-60-1", [])
    assert back.correlation_id == "cmd-60-1"  # type: ignore[union-attr]
    assert back.meters[0].rows == [["2026-10-01T10:00:00+05:30", 1234.5]]  # type: ignore[union-attr]


# --- property: export then parse gives back the same numbers ------------------------------------

_values = st.one_of(
    st.none(),
    st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(10**6), max_value=10**6),
)


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(st.integers(min_value=0, max_value=96 * 40), min_size=1, max_size=30, unique=True),
    period=st.sampled_from([900, 1800]),
    offset_min=st.sampled_from([0, 330, -300, 345]),
    data=st.data(),
)
def test_export_then_parse_gives_back_the_same_numbers(
    steps: list[int], period: int, offset_min: int, data: st.DataObject
) -> None:
    tz = timezone(timedelta(minutes=offset_min))
    ends = sorted(T0 + timedelta(seconds=period * (s + 1)) for s in steps)
    rows = [[t.astimezone(tz).isoformat(), data.draw(_values), data.draw(_values)] for t in ends]
    msg = _profile(
        ["1.0.1.29.0.255", "1.0.9.29.0.255"],
        {"SM0001": rows},
        profile=protocol.BLOCK_LOAD,
        capture_period_s=period,
    )
    xml = cim.meter_readings_xml([msg], message_id="prop-1", source="sim")
    _schema().validate(ET.tostring(_payload(xml)).decode())

    [back], errors, _ = cim.parse_cim(xml)

    assert errors == []
    assert isinstance(back, protocol.ProfileMessage)
    assert back.capture_period_s == period
    got = [[datetime.fromisoformat(r[0]), *r[1:]] for r in back.meters[0].rows]
    want = [
        [datetime.fromisoformat(str(r[0])), *(None if v is None else float(v) for v in r[1:])] for r in rows
    ]
    assert got == want
