"""The head-end (HES) message protocol, version 1: what an HES and the MDM say to each other.

Every message is one JSON object with ``kind``, ``message_id`` (unique per sender: a message seen
before changes nothing) and ``sent_at``. The HES sends:

- ``profile``: rows of an IS 15959 profile (:data:`PROFILES`) for many meters; ``columns`` name the
  captured objects by OBIS code, the first being the clock ``0.0.1.0.0.255``. In the block-load
  profile the clock is the *end* of the block (the capture time, as meters record it); in the
  daily and billing profiles and the instantaneous profile it is the capture time of the values.
- ``events``: entries of the meters' event logs (``0.0.99.98.x.255``) with their IS 15959 ID.
- ``command_report``: a step of a command's lifecycle (``acknowledged``, ``executed``,
  ``failed``…), correlated with the command's ``message_id`` and carrying what the meter answered
  (``result``: the relay state read back, the clock after a time sync…).
- ``network``: changes of the network hierarchy it observed (meter ↔ DCU, service point ↔ DT,
  DT ↔ feeder), each with the time it took effect.

The MDM sends ``command`` messages and answers every message with a ``reply`` whose ``result`` is
``OK``, ``PARTIAL`` (some items refused, each named with its reason) or ``FAILED``.

This module is pure: it defines the messages, parses and checks them (:func:`parse_message`) and
names the topics and subjects each transport uses (:func:`mqtt_topic`, :func:`nats_subject`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from meter2cash.core.errors import InvalidInput, error_path
from meter2cash.mdm.commands.params import BILLING, BLOCK_LOAD, DAILY, INSTANTANEOUS, KINDS, PROFILES

VERSION = 1

#: The clock, the first captured object of every profile row.
CLOCK = "0.0.1.0.0.255"
#: IS 15959 event logs by OBIS code (``0.0.99.98.x.255``).
EVENT_LOGS: dict[str, str] = {
    "0.0.99.98.0.255": "voltage related",
    "0.0.99.98.1.255": "current related",
    "0.0.99.98.2.255": "power related",
    "0.0.99.98.3.255": "transaction related",
    "0.0.99.98.4.255": "other",
    "0.0.99.98.5.255": "non-rollover",
    "0.0.99.98.6.255": "control",
}

#: What a command asks of a meter (docs/hes.md#commands).
COMMAND_KINDS = KINDS
#: What an HES may report about a command.
REPORTED_STATUSES = ("queued", "sent", "acknowledged", "executed", "failed", "timed_out", "cancelled")
RESULTS = ("OK", "PARTIAL", "FAILED")

_OBIS = r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$"


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    message_id: str = Field(min_length=1, max_length=100)
    sent_at: AwareDatetime
    #: The sending head-end (or ``mdm``).
    sender: str = Field(default="", max_length=64)
    version: Literal[1] = 1


class ProfileMeter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    meter: str = Field(min_length=1, max_length=64)
    #: The DCU the meter reached the HES through, when known.
    dcu: str = Field(default="", max_length=64)
    #: One row per capture: the clock (ISO 8601 with offset) and then one value per column;
    #: ``null`` for a value the meter did not capture.
    rows: list[list[Any]]


class ProfileMessage(_Message):
    kind: Literal["profile"] = "profile"
    profile: Annotated[str, Field(pattern=_OBIS)]
    #: Seconds between captures (block load: 900 or 1800); ``None`` for profiles read on demand.
    capture_period_s: int | None = Field(default=None, gt=0)
    columns: list[Annotated[str, Field(pattern=_OBIS)]] = Field(min_length=2)
    meters: list[ProfileMeter]
    #: The command this message answers (an on-demand read or a re-acquisition), if any.
    correlation_id: str = Field(default="", max_length=100)


class MeterEventItem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    meter: str = Field(min_length=1, max_length=64)
    dcu: str = Field(default="", max_length=64)
    log: Annotated[str, Field(pattern=_OBIS)] = "0.0.99.98.4.255"
    #: The IS 15959 event ID (mdm/events/catalogue.py).
    event_id: int = Field(ge=0, le=65535)
    occurred_at: AwareDatetime
    #: Snapshot values captured with the event, by OBIS code or name (current, voltage, PF…).
    data: dict[str, Any] = Field(default_factory=dict)


class EventsMessage(_Message):
    kind: Literal["events"] = "events"
    events: list[MeterEventItem]
    correlation_id: str = Field(default="", max_length=100)


class CommandMessage(_Message):
    """A command the MDM sends to the HES; ``message_id`` is ``cmd-<id>-<attempt>``."""

    kind: Literal["command"] = "command"
    command_id: int
    meter: str = Field(min_length=1, max_length=64)
    action: Literal[COMMAND_KINDS]  # type: ignore[valid-type]
    params: dict[str, Any] = Field(default_factory=dict)
    #: The HES gives up (and reports ``timed_out``) after this time.
    deadline: AwareDatetime | None = None


class CommandReport(_Message):
    kind: Literal["command_report"] = "command_report"
    command_id: int
    #: The ``message_id`` of the command message this reports on.
    correlation_id: str = Field(default="", max_length=100)
    status: Literal[REPORTED_STATUSES]  # type: ignore[valid-type]
    at: AwareDatetime
    detail: str = Field(default="", max_length=200)
    #: What the meter answered: ``{"relay": "connected"}`` after a relay operation or a relay
    #: read-back, ``{"clock": "…"}`` after a time sync, ``{"firmware": "…"}`` after an upgrade.
    result: dict[str, Any] = Field(default_factory=dict)


class NetworkChange(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    #: What changed: ``meter_dcu``, ``service_point_dt`` or ``dt_feeder``.
    link: Literal["meter_dcu", "service_point_dt", "dt_feeder"]
    #: The child (meter serial, service point code, DT code) and its new parent (DCU, DT, feeder code).
    child: str = Field(min_length=1, max_length=64)
    parent: str = Field(min_length=1, max_length=64)
    effective_at: AwareDatetime


class NetworkMessage(_Message):
    kind: Literal["network"] = "network"
    changes: list[NetworkChange]


class ReplyError(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    code: str
    message: str
    #: Where in the message: ``meters[3].rows[17]``, ``events[0].meter``.
    field: str = ""


class Reply(_Message):
    kind: Literal["reply"] = "reply"
    correlation_id: str
    result: Literal["OK", "PARTIAL", "FAILED"]
    errors: list[ReplyError] = Field(default_factory=list)
    #: Counts of what was kept (rows, events, reports, changes) and what was a duplicate.
    stats: dict[str, int] = Field(default_factory=dict)


Inbound = ProfileMessage | EventsMessage | CommandReport | NetworkMessage
Message = Inbound | CommandMessage | Reply
_ADAPTER: TypeAdapter[Message] = TypeAdapter(Annotated[Message, Field(discriminator="kind")])
_KINDS = ("profile", "events", "command_report", "network", "command", "reply")
#: Largest message accepted (bytes); an HES splits larger pushes.
MAX_MESSAGE_BYTES = 4_000_000


def parse_message(data: bytes | str | dict[str, Any]) -> Message:
    """Parse and check one message; ``hes.bad_message`` names the first fields that are wrong."""
    if isinstance(data, bytes | str) and len(data) > MAX_MESSAGE_BYTES:
        raise InvalidInput(
            f"message of {len(data):,} bytes is larger than {MAX_MESSAGE_BYTES:,}", code="hes.too_large"
        )
    try:
        if isinstance(data, dict):
            return _ADAPTER.validate_python(data)
        return _ADAPTER.validate_json(data)
    except ValidationError as exc:
        errs = exc.errors(include_url=False)[:10]
        for e in errs:  # the first step of a location is the message's kind
            e["loc"] = e["loc"][1:] if e["loc"] and e["loc"][0] in _KINDS else e["loc"]
        detail = "; ".join(f"{error_path(e['loc']) or 'message'}: {e['msg']}" for e in errs)
        raise InvalidInput(
            f"not a valid HES message: {detail}",
            code="hes.bad_message",
            data={"errors": [{"field": error_path(e["loc"]), "message": e["msg"]} for e in errs]},
        ) from None


def dump(message: Message) -> bytes:
    """A message as the JSON bytes sent on every transport."""
    return message.model_dump_json(exclude_none=True).encode()


def reply_to(
    message_id: str,
    errors: list[ReplyError],
    *,
    kept: int,
    at: datetime,
    stats: dict[str, int] | None = None,
) -> Reply:
    """The reply to ``message_id``: OK without errors, PARTIAL when some items were kept, FAILED
    when none was."""
    result: Literal["OK", "PARTIAL", "FAILED"] = "OK" if not errors else ("PARTIAL" if kept else "FAILED")
    return Reply(
        message_id=f"re-{message_id}"[:100],
        sent_at=at,
        sender="mdm",
        correlation_id=message_id,
        result=result,
        errors=errors,
        stats=stats or {},
    )


# --- where messages travel ---------------------------------------------------------------------

#: Message kinds by the direction they travel.
FROM_HES = ("profile", "events", "command_report", "network")
TO_HES = ("command",)


def mqtt_topic(prefix: str, hes: str, kind: str) -> str:
    """``<prefix>/hes/<hes>/<kind>``: the HES publishes FROM_HES kinds, subscribes to ``command``
    and to ``reply``; QoS 1, clean_session false (docs/hes.md#mqtt)."""
    return f"{prefix}/hes/{hes}/{kind}"


def nats_subject(prefix: str, hes: str, kind: str) -> str:
    """``<prefix>.hes.<hes>.<kind>`` in the JetStream stream of the HES link (docs/hes.md#nats)."""
    return f"{prefix}.hes.{hes}.{kind}"


def command_message_id(command_id: int, attempt: int) -> str:
    return f"cmd-{command_id}-{attempt}"


__all__ = [
    "BILLING",
    "BLOCK_LOAD",
    "CLOCK",
    "COMMAND_KINDS",
    "DAILY",
    "EVENT_LOGS",
    "INSTANTANEOUS",
    "PROFILES",
    "CommandMessage",
    "CommandReport",
    "EventsMessage",
    "MeterEventItem",
    "NetworkChange",
    "NetworkMessage",
    "ProfileMessage",
    "ProfileMeter",
    "Reply",
    "ReplyError",
    "command_message_id",
    "dump",
    "mqtt_topic",
    "nats_subject",
    "parse_message",
    "reply_to",
]
