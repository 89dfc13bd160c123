"""IEC 61968-9 (CIM) XML for the head-end interface: CIM messages to and from protocol messages.

A head-end that speaks CIM sends IEC 61968-100 envelopes (``RequestMessage``, ``ResponseMessage``,
``EventMessage``: ``Header`` with ``Verb``, ``Noun``, ``Timestamp``, ``Source``, ``MessageID``,
``CorrelationID``; ``Reply`` with ``Result`` and ``Error`` items; ``Payload`` holding the noun
document) or a bare noun document. :func:`parse_cim` turns

- ``MeterReadings`` into :class:`~meter2cash.hes.protocol.ProfileMessage` s: interval blocks into
  block-load profile columns by OBIS code (the CIM interval timestamp is the end of the interval,
  as the block-load clock), register reads into billing-profile rows and instantaneous values
  into instantaneous-profile rows, one row per meter and read time;
- ``EndDeviceEvents`` into an :class:`~meter2cash.hes.protocol.EventsMessage` with IS 15959 event
  IDs (``cim_codes.EVENT_IDS``);
- ``EndDeviceControls`` replies and notifications into
  :class:`~meter2cash.hes.protocol.CommandReport` s.

Each item that cannot be converted becomes a :class:`~meter2cash.hes.protocol.ReplyError` whose
``field`` locates it (``MeterReading[3]/IntervalBlock[0]/IntervalReading[17]``, indices from 0);
the other items are kept. Parsing goes through ``defusedxml``: a DTD, entity or external reference
is refused (``hes.cim.unsafe_xml``), as is XML that is not well formed (``hes.cim.bad_xml``).

The way out (:func:`command_to_cim`, :func:`reply_to_cim`, :func:`meter_readings_xml`) lives in
``hes/cim_build.py``. This module is pure: no database.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import defusedxml
import defusedxml.ElementTree as SafeET

from meter2cash.core.errors import InvalidInput
from meter2cash.core.timeutil import utcnow
from meter2cash.hes import protocol
from meter2cash.hes.cim_build import command_to_cim, meter_readings_xml, reply_to_cim
from meter2cash.hes.cim_codes import (
    BY_OBIS,
    EVENT_IDS,
    READING_TYPES,
    CimReadingType,
    cim_reading_type,
    event_log,
    profile_of_obis,
)

_ENVELOPES = ("RequestMessage", "ResponseMessage", "EventMessage")
_NOUNS = ("MeterReadings", "EndDeviceEvents", "EndDeviceControls")
#: Verbs accepted per noun; a control is reported on by a reply (accepted or refused) or by a
#: notification once it was carried out (``created``, ``executed``, ``changed``, ``closed``) or
#: cancelled.
_VERBS: dict[str, tuple[str, ...]] = {
    "MeterReadings": ("create", "created", "change", "changed", "reply"),
    "EndDeviceEvents": ("create", "created", "change", "changed", "reply"),
    "EndDeviceControls": ("reply", "created", "executed", "changed", "closed", "canceled"),
}
_XS_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_OBIS = re.compile(protocol._OBIS)
_COMMAND_ID = re.compile(r"^cmd-(\d+)-\d+$")
_IS15959_DETAIL = "is15959_id"
_MAX_METER = 64


@dataclass(frozen=True, slots=True)
class CimHeader:
    """The envelope of a CIM message: its header and, for a response, the reply's result."""

    verb: str
    noun: str
    message_id: str
    correlation_id: str
    timestamp: datetime | None
    source: str
    #: ``OK``, ``PARTIAL``, ``FAILED`` for a message carrying a ``Reply``; ``""`` otherwise.
    result: str = ""


def is_cim(data: bytes) -> bool:
    """Whether a message is XML (its first character after a byte-order mark and white space is
    ``<``) rather than the protocol's JSON."""
    return data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")


