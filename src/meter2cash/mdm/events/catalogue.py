"""The IS 15959 event catalogue mapped to IEC 61968-9 ``EndDeviceEventType`` codes.

An IS 15959 meter logs events by numeric ID in the event-log profiles ``0.0.99.98.x.255`` (x = 0
voltage, 1 current, 2 power, 3 transaction, 4 other, 5 non-rollover, 6 control). The head-end
reports them to the MDM by that ID; the MDM speaks CIM to the systems above it, where an event is
a 4-part code ``EndDeviceType.EndDeviceDomain.EndDeviceSubdomain.EndDeviceEventOrAction``
(IEC 61968-9): device type 3 is an electricity meter; domains 12 tamper, 15 load control,
26 power, 31 remote connect/disconnect switch; sub-domains 0 none, 6 current, 25 phase, 29 cover,
38 voltage, 66 magnetic field, 261 load limit; events 85 failed, 216 restored, 93 high, 73 high
cleared, 150 low, 37 low cleared, 139 threshold exceeded, 212 removed, 219 reversed, 242/243 started/
stopped, 257/291 tamper detected/cleared, 68 disconnected, 42 connected.

An occurrence is paired with its restoration (the IS 15959 IDs come in odd/even pairs within a
group); a non-rollover event (cover open, 251) has none. An ID the catalogue lacks is unknown:
:func:`event_type` answers ``None`` and :func:`unknown_ids` lists it, never a guessed type.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

CATEGORIES = ("voltage", "current", "power", "tamper", "relay", "load", "other")
#: ``high`` events are pushed by the meter as they happen (IS 15959 alert); the others arrive with
#: the daily event-log read.
PRIORITIES = ("high", "medium", "low")


@dataclass(frozen=True, slots=True)
class EventType:
    """One meter event: its IS 15959 ID (``None`` for an event the MDM detects itself), a stable
    dotted code, its name, the CIM ``EndDeviceEventType``, category, priority, the IS 15959 ID of
    the event that restores it (for an occurrence) and whether the meter reports it as a last gasp
    (pushed from stored energy as the supply fails)."""

    is15959_id: int | None
    code: str
    name: str
    cim_type: str
    category: str
    priority: str
    restored_by: int | None = None
    last_gasp: bool = False


def _pair(
    occurrence: int,
    code: str,
    name: str,
    cim_occurred: str,
    cim_restored: str,
    category: str,
    priority: str,
    last_gasp: bool = False,
) -> tuple[EventType, EventType]:
    restoration = occurrence + 1
    return (
        EventType(
            occurrence, code, f"{name} – occurrence", cim_occurred, category, priority, restoration, last_gasp
        ),
        EventType(restoration, f"{code}_restored", f"{name} – restoration", cim_restored, category, priority),
    )


_PHASES = (("r", "R"), ("y", "Y"), ("b", "B"))

_EVENTS: tuple[EventType, ...] = (
    # voltage-related events (log 0.0.99.98.0.255)
    *(
        event
        for i, (p, phase) in enumerate(_PHASES)
        for event in _pair(
            1 + 2 * i,
            f"event.voltage_missing_{p}",
            f"{phase}-phase voltage missing",
            "3.26.25.85",
            "3.26.25.216",
            "voltage",
            "medium",
        )
    ),
    *_pair(
        7, "event.over_voltage", "Over voltage in any phase", "3.26.38.93", "3.26.38.73", "voltage", "medium"
    ),
    *_pair(
        9, "event.low_voltage", "Low voltage in any phase", "3.26.38.150", "3.26.38.37", "voltage", "medium"
    ),
    *_pair(
        11, "event.voltage_unbalance", "Voltage unbalance", "3.26.38.139", "3.26.38.216", "voltage", "low"
    ),
    # current-related events (log 0.0.99.98.1.255)
    *(
        event
        for i, (p, phase) in enumerate(_PHASES)
        for event in _pair(
            51 + 2 * i,
            f"event.current_reverse_{p}",
            f"{phase}-phase current reverse",
            "3.12.6.219",
            "3.12.6.216",
            "current",
            "high",
        )
    ),
    *(
        event
        for i, (p, phase) in enumerate(_PHASES)
        for event in _pair(
            57 + 2 * i,
            f"event.ct_open_{p}",
            f"{phase}-phase CT open",
            "3.26.6.85",
            "3.26.6.216",
            "current",
            "high",
        )
    ),
    *_pair(
        63, "event.current_unbalance", "Current unbalance", "3.26.6.139", "3.26.6.216", "current", "medium"
    ),
    *_pair(65, "event.current_bypass", "Current bypass", "3.12.6.257", "3.12.6.291", "current", "high"),
    *_pair(
        67, "event.over_current", "Over current in any phase", "3.26.6.93", "3.26.6.73", "current", "medium"
    ),
    # power failure (log 0.0.99.98.2.255): the meter pushes 101 as a last gasp
    *_pair(
        101,
        "event.power_failure",
        "Power failure",
        "3.26.0.85",
        "3.26.0.216",
        "power",
        "high",
        last_gasp=True,
    ),
    # other events (log 0.0.99.98.4.255)
    *_pair(
        201,
        "event.magnet",
        "Influence of permanent magnet or AC/DC electromagnet",
        "3.12.66.242",
        "3.12.66.243",
        "tamper",
        "high",
    ),
    # non-rollover events (log 0.0.99.98.5.255): no restoration
    EventType(251, "event.cover_open", "Meter cover open", "3.12.29.212", "tamper", "high"),
    # control events (log 0.0.99.98.6.255): the relay's connect restores its disconnect
    EventType(
        301, "event.relay_disconnected", "Load switch disconnected", "3.31.26.68", "relay", "high", 302
    ),
    EventType(302, "event.relay_connected", "Load switch connected", "3.31.26.42", "relay", "high"),
)

#: Load violation detected by the MDM from intervals and maximum-demand registers against the
#: sanctioned load (the meter's own event reaches the MDM under its IS 15959 ID, if catalogued).
LOAD_VIOLATION = EventType(
    None, "event.load_violation", "Demand above sanctioned load", "3.15.261.139", "load", "medium"
)
LOAD_VIOLATION_CLEARED = EventType(
    None,
    "event.load_violation_cleared",
    "Demand back within sanctioned load",
    "3.15.261.216",
    "load",
    "medium",
)

BY_ID: dict[int, EventType] = {e.is15959_id: e for e in _EVENTS if e.is15959_id is not None}
EVENTS: tuple[EventType, ...] = (*_EVENTS, LOAD_VIOLATION, LOAD_VIOLATION_CLEARED)


def event_type(is15959_id: int) -> EventType | None:
    """The catalogued event of an IS 15959 event ID, or ``None`` for an ID the catalogue lacks."""
    return BY_ID.get(is15959_id)


def restoration_of(is15959_id: int) -> EventType | None:
    """The event that restores an occurrence, or ``None`` (a restoration, a non-rollover event,
    an unknown ID)."""
    event = BY_ID.get(is15959_id)
    if event is None or event.restored_by is None:
        return None
    return BY_ID[event.restored_by]


def occurrence_of(is15959_id: int) -> EventType | None:
    """The occurrence a restoration closes, or ``None`` if the ID restores nothing."""
    return next((e for e in _EVENTS if e.restored_by == is15959_id), None)


def pairs() -> tuple[tuple[EventType, EventType], ...]:
    """Every (occurrence, restoration) pair of the catalogue, in ID order."""
    return tuple(
        (e, BY_ID[e.restored_by])
        for e in sorted(BY_ID.values(), key=lambda e: e.is15959_id or 0)
        if e.restored_by
    )


def unknown_ids(ids: Iterable[int]) -> list[int]:
    """The IDs among ``ids`` that the catalogue lacks, each once, in the order first seen."""
    return list(dict.fromkeys(i for i in ids if i not in BY_ID))
