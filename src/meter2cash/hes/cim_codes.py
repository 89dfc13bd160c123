"""IEC 61968-9 codes for the CIM adapter: reading types, end-device control types, event types.

A CIM ``ReadingType`` mRID is an 18-part dotted code (IEC 61968-9 Annex C):

``macroPeriod.aggregate.measuringPeriod.accumulation.flowDirection.commodity.measurementKind.
interharmonicNumerator.interharmonicDenominator.argumentNumerator.argumentDenominator.tou.cpp.
consumptionTier.phases.multiplier.unit.currency``

The values used here: measuringPeriod 2 = 15 min, 5 = 30 min, 7 = 60 min; macroPeriod 8 = billing
period; aggregate 2 = average, 8 = maximum; accumulation 1 = bulk quantity (a register),
4 = delta data (an interval's energy), 6 = indicating (a value at the read time; 12 =
instantaneous is accepted as the same); flowDirection 1 = forward (import), 19 = reverse
(export); commodity 1 = electricity, secondary metered; measurementKind 4 current, 8 demand,
12 energy, 37 power, 38 power factor, 54 voltage; phases 128 = A (R), 64 = B (Y), 32 = C (B),
16 = neutral; multiplier 3 = kilo; unit 5 A, 29 V, 38 W, 61 VA, 65 cos θ, 71 VAh, 72 Wh.

:data:`READING_TYPES` restates the reading types of ``meter2cash.mdm.reading_types`` (code, OBIS,
block length) so that this adapter stays free of the database layer; a unit test holds the two
in agreement.
"""

from __future__ import annotations

from dataclasses import dataclass

from meter2cash.hes import protocol
from meter2cash.mdm.events import catalogue


@dataclass(frozen=True, slots=True)
class CimReadingType:
    """One of our reading types: its code, OBIS code, block length (``None`` for a value read at
    a time), the protocol profile it travels in, and its CIM ``ReadingType`` mRID (``""`` when it
    has no CIM equivalent: it then travels under its own code)."""

    code: str
    obis: str
    interval_s: int | None
    profile: str
    cim: str = ""


def _rt(
    macro: int = 0,
    aggregate: int = 0,
    period: int = 0,
    accumulation: int = 0,
    flow: int = 0,
    kind: int = 0,
    *,
    tou: int = 0,
    phases: int = 0,
    multiplier: int = 0,
    unit: int = 0,
) -> str:
    parts = (macro, aggregate, period, accumulation, flow, 1, kind, 0, 0, 0, 0, tou, 0, 0, phases)
    return ".".join(str(p) for p in (*parts, multiplier, unit, 0))


_KILO = 3
_PERIODS = {900: 2, 1800: 5, 3600: 7}
_PHASES = {"r": 128, "y": 64, "b": 32}
_BL, _BILL, _INST = protocol.BLOCK_LOAD, protocol.BILLING, protocol.INSTANTANEOUS

_TABLE: list[CimReadingType] = [
    *(
        CimReadingType(
            f"{q}_{d}_{s // 60}m",
            obis,
            s,
            _BL,
            _rt(period=_PERIODS[s], accumulation=4, flow=flow, kind=12, multiplier=_KILO, unit=unit),
        )
        for q, d, obis, flow, unit, lengths in (
            ("kwh", "import", "1.0.1.29.0.255", 1, 72, (900, 1800, 3600)),
            ("kwh", "export", "1.0.2.29.0.255", 19, 72, (900, 1800)),
            ("kvah", "import", "1.0.9.29.0.255", 1, 71, (900, 1800)),
        )
        for s in lengths
    ),
    *(
        CimReadingType(
            f"{q}_avg_{s // 60}m",
            obis,
            s,
            _BL,
            _rt(aggregate=2, period=_PERIODS[s], accumulation=6, kind=kind, unit=unit),
        )
        for q, obis, kind, unit in (
            ("voltage", "1.0.12.27.0.255", 54, 29),
            ("current", "1.0.11.27.0.255", 4, 5),
        )
        for s in (900, 1800)
    ),
    *(
        CimReadingType(
            f"{q}_import_register{f'_t{t}' if t else ''}",
            f"1.0.{c}.8.{t}.255",
            None,
            _BILL,
            _rt(accumulation=1, flow=1, kind=12, tou=t, multiplier=_KILO, unit=unit),
        )
        for q, c, unit in (("kwh", 1, 72), ("kvah", 9, 71))
        for t in range(5)
    ),
    CimReadingType(
        "kw_md_register",
        "1.0.1.6.0.255",
        None,
        _BILL,
        _rt(8, 8, 0, 6, 1, 8, multiplier=_KILO, unit=38),
    ),
    CimReadingType(
        "kva_md_register",
        "1.0.9.6.0.255",
        None,
        _BILL,
        _rt(8, 8, 0, 6, 1, 8, multiplier=_KILO, unit=61),
    ),
    CimReadingType("pf_average_register", "1.0.13.0.0.255", None, _BILL, _rt(8, 2, 0, 6, 0, 38, unit=65)),
    CimReadingType("md_reset_count", "0.0.0.1.0.255", None, _BILL),
    CimReadingType(
        "kw_instant", "1.0.1.7.0.255", None, _INST, _rt(0, 0, 0, 6, 1, 37, multiplier=_KILO, unit=38)
    ),
    CimReadingType(
        "kva_instant", "1.0.9.7.0.255", None, _INST, _rt(0, 0, 0, 6, 1, 37, multiplier=_KILO, unit=61)
    ),
    CimReadingType("voltage_instant", "1.0.12.7.0.255", None, _INST, _rt(0, 0, 0, 6, 0, 54, unit=29)),
    CimReadingType("current_instant", "1.0.11.7.0.255", None, _INST, _rt(0, 0, 0, 6, 0, 4, unit=5)),
    CimReadingType(
        "current_neutral_instant", "1.0.91.7.0.255", None, _INST, _rt(0, 0, 0, 6, 0, 4, phases=16, unit=5)
    ),
    CimReadingType("pf_instant", "1.0.13.7.0.255", None, _INST, _rt(0, 0, 0, 6, 0, 38, unit=65)),
    *(
        CimReadingType(
            f"{q}_{p}_instant",
            f"1.0.{c + offset}.7.0.255",
            None,
            _INST,
            _rt(0, 0, 0, 6, 0, kind, phases=_PHASES[p], unit=unit),
        )
        for q, kind, unit, offset in (("current", 4, 5, 1), ("voltage", 54, 29, 2), ("pf", 38, 65, 3))
        for p, c in (("r", 30), ("y", 50), ("b", 70))
    ),
]