def parse_cim(data: bytes) -> tuple[list[protocol.Message], list[protocol.ReplyError], CimHeader]:
    """Convert one CIM message into protocol messages, the items refused, and its header.

    Raises ``InvalidInput`` when nothing in the message can be read: ``hes.too_large``,
    ``hes.cim.unsafe_xml``, ``hes.cim.bad_xml``, ``hes.cim.not_cim`` (neither an envelope nor a
    noun document), ``hes.cim.unsupported_noun``, ``hes.cim.unsupported_verb``,
    ``hes.cim.bad_time`` (a header timestamp without a UTC offset)."""
    if len(data) > protocol.MAX_MESSAGE_BYTES:
        raise InvalidInput(
            f"message of {len(data):,} bytes is larger than {protocol.MAX_MESSAGE_BYTES:,}",
            code="hes.too_large",
        )
    root = _parse_xml(data)
    header, payload = _envelope(root, data)
    ctx = _Context(header, header.timestamp or utcnow())
    if header.noun == "MeterReadings":
        return _meter_readings(payload, ctx), ctx.errors, header
    if header.noun == "EndDeviceEvents":
        return _end_device_events(payload, ctx), ctx.errors, header
    return _end_device_controls(root, payload, ctx), ctx.errors, header


# --- XML ----------------------------------------------------------------------------------------


