"""What the simulated meters remember and the protocol messages built from it.

:class:`MeterMemory` holds, per simulated day, each meter's block-load captures (kWh, kVAh,
average voltage and current; NaN where nothing was captured yet), the daily register snapshots,
the billing entries and the event log, for ``memory_days`` days — what a meter answers a
re-acquisition or a read from. The builders turn rows of it into :mod:`meter2cash.hes.protocol`
messages, split so that no message holds more than :data:`MAX_ROWS` rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from meter2cash.hes import protocol as p
from meter2cash.mdm.events.catalogue import BY_ID

#: Block-load columns after the clock: energy, apparent energy, average voltage and current.
BLOCK_COLUMNS = ["1.0.1.29.0.255", "1.0.9.29.0.255", "1.0.12.27.0.255", "1.0.11.27.0.255"]
#: Decimal places of each block-load column.
BLOCK_DECIMALS = (3, 3, 1, 2)
DAILY_COLUMNS = ["1.0.1.8.0.255", "1.0.9.8.0.255"]
BILLING_COLUMNS = ["1.0.1.8.0.255", "1.0.9.8.0.255", "1.0.1.6.0.255", "1.0.13.0.0.255", "0.0.0.1.0.255"]
MAX_ROWS = 20_000

F64 = npt.NDArray[np.float64]


def event_log(event_id: int) -> str:
    """The IS 15959 event log (``0.0.99.98.x.255``) an event ID is kept in."""
    if 1 <= event_id <= 50:
        x = 0
    elif 51 <= event_id <= 100:
        x = 1
    elif 101 <= event_id <= 150:
        x = 2
    elif 151 <= event_id <= 200:
        x = 3
    elif 251 <= event_id <= 300:
        x = 5
    elif 301 <= event_id <= 350:
        x = 6
    else:
        x = 4
    return f"0.0.99.98.{x}.255"


def pushed_at_once(event_id: int) -> bool:
    """A high-priority event is pushed as it happens; the others come with the daily event-log read."""
    event = BY_ID.get(event_id)
    return event is not None and event.priority == "high"


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    meter: int
    event_id: int
    #: The meter's own clock at the event (true time + drift), epoch seconds.
    at: int
    data: dict[str, Any]


@dataclass
class BillingEntry:
    at: int
    kwh: F64
    kvah: F64
    md_kw: F64
    avg_pf: F64
    resets: npt.NDArray[np.int64]


@dataclass
class MeterMemory:
    """The fleet's stored captures, by day index from the simulation's start."""

    meters: int
    slots: int
    memory_days: int
    #: day → (meters, slots, 4), in single precision (values have at most 7 significant digits)
    blocks: dict[int, npt.NDArray[np.float32]] = field(default_factory=dict)
    daily: dict[int, F64] = field(default_factory=dict)  #: day → (meters, 2) at its midnight
    billing: list[BillingEntry] = field(default_factory=list)
    events: list[LoggedEvent] = field(default_factory=list)

    def day(self, d: int) -> npt.NDArray[np.float32]:
        if d not in self.blocks:
            self.blocks[d] = np.full((self.meters, self.slots, len(BLOCK_COLUMNS)), np.nan, np.float32)
            for old in [k for k in self.blocks if k <= d - self.memory_days]:
                del self.blocks[old]
                self.daily.pop(old, None)
        return self.blocks[d]

    def window(self, k0: int, k1: int) -> tuple[npt.NDArray[np.int64], F64]:
        """Global block indices ``k0 … k1-1`` still remembered and their captures
        ``(meters, blocks, 4)``."""
        ks, parts = [], []
        for d in range(k0 // self.slots, (max(k1, k0 + 1) - 1) // self.slots + 1):
            if d not in self.blocks:
                continue
            lo, hi = max(k0, d * self.slots), min(k1, (d + 1) * self.slots)
            if hi <= lo:
                continue
            ks.append(np.arange(lo, hi, dtype=np.int64))
            parts.append(self.blocks[d][:, lo - d * self.slots : hi - d * self.slots])
        if not parts:
            return np.zeros(0, np.int64), np.zeros((self.meters, 0, len(BLOCK_COLUMNS)))
        return np.concatenate(ks), np.concatenate(parts, axis=1).astype(np.float64)


def iso(epoch: int, tz: ZoneInfo) -> str:
    """Epoch seconds as ISO 8601 in the meters' local time, with its offset."""
    return datetime.fromtimestamp(int(epoch), tz).isoformat()