#: Our reading types with their CIM ReadingType mRIDs, by our code.
READING_TYPES: dict[str, CimReadingType] = {t.code: t for t in _TABLE}
#: Our reading types by CIM ReadingType mRID.
BY_CIM: dict[str, CimReadingType] = {t.cim: t for t in _TABLE if t.cim}
#: Our reading types by OBIS code (several for an OBIS code captured in blocks of different lengths).
BY_OBIS: dict[str, list[CimReadingType]] = {}
for _t in _TABLE:
    BY_OBIS.setdefault(_t.obis, []).append(_t)

_ACCUMULATION = 3
_INSTANTANEOUS, _INDICATING = "12", "6"


def cim_reading_type(mrid: str) -> CimReadingType | None:
    """Our reading type for a CIM ReadingType mRID; accumulation *instantaneous* (12) is taken as
    *indicating* (6), the code this table uses for values read at a time."""
    found = BY_CIM.get(mrid)
    if found is None:
        parts = mrid.split(".")
        if len(parts) == 18 and parts[_ACCUMULATION] == _INSTANTANEOUS:
            parts[_ACCUMULATION] = _INDICATING
            found = BY_CIM.get(".".join(parts))
    return found


def profile_of_obis(obis: str) -> str:
    """The profile of a value read at a time whose OBIS code the catalogue lacks: the
    instantaneous profile for OBIS value group D = 7, the billing profile otherwise."""
    parts = obis.split(".")
    return _INST if len(parts) == 6 and parts[3] == "7" else _BILL


# --- end-device controls ------------------------------------------------------------------------

#: CIM ``EndDeviceControlType`` per command action. Connect and disconnect are the IEC 61968-9
#: remote connect/disconnect switch codes (domain 31); the others are provisional, composed from
#: the standard's type.domain.subDomain.eventOrAction pattern, and are to be agreed with each
#: head-end vendor (``command_to_cim`` takes a replacement table).
CONTROL_TYPES: dict[str, str] = {
    "connect": "3.31.0.42",
    "disconnect": "3.31.0.68",
    "read": "3.8.0.214",
    "reacquire": "3.8.0.215",
    "time_sync": "3.36.0.60",
    "configure": "3.7.0.24",
    "credit_update": "3.20.0.13",
    "payment_mode": "3.20.0.14",
    "firmware": "3.11.0.58",
}


# --- end-device events --------------------------------------------------------------------------

#: IS 15959 event IDs by CIM EndDeviceEventType, in catalogue order (the first is the default).
EVENT_IDS: dict[str, list[int]] = {}
for _e in catalogue.EVENTS:
    if _e.is15959_id is not None:
        EVENT_IDS.setdefault(_e.cim_type, []).append(_e.is15959_id)

_OTHER_LOG = 4
_LAST_LOG = 6


def event_log(is15959_id: int) -> str:
    """The IS 15959 event log (``0.0.99.98.x.255``) an event ID is recorded in: IDs 1–50 voltage
    (x = 0), 51–100 current (1), 101–150 power (2), 151–200 transaction (3), 201–250 other (4),
    251–300 non-rollover (5), 301–350 control (6); *other* for an ID outside these ranges."""
    x = (is15959_id - 1) // 50
    return f"0.0.99.98.{x if 0 <= x <= _LAST_LOG else _OTHER_LOG}.255"


# --- namespaces ---------------------------------------------------------------------------------

#: The IEC 61968-100 message envelope.
MESSAGE_NS = "http://iec.ch/TC57/2011/schema/message"
#: The IEC 61968-9 noun documents this adapter reads and writes.
NOUN_NS: dict[str, str] = {
    "MeterReadings": "http://iec.ch/TC57/2011/MeterReadings#",
    "EndDeviceEvents": "http://iec.ch/TC57/2011/EndDeviceEvents#",
    "EndDeviceControls": "http://iec.ch/TC57/2011/EndDeviceControls#",
}
#: meter2cash's extension items in an EndDeviceControl: command parameters (``Parameter``), what
#: the meter answered (``Result``) and a reported command status (``Status``).
EXTENSION_NS = "urn:meter2cash:cim:extension:1"
