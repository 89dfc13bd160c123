"""Array kernels of event routing: pairing occurrences with restorations, de-duplication, outage
storm coalescing, demand above the sanctioned load, and outage windows as interval masks.

Everything here is pure NumPy over whole batches: times are int64 epoch seconds (UTC), a meter is
an index into per-meter arrays (its distribution transformer and feeder), an event is its IS 15959
ID (:mod:`meter2cash.mdm.events.catalogue`). No database, no clock.

Pairing follows the catalogue's occurrence ↔ restoration pairs. Per meter and pair, in time
order, the first occurrence opens an episode; further occurrences while it is open are duplicates
(a meter pushes an alert and logs it again); the first restoration closes it; further restorations
are duplicates, and a restoration with nothing open is an orphan. An event without a pair (cover
open, an uncatalogued ID) is a single event, a duplicate when the same meter reported the same ID
less than its de-duplication window before.

An outage storm is coalesced: power-failure occurrences under one distribution transformer (or
feeder) less than a window apart, one after another, become one outage with the count of its
distinct meters, not one item per meter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from meter2cash.mdm.events.catalogue import BY_ID

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]

#: Roles of an event in pairing.
SINGLE, OCCURRENCE, RESTORATION = 0, 1, 2
#: What pairing made of an event.
OPENS, DUPLICATE, CLOSES, ORPHAN, ALONE = 0, 1, 2, 3, 4
DISPOSITIONS = ("opens", "duplicate", "closes", "orphan", "single")
#: Levels of an outage group: a transformer, a feeder, a meter on its own (no network known).
LEVEL_DT, LEVEL_FEEDER, LEVEL_METER = 0, 1, 2
LEVELS = ("dt", "feeder", "meter")

_SIZE = max(BY_ID) + 1
_PAIR_KEY = np.full(_SIZE, -1, dtype=np.int64)
_ROLE = np.zeros(_SIZE, dtype=np.int8)
for _e in BY_ID.values():
    if _e.restored_by is not None and _e.is15959_id is not None:
        _PAIR_KEY[_e.is15959_id], _ROLE[_e.is15959_id] = _e.is15959_id, OCCURRENCE
        _PAIR_KEY[_e.restored_by], _ROLE[_e.restored_by] = _e.is15959_id, RESTORATION


def event_roles(ids: npt.ArrayLike) -> tuple[IntArray, npt.NDArray[np.int8]]:
    """``(pair key, role)`` of each IS 15959 ID: the pair key is the occurrence's ID for both an
    occurrence and its restoration (-1 for a single event); the role is :data:`SINGLE`,
    :data:`OCCURRENCE` or :data:`RESTORATION`. IDs outside the catalogue are single."""
    ids = np.asarray(ids, dtype=np.int64)
    known = (ids >= 0) & (ids < _SIZE)
    safe = np.where(known, ids, 0)
    key = np.where(known, _PAIR_KEY[safe], -1)
    role = np.where(known, _ROLE[safe], SINGLE).astype(np.int8)
    return key, role


@dataclass(frozen=True, slots=True)
class Pairing:
    """What pairing made of each event, in input order.

    ``role``: :data:`SINGLE`, :data:`OCCURRENCE`, :data:`RESTORATION`. ``disposition``:
    :data:`OPENS` (an occurrence that opens an episode), :data:`DUPLICATE`, :data:`CLOSES` (a
    restoration that closes one), :data:`ORPHAN` (a restoration with nothing open) or
    :data:`ALONE` (a single event kept). ``episode``: the index of the occurrence that opened the
    episode an occurrence, duplicate or restoration belongs to (-1 for single events and
    orphans). ``closed_by``: for an opening occurrence, the index of the restoration that closes
    it (-1 while open)."""

    role: npt.NDArray[np.int8]
    disposition: npt.NDArray[np.int8]
    episode: IntArray
    closed_by: IntArray

    def counts(self) -> dict[str, int]:
        """Events by disposition name."""
        got = np.bincount(self.disposition, minlength=len(DISPOSITIONS))
        return {name: int(n) for name, n in zip(DISPOSITIONS, got, strict=True)}


def pair_events(
    meter: npt.ArrayLike,
    at: npt.ArrayLike,
    ids: npt.ArrayLike,
    *,
    dedupe_s: npt.ArrayLike = 0,
    prior: npt.ArrayLike | None = None,
) -> Pairing:
    """Pair occurrences with restorations and find duplicates (see the module docstring).

    Parameters
    ----------
    meter, at, ids : array_like of int
        Meter index, time [epoch s] and IS 15959 ID of each event.
    dedupe_s : int or array_like of int
        De-duplication window of each single event [s]: the same meter and ID again less than
        this after the previous report is a duplicate (0: only the same second).
    prior : array_like of bool, optional
        Rows that stand for episodes already open before this batch (their occurrence, at the
        time it opened): within their meter and pair they come first, so a restoration of the
        batch closes them.
    """
    meter = np.asarray(meter, dtype=np.int64)
    at = np.asarray(at, dtype=np.int64)
    n = meter.size
    key, role = event_roles(ids)
    ids_arr = np.asarray(ids, dtype=np.int64)
    window = np.broadcast_to(np.asarray(dedupe_s, dtype=np.int64), (n,))
    before = np.zeros(n, dtype=bool) if prior is None else np.asarray(prior, dtype=bool)
    disposition = np.full(n, ALONE, dtype=np.int8)
    episode = np.full(n, -1, dtype=np.int64)
    closed_by = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return Pairing(role, disposition, episode, closed_by)
    # single events (pair key -1) group by ID; paired ones by their pair
    group_key = np.where(key >= 0, key, -1 - ids_arr)
    order = np.lexsort((role, at, ~before, group_key, meter))
    m, g, t, r = meter[order], group_key[order], at[order], role[order]
    same = np.zeros(n, dtype=bool)
    same[1:] = (m[1:] == m[:-1]) & (g[1:] == g[:-1])
    prev_role = np.empty(n, dtype=np.int8)
    prev_role[0] = SINGLE
    prev_role[1:] = r[:-1]
    gap = np.zeros(n, dtype=np.int64)
    gap[1:] = t[1:] - t[:-1]

    d = np.full(n, ALONE, dtype=np.int8)
    occ, res, single = r == OCCURRENCE, r == RESTORATION, r == SINGLE
    opens = occ & (~same | (prev_role == RESTORATION))
    d[occ] = DUPLICATE
    d[opens] = OPENS
    closes = res & same & (prev_role == OCCURRENCE)
    d[res] = DUPLICATE
    d[closes] = CLOSES
    d[res & ~same] = ORPHAN
    d[single & same & (gap < window[order])] = DUPLICATE
    d[single & same & (gap == 0)] = DUPLICATE

    pos = np.arange(n, dtype=np.int64)
    group_start = np.maximum.accumulate(np.where(same, 0, pos))
    last_open = np.maximum.accumulate(np.where(opens, pos, -1))
    # a paired event belongs to the latest episode opened in its own meter and pair
    ep_sorted = np.where((occ | res) & (last_open >= group_start) & (d != ORPHAN), last_open, -1)
    disposition[order] = d
    episode[order] = np.where(ep_sorted >= 0, order[np.maximum(ep_sorted, 0)], -1)
    closer = np.flatnonzero(closes)
    closed_by[order[ep_sorted[closer]]] = order[closer]
    return Pairing(role, disposition, episode, closed_by)


@dataclass(frozen=True, slots=True)
class Outages:
    """Outages coalesced from power failures.

    ``outage`` (per input event): the index of its outage. Per outage: ``level``
    (:data:`LEVEL_DT`, :data:`LEVEL_FEEDER`, :data:`LEVEL_METER`), ``group`` (the transformer,
    feeder or meter index), ``started_at`` and ``last_at`` (first and last failure [epoch s]) and
    ``meters`` (distinct meters)."""

    outage: IntArray
    level: npt.NDArray[np.int8]
    group: IntArray
    started_at: IntArray
    last_at: IntArray
    meters: IntArray

    def __len__(self) -> int:
        return int(self.level.size)


def outage_groups(
    meter: npt.ArrayLike,
    meter_dt: npt.ArrayLike,
    meter_feeder: npt.ArrayLike,
    *,
    level: Literal["dt", "feeder"] = "dt",
) -> tuple[npt.NDArray[np.int8], IntArray]:
    """``(level, group)`` each meter's outage falls under: its transformer (``level="dt"``) or
    feeder (``"feeder"``); the other one when the first is unknown (-1); the meter itself when
    neither is known."""
    meter = np.asarray(meter, dtype=np.int64)
    dt = np.asarray(meter_dt, dtype=np.int64)[meter]
    feeder = np.asarray(meter_feeder, dtype=np.int64)[meter]
    first, second = (dt, feeder) if level == "dt" else (feeder, dt)
    lv_first, lv_second = (LEVEL_DT, LEVEL_FEEDER) if level == "dt" else (LEVEL_FEEDER, LEVEL_DT)
    lv = np.where(first >= 0, lv_first, np.where(second >= 0, lv_second, LEVEL_METER)).astype(np.int8)
    group = np.where(first >= 0, first, np.where(second >= 0, second, meter))
    return lv, group


def coalesce_outages(
    meter: npt.ArrayLike,
    at: npt.ArrayLike,
    meter_dt: npt.ArrayLike,
    meter_feeder: npt.ArrayLike,
    *,
    window_s: int,
    level: Literal["dt", "feeder"] = "dt",
) -> Outages:
    """One outage per transformer (or feeder) for power failures less than ``window_s`` apart.

    Parameters
    ----------
    meter, at : array_like of int
        Meter index and time [epoch s] of each power failure (occurrences that open an episode).
    meter_dt, meter_feeder : array_like of int
        Per meter index: its distribution transformer and feeder (-1 where unknown).
    window_s : int
        Failures of one group whose times follow each other by at most this [s] are one outage.
    level : ``"dt"`` or ``"feeder"``
        What an outage is coalesced under (see :func:`outage_groups`).
    """
    meter = np.asarray(meter, dtype=np.int64)
    at = np.asarray(at, dtype=np.int64)
    n = meter.size
    empty = np.zeros(0, dtype=np.int64)
    if n == 0:
        return Outages(empty, np.zeros(0, dtype=np.int8), empty, empty, empty, empty)
    lv, group = outage_groups(meter, meter_dt, meter_feeder, level=level)
    order = np.lexsort((at, group, lv))
    lv_s, g_s, t_s, m_s = lv[order], group[order], at[order], meter[order]
    new = np.ones(n, dtype=bool)
    new[1:] = (lv_s[1:] != lv_s[:-1]) | (g_s[1:] != g_s[:-1]) | (t_s[1:] - t_s[:-1] > window_s)
    cluster = np.cumsum(new) - 1
    outage = np.empty(n, dtype=np.int64)
    outage[order] = cluster
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], n) - 1
    pairs = np.unique(np.stack([cluster, m_s], axis=1), axis=0)
    meters = np.bincount(pairs[:, 0], minlength=starts.size).astype(np.int64)
    return Outages(outage, lv_s[starts], g_s[starts], t_s[starts], t_s[ends], meters)


@dataclass(frozen=True, slots=True)
class DemandCheck:
    """Demand against the sanctioned load, per channel-day row: whether it was exceeded, the
    maximum demand [kW] (NaN for a day without values), the slot of that maximum (-1 without
    values) and how many slots were above the limit."""

    violates: BoolArray
    max_kw: FloatArray
    slot: IntArray
    slots_over: IntArray


def demand_violations(
    energy: npt.ArrayLike, interval_s: int, sanctioned_kw: npt.ArrayLike, *, tolerance_pct: int = 0
) -> DemandCheck:
    """Demand of each interval against the sanctioned load of its row.

    Parameters
    ----------
    energy : array_like of float, shape (rows, slots)
        Energy per interval [kWh]; NaN where nothing is known.
    interval_s : int
        Interval length [s]: demand [kW] = energy × 3600 / ``interval_s``.
    sanctioned_kw : array_like of float, shape (rows,)
        Sanctioned load of each row [kW]; a row with 0 or less (unknown) never violates.
    tolerance_pct : int
        Demand up to this percentage above the sanctioned load is not a violation.
    """
    e = np.atleast_2d(np.asarray(energy, dtype=np.float64))
    limit = np.asarray(sanctioned_kw, dtype=np.float64) * (1 + tolerance_pct / 100)
    rows = e.shape[0]
    if e.size == 0:
        zero = np.zeros(rows, dtype=np.int64)
        return DemandCheck(np.zeros(rows, dtype=bool), np.full(rows, np.nan), zero - 1, zero)
    demand = e * (3600.0 / interval_s)
    known = ~np.isnan(demand)
    filled = np.where(known, demand, -np.inf)
    slot = np.argmax(filled, axis=1).astype(np.int64)
    any_known = known.any(axis=1)
    max_kw = np.where(any_known, filled[np.arange(rows), slot], np.nan)
    over = known & (filled > limit[:, None]) & (limit[:, None] > 0)
    slots_over = over.sum(axis=1).astype(np.int64)
    return DemandCheck(slots_over > 0, max_kw, np.where(any_known, slot, -1), slots_over)


def outage_slot_mask(
    starts: npt.ArrayLike, ends: npt.ArrayLike, day_start_s: int, slots: int, interval_s: int
) -> BoolArray:
    """Which intervals of a day lie in an outage: slot *i* covers ``[day_start_s + i·interval_s,
    + interval_s)`` and is marked when it overlaps any window ``[starts[k], ends[k])`` [epoch s].
    What outage-aware validation needs to tell a real zero from a missing one."""
    s = np.asarray(starts, dtype=np.int64)
    e = np.asarray(ends, dtype=np.int64)
    # per window, the first slot that ends after its start and the first slot starting at its end
    first = np.clip((s - day_start_s) // interval_s, 0, slots)
    stop = np.clip(-((day_start_s - e) // interval_s), 0, slots)
    delta = np.zeros(slots + 1, dtype=np.int64)
    keep = stop > first
    np.add.at(delta, first[keep], 1)
    np.add.at(delta, stop[keep], -1)
    mask: BoolArray = np.cumsum(delta[:-1]) > 0
    return mask
