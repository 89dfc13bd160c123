"""Head-end profile and event messages as the JSON reading document (docs/formats.md#json).

A profile message carries rows of an IS 15959 profile for many meters; :func:`profile_document`
turns it into the ``readings`` (block-load interval columns) and ``registers`` (instantaneous,
daily and billing profile columns) of one reading document, in one pass over all rows of the
message: lengths, clocks and slots are numpy arrays, and each interval column of a meter becomes
one block whose values are a slice of the column. The block-load clock is the *end* of the block,
so the interval start is the clock minus the capture period.

The document remembers where each of its readings came from (:meth:`ProfileDocument.locate`), so a
problem the ingest reports at ``readings[3].values[17]`` is answered at ``meters[i].rows[j]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from meter2cash.hes.protocol import BLOCK_LOAD, EventsMessage, ProfileMessage, ReplyError
from meter2cash.mdm.events.catalogue import event_type
from meter2cash.mdm.formats.readings_parsed import parse_timestamps
from meter2cash.mdm.reading_types import CATALOGUE

US = 1_000_000
#: A gap of more than this many blocks between two rows of a meter starts a new block.
MAX_GAP_BLOCKS = 96
_PROBLEM_AT = re.compile(r"^(readings|registers)\[(\d+)\](?:\.values\[(\d+)\])?")


def channel_for(obis: str, interval_s: int | None) -> str | None:
    """The reading-type code of a captured column: an interval type of that OBIS code and block
    length, or (``interval_s`` ``None``) a register or instantaneous type of that OBIS code."""
    return next((s.code for s in CATALOGUE if s.obis == obis and s.interval_s == interval_s), None)


@dataclass
class ProfileDocument:
    """A reading document made from a profile message, and where each of its readings came from."""

    doc: dict[str, Any]
    errors: list[ReplyError] = field(default_factory=list)
    #: Rows of the message converted (right length, readable clock).
    rows: int = 0
    #: Per ``readings`` block: the message's meter index and column, and for each value the row
    #: index in that meter's ``rows`` (-1 for a slot between rows).
    blocks: list[tuple[int, int, npt.NDArray[np.int64]]] = field(default_factory=list)
    #: Per ``registers`` item: meter index, row index, column.
    registers: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros((0, 3), np.int64))

    def locate(self, problem_field: str) -> tuple[str, int | None]:
        """The message field a problem of the document names (``meters[i].rows[j]`` or
        ``meters[i]``), and the column index when known."""
        m = _PROBLEM_AT.match(problem_field or "")
        if m is None:
            return "", None
        k = int(m.group(2))
        if m.group(1) == "readings" and k < len(self.blocks):
            i, col, slots = self.blocks[k]
            if m.group(3) is not None and int(m.group(3)) < len(slots):
                return f"meters[{i}].rows[{int(slots[int(m.group(3))])}]", col
            return f"meters[{i}]", col
        if m.group(1) == "registers" and k < len(self.registers):
            i, j, col = (int(v) for v in self.registers[k])
            return f"meters[{i}].rows[{j}]", col
        return "", None


def _bad(code: str, message: str, where: str) -> ReplyError:
    return ReplyError(code=code, message=message, field=where)


def profile_document(msg: ProfileMessage) -> ProfileDocument:
    """The reading document of a profile message, with the rows and columns it could not use."""
    out = ProfileDocument(doc={"source": msg.sender or "hes"})
    block_load = msg.profile == BLOCK_LOAD
    period = msg.capture_period_s
    if block_load and period is None:
        out.errors.append(
            _bad("hes.bad_message", "a block-load profile needs capture_period_s", "capture_period_s")
        )
        return out
    ncols = len(msg.columns)
    codes: list[str | None] = [None] * ncols
    for c, obis in enumerate(msg.columns[1:], start=1):
        codes[c] = channel_for(obis, period if block_load else None)
        if codes[c] is None:
            kind = f"{period} s interval" if block_load else "register"
            out.errors.append(
                _bad("hes.unknown_column", f"no {kind} reading type has OBIS code {obis}", f"columns[{c}]")
            )
    # every row of the message at once: lengths, then the clock column
    counts = np.array([len(m.rows) for m in msg.meters], dtype=np.int64)
    meter_of = np.repeat(np.arange(len(msg.meters), dtype=np.int64), counts)
    row_of = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    all_rows = [row for m in msg.meters for row in m.rows]
    lengths = np.fromiter(map(len, all_rows), dtype=np.int64, count=len(all_rows))
    wrong = lengths != ncols
    for k in np.flatnonzero(wrong):
        out.errors.append(
            _bad(
                "hes.bad_row",
                f"{lengths[k]} values for {ncols} columns",
                f"meters[{meter_of[k]}].rows[{row_of[k]}]",
            )
        )
    keep = np.flatnonzero(~wrong)
    table = pd.DataFrame([all_rows[k] for k in keep], columns=range(ncols), dtype=object)
    clock = table[0].map(lambda v: v if isinstance(v, str) else "") if len(table) else table[0]
    clock_us, clock_bad, clock_naive = parse_timestamps(clock.astype(object))
    unusable = clock_bad | clock_naive
    if block_load:
        assert period is not None
        start_us = clock_us - period * US
        unusable |= ~unusable & (start_us % (period * US) != 0)
    for p in np.flatnonzero(unusable):
        k = keep[p]
        why = (
            "the clock is not an ISO 8601 time"
            if clock_bad[p]
            else "the clock has no offset"
            if clock_naive[p]
            else f"the clock {clock[p]} is not the end of a {period} s block"
        )
        out.errors.append(_bad("hes.bad_clock", why, f"meters[{meter_of[k]}].rows[{row_of[k]}]"))
    good = ~unusable
    out.rows = int(good.sum())
    keep, table, clock = keep[good], table[good], clock[good].to_numpy(object)
    meters = meter_of[keep]
    rows = row_of[keep]
    columns = [c for c in range(1, ncols) if codes[c] is not None]
    if block_load:
        assert period is not None
        _blocks(out, msg, table, start_us[good], meters, rows, columns, codes, period)
    else:
        _registers(out, msg, table, clock, meters, rows, columns, codes)
    return out


def _blocks(
    out: ProfileDocument,
    msg: ProfileMessage,
    table: pd.DataFrame,
    start_us: npt.NDArray[np.int64],
    meters: npt.NDArray[np.int64],
    rows: npt.NDArray[np.int64],
    columns: list[int],
    codes: list[str | None],
    period: int,
) -> None:
    """Interval columns as blocks: per meter, runs of rows at most :data:`MAX_GAP_BLOCKS` apart."""
    step = period * US
    order = np.lexsort((start_us, meters))
    meters, rows, start_us = meters[order], rows[order], start_us[order]
    values = {c: table[c].to_numpy(object)[order] for c in columns}
    new_run = np.ones(len(order), dtype=bool)
    new_run[1:] = (meters[1:] != meters[:-1]) | (np.diff(start_us) > MAX_GAP_BLOCKS * step)
    bounds = [*np.flatnonzero(new_run).tolist(), len(order)]
    readings: list[dict[str, Any]] = []
    for a, b in pairwise(bounds):
        i = int(meters[a])
        slot = (start_us[a:b] - start_us[a]) // step
        slots = np.full(int(slot[-1]) + 1, -1, dtype=np.int64)
        slots[slot] = rows[a:b]  # a clock given twice: the later row wins
        start = pd.Timestamp(int(start_us[a]), unit="us", tz="UTC").isoformat()
        for c in columns:
            block = np.full(len(slots), None, dtype=object)
            block[slot] = values[c][a:b]
            readings.append(
                {
                    "meter": msg.meters[i].meter,
                    "channel": codes[c],
                    "start": start,
                    "interval_s": period,
                    "values": block.tolist(),
                }
            )
            out.blocks.append((i, c, slots))
    out.doc["readings"] = readings


def _registers(
    out: ProfileDocument,
    msg: ProfileMessage,
    table: pd.DataFrame,
    clock: npt.NDArray[np.object_],
    meters: npt.NDArray[np.int64],
    rows: npt.NDArray[np.int64],
    columns: list[int],
    codes: list[str | None],
) -> None:
    """Register columns: one read per captured (not null) value, at the row's clock."""
    if not columns or not len(rows):
        out.doc["registers"] = []
        return
    grid = table[columns].to_numpy(object)
    present = pd.notna(pd.DataFrame(grid)).to_numpy(bool)
    r, c = np.nonzero(present)
    col_index = np.array(columns, dtype=np.int64)[c]
    serials = np.array([m.meter for m in msg.meters], dtype=object)[meters[r]]
    channel = np.array(codes, dtype=object)[col_index]
    out.doc["registers"] = [
        {"meter": s, "channel": ch, "read_at": t, "value": v}
        for s, ch, t, v in zip(serials, channel, clock[r], grid[r, c], strict=True)
    ]
    out.registers = np.column_stack([meters[r], rows[r], col_index]).astype(np.int64)


def events_document(msg: EventsMessage) -> dict[str, Any]:
    """The ``events`` of a reading document: the IS 15959 ID as the code, the catalogue's category
    and name (``other`` and the log's name for an ID the catalogue lacks), the captured data with
    the event log and the DCU."""
    items = []
    for e in msg.events:
        known = event_type(e.event_id)
        items.append(
            {
                "meter": e.meter,
                "occurred_at": e.occurred_at.isoformat(),
                "code": str(e.event_id),
                "category": known.category if known else "other",
                "description": known.name if known else f"IS 15959 event {e.event_id}",
                "data": {**e.data, "log": e.log, "dcu": e.dcu},
            }
        )
    return {"source": msg.sender or "hes", "events": items}
