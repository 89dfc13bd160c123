"""The value rules of VEE: pure kernels over ``(channels, intervals)`` arrays of values alone.

Rule names follow the VEE catalogue of DOMAIN.md (consecutive/missing interval, negative
consumption, interval spike, zero consumption) plus the stuck-register / flat-line check of the
leading MDMs. Conventions: :mod:`meter2cash.mdm.vee.types`.
"""

from __future__ import annotations

import numpy as np

from meter2cash.mdm.vee.codes import (
    INTERVAL_SPIKE,
    MISSING_INTERVAL,
    NEGATIVE_CONSUMPTION,
    STUCK_REGISTER,
    ZERO_RUN,
)
from meter2cash.mdm.vee.types import (
    BoolArray,
    FloatArray,
    RuleContext,
    RuleResult,
    find_runs,
    run_findings,
    runs_to_mask,
)


def row_quantile(values: FloatArray, q: float, usable: BoolArray) -> FloatArray:
    """Per-row quantile ``q`` (lower nearest rank) of ``values`` where ``usable``; NaN if none."""
    data = np.where(usable, values, np.inf)
    counts = usable.sum(axis=1)
    if not values.shape[1]:
        return np.full(len(counts), np.nan)
    idx = np.clip(np.floor(q * (counts - 1)).astype(np.int64), 0, values.shape[1] - 1)
    data.sort(axis=1)  # NumPy's vectorised sort beats np.partition on rows of a few thousand
    out = np.take_along_axis(data, idx[:, None], axis=1)[:, 0]
    return np.where(counts > 0, out, np.nan)


def missing_interval_check(values: FloatArray) -> RuleResult:
    """``vee.missing_interval``: one finding per run of missing (NaN) intervals.

    Parameters
    ----------
    values : (channels, intervals) float64 [unit per interval], NaN = not received.

    Returns
    -------
    RuleResult whose findings carry ``intervals`` (run length).
    """
    values = np.atleast_2d(values)
    mask = np.isnan(values)
    return RuleResult(mask, run_findings(MISSING_INTERVAL, mask, values, find_runs(mask)))


def negative_consumption_check(values: FloatArray, ctx: RuleContext) -> RuleResult:
    """``vee.negative_consumption``: a value below zero on an import energy channel.

    Export and bidirectional channels (``ctx.import_rows`` False) are not checked. Findings carry
    ``value``, the most negative value of the run [unit per interval].
    """
    values = np.atleast_2d(values)
    mask = values < 0
    if ctx.import_rows is not None:
        mask &= np.asarray(ctx.import_rows, dtype=bool)[:, None]
    return RuleResult(mask, run_findings(NEGATIVE_CONSUMPTION, mask, values, find_runs(mask)))