def utc(epoch: int) -> datetime:
    return datetime.fromtimestamp(int(epoch), UTC)


def _rounded(values: F64, decimals: Sequence[int]) -> list[Any]:
    """``values`` (``(..., columns)``) rounded per column, as nested lists; NaN becomes ``None``."""
    rounded = np.empty(values.shape, dtype=object)
    for c, places in enumerate(decimals):
        rounded[..., c] = np.round(values[..., c], places)
    rounded[np.isnan(values)] = None
    nested: list[Any] = rounded.tolist()
    return nested


def profile_messages(
    *,
    id_prefix: str,
    sender: str,
    sent_at: int,
    profile: str,
    columns: list[str],
    decimals: Sequence[int],
    meters: list[tuple[str, str]],
    clocks: list[str],
    values: F64,
    capture_period_s: int | None = None,
    correlation_id: str = "",
) -> Iterator[p.ProfileMessage]:
    """ProfileMessages for ``meters`` (serial, DCU) with ``values`` ``(meters, rows, columns)``
    stamped ``clocks``; rows with no value at all are left out; split every :data:`MAX_ROWS` rows."""
    chunk: list[p.ProfileMeter] = []
    rows_in_chunk, part = 0, 0
    present = ~np.all(np.isnan(values), axis=2)

    def message() -> p.ProfileMessage:
        return p.ProfileMessage(
            message_id=f"{id_prefix}-{part}" if part else id_prefix,
            sent_at=utc(sent_at),
            sender=sender,
            profile=profile,
            capture_period_s=capture_period_s,
            columns=[p.CLOCK, *columns],
            meters=chunk,
            correlation_id=correlation_id,
        )

    table = _rounded(values, decimals)
    for i, (serial, dcu) in enumerate(meters):
        keep = np.nonzero(present[i])[0].tolist()
        if not keep:
            continue
        mine = table[i]
        chunk.append(p.ProfileMeter(meter=serial, dcu=dcu, rows=[[clocks[k], *mine[k]] for k in keep]))
        rows_in_chunk += len(keep)
        if rows_in_chunk >= MAX_ROWS:
            yield message()
            chunk, rows_in_chunk, part = [], 0, part + 1
    if chunk or (part == 0 and correlation_id):
        yield message()


def events_message(
    *,
    message_id: str,
    sender: str,
    sent_at: int,
    events: Sequence[LoggedEvent],
    names: Callable[[int], tuple[str, str]],
    tz: ZoneInfo,
    correlation_id: str = "",
) -> p.EventsMessage:
    """An EventsMessage of ``events``; ``names`` gives a meter row's serial and DCU."""
    return p.EventsMessage(
        message_id=message_id,
        sent_at=utc(sent_at),
        sender=sender,
        correlation_id=correlation_id,
        events=[
            p.MeterEventItem(
                meter=names(e.meter)[0],
                dcu=names(e.meter)[1],
                log=event_log(e.event_id),
                event_id=e.event_id,
                occurred_at=datetime.fromtimestamp(e.at, tz),
                data=e.data,
            )
            for e in events
        ],
    )


def report(
    cmd: p.CommandMessage,
    status: str,
    *,
    at: int,
    sender: str,
    detail: str = "",
    result: dict[str, Any] | None = None,
) -> p.CommandReport:
    return p.CommandReport(
        message_id=f"rep-{cmd.message_id}-{status}"[:100],
        sent_at=utc(at),
        sender=sender,
        command_id=cmd.command_id,
        correlation_id=cmd.message_id,
        status=status,
        at=utc(at),
        detail=detail,
        result=result or {},
    )
