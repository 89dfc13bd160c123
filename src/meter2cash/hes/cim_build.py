"""CIM XML the MDM sends to a head-end (IEC 61968-9 nouns in IEC 61968-100 envelopes).

- :func:`command_to_cim`: a command as an ``EndDeviceControls`` create request;
- :func:`reply_to_cim`: the MDM's reply to a message as a ``ResponseMessage``;
- :func:`meter_readings_xml`: profile messages as a ``MeterReadings`` document (a simulated
  head-end speaks CIM with it), valid against the IEC 61968-9 MeterReadings schema.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from meter2cash.core.errors import InvalidInput
from meter2cash.hes import protocol
from meter2cash.hes.cim_codes import (
    BY_OBIS,
    CONTROL_TYPES,
    EXTENSION_NS,
    MESSAGE_NS,
    NOUN_NS,
)

ET.register_namespace("msg", MESSAGE_NS)
ET.register_namespace("ext", EXTENSION_NS)
ET.register_namespace("m", NOUN_NS["MeterReadings"])
ET.register_namespace("edc", NOUN_NS["EndDeviceControls"])


def _sub(parent: ET.Element, ns: str, tag: str, text: str | None = None, /, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, f"{{{ns}}}{tag}", attrs)
    if text is not None:
        el.text = text
    return el


def _iso(t: datetime) -> str:
    return t.isoformat()


def _envelope(
    kind: str,
    *,
    verb: str,
    noun: str,
    timestamp: datetime,
    source: str,
    message_id: str,
    correlation_id: str = "",
    properties: Mapping[str, int] | None = None,
) -> ET.Element:
    """An IEC 61968-100 message with its header filled in (``Header`` child order as in the
    standard's Message.xsd: Verb, Noun, Timestamp, Source, MessageID, CorrelationID, Property)."""
    root = ET.Element(f"{{{MESSAGE_NS}}}{kind}")
    head = _sub(root, MESSAGE_NS, "Header")
    _sub(head, MESSAGE_NS, "Verb", verb)
    _sub(head, MESSAGE_NS, "Noun", noun)
    _sub(head, MESSAGE_NS, "Timestamp", _iso(timestamp))
    _sub(head, MESSAGE_NS, "Source", source or "mdm")
    _sub(head, MESSAGE_NS, "MessageID", message_id)
    if correlation_id:
        _sub(head, MESSAGE_NS, "CorrelationID", correlation_id)
    for name, value in (properties or {}).items():
        prop = _sub(head, MESSAGE_NS, "Property")
        _sub(prop, MESSAGE_NS, "Name", name)
        _sub(prop, MESSAGE_NS, "Value", str(value))
    return root


def _bytes(root: ET.Element) -> bytes:
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


# --- commands -----------------------------------------------------------------------------------


def command_to_cim(cmd: protocol.CommandMessage, *, control_types: Mapping[str, str] | None = None) -> bytes:
    """A command as an ``EndDeviceControls`` create request: one ``EndDeviceControl`` whose mRID is
    the command's message id (the head-end's reports name it), ``issuerTrackingID`` the command
    id, ``EndDeviceControlType`` the action's code (:data:`~meter2cash.hes.cim_codes.CONTROL_TYPES`
    unless ``control_types`` replaces it), ``EndDevices/Names/name`` the meter, the
    ``scheduledInterval`` from the time sent to the deadline, and each parameter as an extension
    item ``<ext:Parameter name="…">`` holding its JSON value."""
    types = control_types or CONTROL_TYPES
    if cmd.action not in types:
        raise InvalidInput(
            f"no EndDeviceControlType for action {cmd.action!r}", code="hes.cim.unknown_action"
        )
    ns = NOUN_NS["EndDeviceControls"]
    root = _envelope(
        "RequestMessage",
        verb="create",
        noun="EndDeviceControls",
        timestamp=cmd.sent_at,
        source=cmd.sender,
        message_id=cmd.message_id,
    )
    doc = _sub(_sub(root, MESSAGE_NS, "Payload"), ns, "EndDeviceControls")
    control = _sub(doc, ns, "EndDeviceControl")
    _sub(control, ns, "mRID", cmd.message_id)
    _sub(control, ns, "issuerTrackingID", str(cmd.command_id))
    _sub(control, ns, "reason", cmd.action)
    interval = _sub(control, ns, "scheduledInterval")
    if cmd.deadline is not None:
        _sub(interval, ns, "end", _iso(cmd.deadline))
    _sub(interval, ns, "start", _iso(cmd.sent_at))
    _sub(control, ns, "EndDeviceControlType", ref=types[cmd.action])
    _sub(_sub(_sub(control, ns, "EndDevices"), ns, "Names"), ns, "name", cmd.meter)
    if cmd.params:
        ext = _sub(control, EXTENSION_NS, "Extension")
        for name, value in cmd.params.items():
            _sub(ext, EXTENSION_NS, "Parameter", json.dumps(value, default=str), name=name)
    return _bytes(root)


# --- replies ------------------------------------------------------------------------------------


def reply_to_cim(reply: protocol.Reply, noun: str) -> bytes:
    """The MDM's reply as a ``ResponseMessage``: verb ``reply``, the noun of the message answered,
    ``CorrelationID`` its message id, ``Reply/Result`` OK, PARTIAL or FAILED and one ``Error`` per
    item refused (``code``, ``reason`` the message, ``details`` where in the message); the counts of
    what was kept travel as header properties ``stats.<name>``."""
    root = _envelope(
        "ResponseMessage",
        verb="reply",
        noun=noun,
        timestamp=reply.sent_at,
        source=reply.sender,
        message_id=reply.message_id,
        correlation_id=reply.correlation_id,
        properties={f"stats.{k}": v for k, v in reply.stats.items()},
    )
    body = _sub(root, MESSAGE_NS, "Reply")
    _sub(body, MESSAGE_NS, "Result", reply.result)
    for err in reply.errors:
        el = _sub(body, MESSAGE_NS, "Error")
        _sub(el, MESSAGE_NS, "code", err.code)
        _sub(el, MESSAGE_NS, "level", "FATAL")
        _sub(el, MESSAGE_NS, "reason", err.message)
        if err.field:
            _sub(el, MESSAGE_NS, "details", err.field)
    return _bytes(root)


# --- meter readings -----------------------------------------------------------------------------


def _reading_type_ref(profile: str, period: int | None, obis: str) -> str:
    """The ReadingType a profile column travels under: its CIM mRID when the reading type has one,
    else our reading-type code, else the OBIS code itself."""
    interval = period if profile == protocol.BLOCK_LOAD else None
    for t in BY_OBIS.get(obis, []):
        if t.interval_s == interval:
            return t.cim or t.code
    return obis


def _value(v: Any, where: str) -> str:
    if isinstance(v, bool) or not isinstance(v, int | float | Decimal | str):
        raise InvalidInput(f"{where}: {v!r} is not a number", code="hes.cim.bad_value")
    text = repr(v) if isinstance(v, float) else str(v)
    try:
        finite = math.isfinite(float(text))
    except ValueError:
        finite = False
    if not finite:
        raise InvalidInput(f"{where}: {v!r} is not a finite number", code="hes.cim.bad_value")
    return text


def _clock(v: Any, where: str) -> str:
    try:
        t = datetime.fromisoformat(v) if isinstance(v, str) else None
    except ValueError:
        t = None
    if t is None or t.utcoffset() is None:
        raise InvalidInput(
            f"{where}: {v!r} is not a date and time with a UTC offset", code="hes.cim.bad_time"
        )
    return v


def _meter_readings_doc(messages: Sequence[protocol.ProfileMessage]) -> ET.Element:
    ns = NOUN_NS["MeterReadings"]
    doc = ET.Element(f"{{{ns}}}MeterReadings")
    for mi, msg in enumerate(messages):
        block_load = msg.profile == protocol.BLOCK_LOAD
        refs = [_reading_type_ref(msg.profile, msg.capture_period_s, c) for c in msg.columns[1:]]
        for pi, pm in enumerate(msg.meters):
            reading = _sub(doc, ns, "MeterReading")
            blocks = [_sub(reading, ns, "IntervalBlocks") for _ in refs] if block_load else []
            cells: list[tuple[int, str, str | None]] = []  # (column, time, value text)
            for ri, row in enumerate(pm.rows):
                if len(row) != len(msg.columns):
                    raise InvalidInput(
                        f"messages[{mi}].meters[{pi}].rows[{ri}] has {len(row)} values for "
                        f"{len(msg.columns)} columns",
                        code="hes.cim.bad_row",
                    )
                at = _clock(row[0], f"messages[{mi}].meters[{pi}].rows[{ri}][0]")
                for c, v in enumerate(row[1:]):
                    where = f"messages[{mi}].meters[{pi}].rows[{ri}][{c + 1}]"
                    cells.append((c, at, None if v is None else _value(v, where)))
            meter = _sub(reading, ns, "Meter")
            _sub(_sub(meter, ns, "Names"), ns, "name", pm.meter)
            for c, at, text in cells:
                if block_load:
                    ir = ET.Element(f"{{{ns}}}IntervalReadings")
                    _sub(ir, ns, "timeStamp", at)
                    if text is not None:
                        _sub(ir, ns, "value", text)
                    blocks[c].append(ir)
                elif text is not None:
                    rd = _sub(reading, ns, "Readings")
                    _sub(rd, ns, "timeStamp", at)
                    _sub(rd, ns, "value", text)
                    _sub(rd, ns, "ReadingType", ref=refs[c])
            for block, ref in zip(blocks, refs, strict=False):  # no blocks outside the block-load profile
                _sub(block, ns, "ReadingType", ref=ref)
    return doc


def meter_readings_xml(
    messages: list[protocol.ProfileMessage],
    *,
    message_id: str,
    source: str,
    at: datetime | None = None,
    envelope: bool = True,
) -> bytes:
    """Profile messages as one CIM ``MeterReadings`` document: a ``MeterReading`` per meter and
    message; a block-load column becomes an ``IntervalBlock`` whose readings are stamped with the
    end of their interval (the profile's clock), a ``null`` value a reading without a value;
    columns of the other profiles become ``Readings`` at the row's clock. Each column travels under
    its CIM ReadingType (``cim_codes.READING_TYPES``), else its reading-type code or OBIS code.

    Wrapped in an ``EventMessage`` (verb ``created``; ``ResponseMessage`` with verb ``reply`` when
    every message answers the same command) unless ``envelope`` is false; the header timestamp is
    ``at``, else the first message's ``sent_at``."""
    doc = _meter_readings_doc(messages)
    if not envelope:
        return _bytes(doc)
    correlations = {m.correlation_id for m in messages}
    correlation = correlations.pop() if len(correlations) == 1 else ""
    stamp = at or (messages[0].sent_at if messages else None)
    if stamp is None:
        raise InvalidInput("an empty MeterReadings message needs its time", code="hes.cim.no_time")
    root = _envelope(
        "ResponseMessage" if correlation else "EventMessage",
        verb="reply" if correlation else "created",
        noun="MeterReadings",
        timestamp=stamp,
        source=source,
        message_id=message_id,
        correlation_id=correlation,
    )
    if correlation:
        _sub(_sub(root, MESSAGE_NS, "Reply"), MESSAGE_NS, "Result", "OK")
    _sub(root, MESSAGE_NS, "Payload").append(doc)
    return _bytes(root)