def _parse_xml(data: bytes) -> ET.Element:
    try:
        root: ET.Element = SafeET.fromstring(
            data, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except defusedxml.DefusedXmlException as exc:
        raise InvalidInput(
            f"XML refused: {type(exc).__name__} (DTDs, entities and external references are not accepted)",
            code="hes.cim.unsafe_xml",
        ) from None
    except ET.ParseError as exc:
        line, column = exc.position
        raise InvalidInput(
            f"not well-formed XML at line {line}, column {column}: {exc}",
            code="hes.cim.bad_xml",
            line=line,
            column=column,
        ) from None
    return root


@functools.lru_cache(maxsize=1024)
def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(el: ET.Element | None, name: str) -> list[ET.Element]:
    return [] if el is None else [c for c in el if _local(c.tag) == name]


def _child(el: ET.Element | None, name: str) -> ET.Element | None:
    found = _children(el, name)
    return found[0] if found else None


def _text(el: ET.Element | None, name: str) -> str:
    c = _child(el, name)
    return (c.text or "").strip() if c is not None else ""


def _path(el: ET.Element | None, *names: str) -> ET.Element | None:
    for name in names:
        el = _child(el, name)
    return el


def _ref(el: ET.Element | None, name: str) -> str:
    c = _child(el, name)
    return (c.get("ref") or "").strip() if c is not None else ""


def _name_or_mrid(el: ET.Element | None) -> str:
    """An identified object's first name (``Names/name``), else its mRID."""
    return _text(_child(el, "Names"), "name") or _text(el, "mRID")


@functools.lru_cache(maxsize=4096)
def _time(text: str) -> datetime | None:
    """An xs:dateTime with a UTC offset; ``None`` for a missing, malformed or naive time."""
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        return None
    return t if t.tzinfo is not None and t.utcoffset() is not None else None


# --- the envelope -------------------------------------------------------------------------------


def _envelope(root: ET.Element, data: bytes) -> tuple[CimHeader, ET.Element | None]:
    name = _local(root.tag)
    if name in _ENVELOPES:
        head = _child(root, "Header")
        payload_el = _child(root, "Payload")
        payload = next(iter(payload_el), None) if payload_el is not None else None
        noun = _text(head, "Noun") or (_local(payload.tag) if payload is not None else "")
        verb = _text(head, "Verb").lower()
        stamp = _text(head, "Timestamp")
        timestamp = _time(stamp) if stamp else None
        if stamp and timestamp is None:
            raise InvalidInput(
                f"Header/Timestamp {stamp!r} is not a date and time with a UTC offset",
                code="hes.cim.bad_time",
            )
        header = CimHeader(
            verb=verb,
            noun=noun,
            message_id=_text(head, "MessageID")[:100],
            correlation_id=_text(head, "CorrelationID")[:100],
            timestamp=timestamp,
            source=_text(head, "Source")[:64],
            result=_text(_child(root, "Reply"), "Result").upper(),
        )
    elif name in _NOUNS:
        header = CimHeader("created", name, "", "", None, "")
        payload = root
    else:
        raise InvalidInput(
            f"<{name}> is neither an IEC 61968-100 message nor a noun document ({', '.join(_NOUNS)})",
            code="hes.cim.not_cim",
        )
    if header.noun not in _NOUNS:
        raise InvalidInput(
            f"noun {header.noun!r} is not handled (only {', '.join(_NOUNS)})", code="hes.cim.unsupported_noun"
        )
    if payload is not None and _local(payload.tag) != header.noun:
        raise InvalidInput(
            f"the payload <{_local(payload.tag)}> does not match the noun {header.noun}",
            code="hes.cim.noun_mismatch",
        )
    if header.verb not in _VERBS[header.noun]:
        raise InvalidInput(
            f"verb {header.verb!r} is not accepted for {header.noun} ({', '.join(_VERBS[header.noun])})",
            code="hes.cim.unsupported_verb",
        )
    if not header.message_id:  # the same message redelivered gets the same id
        digest = hashlib.sha256(data).hexdigest()[:32]
        header = dataclasses.replace(header, message_id=f"cim-{digest}")
    return header, payload


@dataclass(slots=True)
class _Context:
    header: CimHeader
    sent_at: datetime
    errors: list[protocol.ReplyError] = field(default_factory=list)

    def refuse(self, where: str, code: str, message: str) -> None:
        self.errors.append(protocol.ReplyError(code=code, message=message, field=where))

    def message_fields(self) -> dict[str, Any]:
        return {
            "message_id": self.header.message_id,
            "sent_at": self.sent_at,
            "sender": self.header.source,
        }


# --- MeterReadings ------------------------------------------------------------------------------

#: A profile table: (profile, capture period) → meter → read time → OBIS → value.
_Key = tuple[str, int | None]


@dataclass(slots=True)
class _Tables:
    columns: dict[_Key, dict[str, None]] = field(default_factory=dict)
    cells: dict[_Key, dict[str, dict[datetime, dict[str, float | None]]]] = field(default_factory=dict)

    def put(self, key: _Key, meter: str, at: datetime, obis: str, value: float | None) -> bool:
        """Store one value; ``False`` when this meter already has another value there."""
        self.columns.setdefault(key, {})[obis] = None
        row = self.cells.setdefault(key, {}).setdefault(meter, {}).setdefault(at, {})
        if obis in row and row[obis] != value:
            return False
        row[obis] = value
        return True


def _number(text: str) -> float | None:
    """An xs:float or xs:decimal as a float; ``None`` when it is not a finite number."""
    if not _XS_NUMBER.match(text):
        return None
    v = float(text)
    return v if math.isfinite(v) else None


@dataclass(frozen=True, slots=True)
class _Bad:
    code: str
    message: str


def _reading(el: ET.Element) -> tuple[datetime, float | None] | _Bad:
    """A reading's time (``timeStamp``, else the end of its ``timePeriod``) and value (``None``
    when absent), or the error code and message of what is wrong with it."""
    parts = {_local(c.tag): c for c in el}
    stamp_el = parts.get("timeStamp")
    stamp = (stamp_el.text or "").strip() if stamp_el is not None else _text(parts.get("timePeriod"), "end")
    at = _time(stamp)
    if at is None:
        return _Bad("hes.cim.bad_time", f"timeStamp {stamp!r} is not a date and time with a UTC offset")
    value_el = parts.get("value")
    if value_el is None:
        return at, None
    raw = (value_el.text or "").strip()
    value = _number(raw)
    if value is None:
        return _Bad("hes.cim.bad_value", f"value {raw!r} is not a number")
    return at, value


def _period_from_times(times: Iterable[datetime]) -> int | None:
    ordered = sorted(set(times))
    gaps = [int((b - a).total_seconds()) for a, b in itertools.pairwise(ordered)]
    return min(gaps) if gaps else None


def _interval_type(ref: str, times: list[datetime]) -> tuple[str, int] | str:
    """The OBIS code and block length of an interval block's reading type, or why none is known.

    ``ref`` is a CIM ReadingType mRID, one of our reading-type codes or an OBIS code; for an OBIS
    code captured in blocks of several lengths, the spacing of the block's readings picks one."""
    rt = cim_reading_type(ref) or READING_TYPES.get(ref)
    if rt is not None:
        return (
            (rt.obis, rt.interval_s) if rt.interval_s else f"reading type {ref!r} is not an interval channel"
        )
    if not _OBIS.match(ref):
        return f"reading type {ref!r} is unknown"
    lengths = [t.interval_s for t in BY_OBIS.get(ref, []) if t.interval_s]
    spacing = _period_from_times(times)
    if len(lengths) == 1 and spacing in (None, lengths[0]):
        return ref, lengths[0]
    if spacing and (not lengths or spacing in lengths):
        return ref, spacing
    return f"the block length of OBIS code {ref} cannot be told from its readings"


def _register_type(ref: str) -> CimReadingType | str:
    rt = cim_reading_type(ref) or READING_TYPES.get(ref)
    if rt is not None:
        return rt
    if not _OBIS.match(ref):
        return f"reading type {ref!r} is unknown"
    known = [t for t in BY_OBIS.get(ref, []) if t.interval_s is None]
    return known[0] if known else CimReadingType(ref, ref, None, profile_of_obis(ref))


def _meter_readings(payload: ET.Element | None, ctx: _Context) -> list[protocol.Message]:
    tables = _Tables()
    for i, mr in enumerate(_children(payload, "MeterReading")):
        where = f"MeterReading[{i}]"
        meter = _name_or_mrid(_child(mr, "Meter"))
        if len(meter) > _MAX_METER:
            ctx.refuse(f"{where}/Meter", "hes.cim.bad_meter", f"meter name of {len(meter)} characters")
            continue
        if not meter:
            ctx.refuse(
                f"{where}/Meter", "hes.cim.no_meter", "a MeterReading names no meter (Names/name or mRID)"
            )
            continue
        for j, block in enumerate(_children(mr, "IntervalBlocks")):
            _interval_block(tables, ctx, meter, block, f"{where}/IntervalBlock[{j}]")
        for j, rd in enumerate(_children(mr, "Readings")):
            _register_read(tables, ctx, meter, rd, f"{where}/Reading[{j}]")
    return _profile_messages(tables, ctx)


def _interval_block(tables: _Tables, ctx: _Context, meter: str, block: ET.Element, where: str) -> None:
    ref = _ref(block, "ReadingType")
    if _child(block, "PendingCalculation") is not None:
        ctx.refuse(
            f"{where}/PendingCalculation",
            "hes.cim.pending_calculation",
            "readings that still need a calculation applied are not accepted",
        )
        return
    parsed = [(k, _reading(ir)) for k, ir in enumerate(_children(block, "IntervalReadings"))]
    kind = _interval_type(ref, [r[0] for _, r in parsed if not isinstance(r, _Bad)])
    if isinstance(kind, str):
        ctx.refuse(f"{where}/ReadingType", "hes.cim.unknown_reading_type", kind)
        return
    obis, length = kind
    for k, read in parsed:
        at_where = f"{where}/IntervalReading[{k}]"
        if isinstance(read, _Bad):
            ctx.refuse(at_where, read.code, read.message)
            continue
        at, value = read
        if not tables.put((protocol.BLOCK_LOAD, length), meter, at, obis, value):
            ctx.refuse(at_where, "hes.cim.conflicting_value", f"a second, different value for {obis} at {at}")


def _register_read(tables: _Tables, ctx: _Context, meter: str, rd: ET.Element, where: str) -> None:
    rt = _register_type(_ref(rd, "ReadingType"))
    if isinstance(rt, str):
        ctx.refuse(f"{where}/ReadingType", "hes.cim.unknown_reading_type", rt)
        return
    read = _reading(rd)
    if isinstance(read, _Bad):
        ctx.refuse(where, read.code, read.message)
        return
    at, value = read
    key: _Key = (protocol.BLOCK_LOAD, rt.interval_s) if rt.interval_s else (rt.profile, None)
    if not tables.put(key, meter, at, rt.obis, value):
        ctx.refuse(where, "hes.cim.conflicting_value", f"a second, different value for {rt.obis} at {at}")


_PROFILE_ORDER = {protocol.BLOCK_LOAD: 0, protocol.DAILY: 1, protocol.BILLING: 2, protocol.INSTANTANEOUS: 3}


def _profile_messages(tables: _Tables, ctx: _Context) -> list[protocol.Message]:
    keys = sorted(tables.cells, key=lambda k: (_PROFILE_ORDER.get(k[0], 9), k[1] or 0))
    out: list[protocol.Message] = []
    base = ctx.message_fields()
    for n, key in enumerate(keys):
        profile, length = key
        columns = list(tables.columns[key])
        meters = [
            protocol.ProfileMeter(
                meter=meter,
                rows=[
                    [at.isoformat(), *(row.get(c) for c in columns)] for at, row in sorted(by_time.items())
                ],
            )
            for meter, by_time in tables.cells[key].items()
        ]
        message_id = base["message_id"] if len(keys) == 1 else f"{base['message_id'][:96]}.{n + 1}"
        out.append(
            protocol.ProfileMessage(
                **{**base, "message_id": message_id},
                profile=profile,
                capture_period_s=length,
                columns=[protocol.CLOCK, *columns],
                meters=meters,
                correlation_id=ctx.header.correlation_id,
            )
        )
    return out


# --- EndDeviceEvents ----------------------------------------------------------------------------


def _end_device_events(payload: ET.Element | None, ctx: _Context) -> list[protocol.Message]:
    events: list[protocol.MeterEventItem] = []
    for i, ev in enumerate(_children(payload, "EndDeviceEvent")):
        item = _event(ev, f"EndDeviceEvent[{i}]", ctx)
        if item is not None:
            events.append(item)
    if not events:
        return []
    return [
        protocol.EventsMessage(
            **ctx.message_fields(), events=events, correlation_id=ctx.header.correlation_id
        )
    ]


def _event(ev: ET.Element, where: str, ctx: _Context) -> protocol.MeterEventItem | None:
    meter = next(
        (m for m in (_name_or_mrid(_child(ev, n)) for n in ("Assets", "EndDevice", "Meter")) if m), ""
    )
    if not meter:
        ctx.refuse(
            f"{where}/Assets", "hes.cim.no_meter", "the event names no meter (Assets/Names/name or mRID)"
        )
        return None
    if len(meter) > _MAX_METER:
        ctx.refuse(f"{where}/Assets", "hes.cim.bad_meter", f"meter name of {len(meter)} characters")
        return None
    stamp = _text(ev, "createdDateTime")
    at = _time(stamp)
    if at is None:
        ctx.refuse(
            f"{where}/createdDateTime",
            "hes.cim.bad_time",
            f"{stamp!r} is not a date and time with a UTC offset",
        )
        return None
    details = {_text(d, "name"): _text(d, "value") for d in _children(ev, "EndDeviceEventDetails")}
    details.pop("", None)
    cim_type = _ref(ev, "EndDeviceEventType")
    ids = EVENT_IDS.get(cim_type)
    if not ids:
        ctx.refuse(
            f"{where}/EndDeviceEventType",
            "hes.cim.unknown_event_type",
            f"EndDeviceEventType {cim_type!r} has no IS 15959 event in the catalogue",
        )
        return None
    chosen = details.pop(_IS15959_DETAIL, "")
    event_id = ids[0]
    if chosen:
        if not chosen.isdigit() or int(chosen) not in ids:
            ctx.refuse(
                f"{where}/EndDeviceEventDetails[{_IS15959_DETAIL}]",
                "hes.cim.event_id_mismatch",
                f"IS 15959 ID {chosen!r} is not one of {ids} catalogued for {cim_type}",
            )
            return None
        event_id = int(chosen)
    return protocol.MeterEventItem(
        meter=meter, log=event_log(event_id), event_id=event_id, occurred_at=at, data=details
    )


# --- EndDeviceControls --------------------------------------------------------------------------

_Status = Literal["queued", "sent", "acknowledged", "executed", "failed", "timed_out", "cancelled"]
_DONE_VERBS = ("created", "executed", "changed", "closed")


def _failed_controls(root: ET.Element) -> tuple[dict[str, str], str]:
    """The reply's errors: the detail per control they name (``Error/object/mRID``) and the
    detail of those that name none."""
    named: dict[str, str] = {}
    general: list[str] = []
    for err in _children(_child(root, "Reply"), "Error"):
        detail = " ".join(p for p in (_text(err, "code"), _text(err, "reason"), _text(err, "details")) if p)
        mrid = _text(_child(err, "object"), "mRID") or _text(err, "ID")
        if mrid:
            named[mrid] = detail
        else:
            general.append(detail)
    return named, "; ".join(general)


def _extension_items(control: ET.Element, name: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for el in _children(_child(control, "Extension"), name):
        key = el.get("name") or ""
        text = (el.text or "").strip()
        try:
            out[key] = json.loads(text)
        except ValueError:
            out[key] = text
    out.pop("", None)
    return out


def _end_device_controls(
    root: ET.Element, payload: ET.Element | None, ctx: _Context
) -> list[protocol.Message]:
    named, general = _failed_controls(root)
    result = ctx.header.result or "OK"
    controls = _children(payload, "EndDeviceControl")
    items: list[tuple[str, str, ET.Element | None]] = [
        (f"EndDeviceControl[{i}]", _text(c, "mRID"), c) for i, c in enumerate(controls)
    ]
    if not items:  # a bare reply correlated with the command message
        items = [("Header/CorrelationID", ctx.header.correlation_id, None)]
    out: list[protocol.Message] = []
    for where, mrid, control in items:
        match = _COMMAND_ID.match(mrid)
        if match is None:
            ctx.refuse(
                f"{where}/mRID" if control is not None else where,
                "hes.cim.unknown_control",
                f"{mrid!r} is not the message id of a command (cmd-<id>-<attempt>)",
            )
            continue
        failed = mrid in named or result == "FAILED"
        status = _control_status(ctx.header.verb, failed, control)
        if status is None:
            ctx.refuse(
                f"{where}/Extension/Status", "hes.cim.bad_status", "the reported status is not one we know"
            )
            continue
        out.append(
            protocol.CommandReport(
                message_id=ctx.header.message_id
                if len(items) == 1
                else f"{ctx.header.message_id[:80]}.{mrid}",
                sent_at=ctx.sent_at,
                sender=ctx.header.source,
                command_id=int(match.group(1)),
                correlation_id=mrid,
                status=status,
                at=ctx.sent_at,
                detail=(named.get(mrid) or (general if failed else ""))[:200],
                result=_extension_items(control, "Result") if control is not None else {},
            )
        )
    return out


def _control_status(verb: str, failed: bool, control: ET.Element | None) -> _Status | None:
    if control is not None:
        stated = _child(_child(control, "Extension"), "Status")
        if stated is not None:
            text = (stated.text or "").strip()
            return text if text in protocol.REPORTED_STATUSES else None  # type: ignore[return-value]
    if failed:
        return "failed"
    if verb == "canceled":
        return "cancelled"
    return "executed" if verb in _DONE_VERBS else "acknowledged"


__all__ = [
    "CimHeader",
    "command_to_cim",
    "is_cim",
    "meter_readings_xml",
    "parse_cim",
    "reply_to_cim",
]
