"""Pure array kernels used after channel resolution: grid alignment, in-file conflicts, day grouping.

All timestamps are UTC epoch microseconds (int64); interval lengths are seconds.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import numpy.typing as npt

from meter2cash.core.timeutil import SECONDS_PER_DAY, ordinal_day
from meter2cash.mdm.formats.readings_parsed import US_PER_S

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def misaligned(ts_us: IntArray, interval_s: IntArray) -> BoolArray:
    """True where an interval start is not on its channel's UTC grid (``interval_s > 0`` rows only).

    The grid is anchored at UTC midnight; because every interval length divides a day, that is
    the same as being a multiple of the interval since the epoch.
    """
    step = interval_s * US_PER_S
    out = np.zeros(len(ts_us), bool)
    has = interval_s > 0
    out[has] = ts_us[has] % step[has] != 0
    return out


def last_wins(
    channel_id: IntArray, ts_us: IntArray, values: FloatArray
) -> tuple[npt.NDArray[np.intp], BoolArray, BoolArray]:
    """Resolve repeats of the same ``(channel, timestamp)`` in one file; the last occurrence wins.

    Returns ``(order, winner, conflict)``: ``order`` sorts rows by channel then time (stable, so
    file order is kept inside a key); ``winner[i]``/``conflict[i]`` refer to row ``order[i]``:
    the row is the one kept, or an earlier row whose value differs from the kept one. An
    earlier row with the same value is neither (a harmless repeat).
    """
    order = np.lexsort((np.arange(len(ts_us)), ts_us, channel_id))
    ch, ts, v = channel_id[order], ts_us[order], values[order]
    if not len(order):
        return order, np.zeros(0, bool), np.zeros(0, bool)
    last = np.ones(len(order), bool)
    last[:-1] = (ch[1:] != ch[:-1]) | (ts[1:] != ts[:-1])
    group_end = np.flatnonzero(last)
    group_of = np.cumsum(np.concatenate([[0], last[:-1]]))
    kept_value = v[group_end][group_of]
    conflict = ~last & ~np.isclose(v, kept_value, rtol=0.0, atol=1e-9)
    return order, last, conflict


def group_channel_days(
    channel_id: IntArray, ts_us: IntArray, values: FloatArray, interval_s: IntArray
) -> dict[tuple[int, date], tuple[npt.NDArray[np.intp], FloatArray]]:
    """``{(channel_id, UTC day): (slots, values)}`` from aligned interval rows sorted by channel, time.

    The loop runs once per channel-day; the rows inside a day are sliced, not iterated.
    """
    ts_s = ts_us // US_PER_S
    day = ts_s // SECONDS_PER_DAY
    slot = ((ts_s - day * SECONDS_PER_DAY) // np.maximum(interval_s, 1)).astype(np.intp)
    if not len(ts_s):
        return {}
    cut = np.flatnonzero((channel_id[1:] != channel_id[:-1]) | (day[1:] != day[:-1])) + 1
    bounds = np.concatenate([[0], cut, [len(ts_s)]])
    out: dict[tuple[int, date], tuple[npt.NDArray[np.intp], FloatArray]] = {}
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        out[(int(channel_id[a]), ordinal_day(int(day[a])))] = (slot[a:b], values[a:b])
    return out


def outside_periods(
    key: IntArray, lo_us: IntArray, hi_us: IntArray, periods: dict[int, list[tuple[int, int]]]
) -> BoolArray:
    """True where the span ``(lo_us, hi_us)`` of a row overlaps none of the periods ``[start,
    end)`` of its ``key`` (a meter id). Rows whose key has no periods are never outside.

    The loop runs over the periods (a few per meter), the comparison over all rows at once.
    """
    out = np.zeros(len(key), bool)
    if not periods or not len(key):
        return out
    keys = np.array(sorted(periods), dtype=np.int64)
    at = np.minimum(np.searchsorted(keys, key), len(keys) - 1)
    has = keys[at] == key
    depth = max(len(p) for p in periods.values())
    starts = np.full((depth, len(keys)), np.iinfo(np.int64).max, np.int64)
    ends = np.full((depth, len(keys)), np.iinfo(np.int64).min, np.int64)
    for j, k in enumerate(keys.tolist()):
        for d, (a, b) in enumerate(periods[k]):
            starts[d, j], ends[d, j] = a, b
    inside = np.zeros(len(key), bool)
    for d in range(depth):
        inside |= (hi_us > starts[d, at]) & (lo_us < ends[d, at])
    out[has] = ~inside[has]
    return out