def interval_spike_check(
    values: FloatArray,
    ctx: RuleContext,
    *,
    quantile: float = 0.95,
    factor: float = 3.0,
    floor_per_hour: float = 2.0,
    neighbour_factor: float = 3.0,
) -> RuleResult:
    """``vee.interval_spike``: a value far above the channel's typical level and its neighbours.

    The threshold of a channel is ``max(floor_per_hour * interval_h, factor * level)`` where
    ``level`` is the ``quantile`` of its positive values over the window and ``ctx.history``.
    A spike exceeds the threshold AND ``neighbour_factor`` times the larger of its two neighbours
    (a missing neighbour does not count).

    Parameters
    ----------
    values : (channels, intervals) float64 [unit per interval].
    floor_per_hour : absolute floor as an hourly rate [unit/h, kW for kWh channels].

    Returns
    -------
    RuleResult; findings carry ``value`` and ``threshold`` [unit per interval].
    """
    values = np.atleast_2d(values)
    floor = floor_per_hour * ctx.interval_s / 3600.0
    # limit = max(floor, neighbour_factor x the larger neighbour); a missing neighbour counts as 0
    limit = np.empty_like(values)
    n = values.shape[1]
    if n > 2:
        np.fmax(values[:, :-2], values[:, 2:], out=limit[:, 1:-1])
    if n > 1:
        limit[:, 0], limit[:, -1] = values[:, 1], values[:, -2]
    else:
        limit[:] = np.nan
    np.fmax(limit, 0.0, out=limit)
    limit *= neighbour_factor
    np.maximum(limit, floor, out=limit)
    with np.errstate(invalid="ignore"):
        candidate = values > limit
    # The typical level (a per-row quantile, the costly part) is needed only where the largest
    # candidate could exceed factor x level: level < v/factor  <=>  more than rank(level) usable
    # values lie below v/factor. One counting pass rules out almost every channel exactly.
    with np.errstate(invalid="ignore"):
        biggest = np.where(candidate, values, -np.inf).max(axis=1) if values.shape[1] else np.zeros(0)
    rows = np.flatnonzero(biggest > -np.inf)
    level = np.full(values.shape[0], np.nan)
    ruled_out = np.zeros(values.shape[0], dtype=bool)
    if len(rows):
        parts = [values[rows]] if ctx.history is None else [ctx.history[rows], values[rows]]
        limit_q = (biggest[rows] / factor * (1 + 1e-9))[:, None]  # on the safe side of rounding
        usable = np.zeros(len(rows), dtype=np.int64)
        below = np.zeros(len(rows), dtype=np.int64)
        with np.errstate(invalid="ignore"):
            for part in parts:
                positive = part > 0
                usable += positive.sum(axis=1)
                below += (positive & (part < limit_q)).sum(axis=1)
        rank = np.floor(quantile * (usable - 1))
        possible = (below > rank) | (usable == 0)  # no usable values: the floor alone decides
        ruled_out[rows[~possible]] = True
        maybe = rows[possible & (usable > 0)]
        if len(maybe):
            pool = (
                values[maybe]
                if ctx.history is None
                else np.concatenate((ctx.history[maybe], values[maybe]), axis=1)
            )
            level[maybe] = row_quantile(pool, quantile, pool > 0)
    threshold = np.fmax(floor, factor * level)
    with np.errstate(invalid="ignore"):
        mask = candidate & ~ruled_out[:, None] & (values > threshold[:, None])
    return RuleResult(mask, run_findings(INTERVAL_SPIKE, mask, values, find_runs(mask), threshold=threshold))


def stuck_register_check(values: FloatArray, *, min_intervals: int = 16) -> RuleResult:
    """``vee.stuck_register`` (flat line): the same non-zero value for ``min_intervals`` or more.

    A meter whose register stopped, or a head-end repeating its last value, produces identical
    intervals; real consumption rarely repeats exactly for hours. Default 16 = 4 h at 15 min.
    Findings carry the repeated ``value``.
    """
    values = np.atleast_2d(values)
    same = np.zeros(values.shape, dtype=bool)
    same[:, 1:] = (values[:, 1:] == values[:, :-1]) & (values[:, 1:] != 0)
    rows, cols, lengths = find_runs(same, max(min_intervals - 1, 1))
    # a run of k "equal to the previous" flags covers k + 1 identical values
    runs = (rows, cols - 1, lengths + 1)
    mask = runs_to_mask(values.shape, *runs)
    return RuleResult(mask, run_findings(STUCK_REGISTER, mask, values, runs))


def zero_run_check(
    values: FloatArray, *, min_intervals: int = 16, outage: BoolArray | None = None
) -> RuleResult:
    """``vee.zero_run`` (zero consumption): ``min_intervals`` or more consecutive zeros.

    Zeros inside a recorded power outage (``outage``, the shape of ``values``) are valid and
    never found; other zeros can be real too (a vacant premise), so this is information by default.
    """
    values = np.atleast_2d(values)
    zeros = values == 0
    if outage is not None:
        zeros &= ~np.asarray(outage, dtype=bool)
    runs = find_runs(zeros, min_intervals)
    mask = runs_to_mask(values.shape, *runs)
    return RuleResult(mask, run_findings(ZERO_RUN, mask, values, runs))
