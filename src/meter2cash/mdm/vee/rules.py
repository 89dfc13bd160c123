"""VEE validation rules: pure kernels over ``(channels, intervals)`` arrays.

Every rule takes a 2-D float64 array ``values`` (one row per channel, one column per interval of
the same length; NaN = nothing received) and returns a :class:`RuleResult`: a boolean mask of the
intervals it found and one :class:`Finding` per run of consecutive found intervals. Rule names
follow the VEE catalogue of DOMAIN.md (consecutive/missing interval, negative consumption, interval
spike, zero consumption) plus the stuck-register / flat-line check of the leading MDMs.

Runs are found for the whole array at once: each row is padded with a ``False`` sentinel, the array
is flattened and ``np.diff`` marks run starts and ends, so no run crosses from one channel into the
next and no Python loop touches an interval.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from meter2cash.mdm.vee.config import RuleSet, intervals_for

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

MISSING_INTERVAL = "vee.missing_interval"
NEGATIVE_CONSUMPTION = "vee.negative_consumption"
INTERVAL_SPIKE = "vee.interval_spike"
STUCK_REGISTER = "vee.stuck_register"
ZERO_RUN = "vee.zero_run"
RULE_CODES = (MISSING_INTERVAL, NEGATIVE_CONSUMPTION, INTERVAL_SPIKE, STUCK_REGISTER, ZERO_RUN)


@dataclass(slots=True)
class Finding:
    """A run of intervals that failed one rule.

    ``row`` is the channel row of the array, ``first`` the first interval index, ``count`` the
    number of intervals; ``data`` is JSON-serialisable (the value, the threshold...).
    """

    rule: str
    row: int
    first: int
    count: int
    data: dict[str, Any] = field(default_factory=dict)
    action: str = "info"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(slots=True)
class RuleResult:
    mask: BoolArray
    findings: list[Finding]


@dataclass(frozen=True, slots=True)
class RuleContext:
    """What the rules know besides the values.

    ``interval_s`` is the interval length [s]; ``history`` an optional ``(channels, m)`` array of
    earlier validated values (NaN where not usable) that sets each channel's typical level;
    ``import_rows`` marks import energy channels (default: every row).
    """

    interval_s: int
    history: FloatArray | None = None
    import_rows: BoolArray | None = None
    #: Intervals inside a recorded power outage (zeros there are valid), shape of ``values``.
    outage: BoolArray | None = None
    #: Intervals in which the meter was installed and the channel active, shape of ``values``.
    active: BoolArray | None = None
    #: Raw values of the earliest stored receipt of each day (duplicate IMD), shape of ``values``.
    earlier_raw: FloatArray | None = None
    #: Flags of the version being superseded (replacement rules), shape of ``values``.
    prev_flags: npt.NDArray[np.uint16] | None = None
    #: Register advance per UTC day ``(channels, days)`` for the sum check; NaN = unknown.
    day_advance: FloatArray | None = None
    #: Per row: stored interval length, reading type's interval length, unit, multiplier.
    metadata: tuple[list[int], list[int | None], list[str], list[float]] | None = None


# --- run helpers -------------------------------------------------------------------------------


def find_runs(mask: BoolArray, min_length: int = 1) -> tuple[IntArray, IntArray, IntArray]:
    """Runs of ``True`` in each row of a 2-D ``mask``: ``(rows, first columns, lengths)``.

    Only runs of at least ``min_length`` are returned, ordered by row then column.
    """
    mask = np.atleast_2d(mask)
    n = mask.shape[1]
    which = np.flatnonzero(mask.any(axis=1))  # masks are usually sparse: only rows with a run
    sub = mask[which]
    padded = np.zeros((len(which), n + 2), dtype=np.int8)  # a False column on both sides
    padded[:, 1:-1] = sub
    edges = np.diff(padded.ravel())
    starts = np.flatnonzero(edges == 1)
    lengths = np.flatnonzero(edges == -1) - starts
    keep = lengths >= min_length
    rows, cols = np.divmod(starts[keep], n + 2)
    return which[rows].astype(np.int64), cols.astype(np.int64), lengths[keep].astype(np.int64)


def runs_to_mask(shape: tuple[int, int], rows: IntArray, cols: IntArray, lengths: IntArray) -> BoolArray:
    """The boolean mask covering the given runs (the inverse of :func:`find_runs`)."""
    n_rows, n = shape
    delta = np.zeros((n_rows, n + 1), dtype=np.int32)
    np.add.at(delta, (rows, cols), 1)
    np.add.at(delta, (rows, cols + lengths), -1)
    return np.cumsum(delta, axis=1)[:, :n] > 0


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


def _findings(
    rule: str, mask: BoolArray, values: FloatArray, runs: tuple[IntArray, IntArray, IntArray], **extra: Any
) -> list[Finding]:
    """One finding per run, with the run's extreme value when the intervals hold numbers."""
    rows, cols, lengths = runs
    extreme = _run_extremes(values, rows, cols, lengths)
    extras = {k: (np.asarray(v, dtype=np.float64) if np.ndim(v) else float(v)) for k, v in extra.items()}
    out: list[Finding] = []
    for i, (r, c, n) in enumerate(zip(rows.tolist(), cols.tolist(), lengths.tolist(), strict=True)):
        data: dict[str, Any] = {"intervals": n}
        if not np.isnan(extreme[i]):
            data["value"] = float(extreme[i])
        for key, per_row in extras.items():
            data[key] = float(per_row[r]) if isinstance(per_row, np.ndarray) else per_row
        out.append(Finding(rule, r, c, n, data))
    return out


def _run_extremes(values: FloatArray, rows: IntArray, cols: IntArray, lengths: IntArray) -> FloatArray:
    """The value of largest magnitude in each run (NaN for a run of NaN), without a Python loop."""
    if len(rows) == 0:
        return np.zeros(0)
    n = values.shape[1]
    flat = values.ravel()
    starts = rows * n + cols
    idx = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))
    seg = flat[idx]
    offsets = np.cumsum(lengths) - lengths
    with np.errstate(invalid="ignore"):
        hi = np.fmax.reduceat(seg, offsets)
        lo = np.fmin.reduceat(seg, offsets)
    return np.where(np.isnan(lo) | (np.abs(hi) >= np.abs(lo)), hi, lo)


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
    return RuleResult(mask, _findings(MISSING_INTERVAL, mask, values, find_runs(mask)))


def negative_consumption_check(values: FloatArray, ctx: RuleContext) -> RuleResult:
    """``vee.negative_consumption``: a value below zero on an import energy channel.

    Export and bidirectional channels (``ctx.import_rows`` False) are not checked. Findings carry
    ``value``, the most negative value of the run [unit per interval].
    """
    values = np.atleast_2d(values)
    mask = values < 0
    if ctx.import_rows is not None:
        mask &= np.asarray(ctx.import_rows, dtype=bool)[:, None]
    return RuleResult(mask, _findings(NEGATIVE_CONSUMPTION, mask, values, find_runs(mask)))


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
    return RuleResult(mask, _findings(INTERVAL_SPIKE, mask, values, find_runs(mask), threshold=threshold))


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
    return RuleResult(mask, _findings(STUCK_REGISTER, mask, values, runs))


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
    return RuleResult(mask, _findings(ZERO_RUN, mask, values, runs))


# --- a whole rule set --------------------------------------------------------------------------


@dataclass(slots=True)
class Evaluation:
    """The outcome of a rule set over an array: findings plus what to do with the intervals."""

    findings: list[Finding]
    rejected: BoolArray
    suspect: BoolArray


def evaluate(
    values: FloatArray, ctx: RuleContext, rule_set: RuleSet | None = None, *, fused: bool = True
) -> Evaluation:
    """Run every enabled rule of ``rule_set`` over ``values``; apply each rule's action.

    ``reject`` marks intervals REJECTED (to be estimated), ``flag`` marks them SUSPECT, ``info``
    records the finding only. Missing intervals are estimated whatever the action.

    With ``fused`` (the default) the whole rule set runs in one compiled pass per channel
    (:mod:`.fused`); without, rule function by rule function. Both give the same findings, in
    the same order, and the same masks.
    """
    rs = rule_set or RuleSet()
    cfg = rs.rules
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    if fused and values.size and values.ndim == 2:
        from meter2cash.mdm.vee.fused import contiguous, evaluate_fused  # Numba loads on first use

        c_values = contiguous(values, np.float64, values.shape)
        ev = None if c_values is None else evaluate_fused(c_values, ctx, rs)
        if ev is not None:
            return ev
    results: list[tuple[str, RuleResult]] = []
    if cfg.missing_interval.enabled:
        results.append((cfg.missing_interval.action, missing_interval_check(values)))
    if cfg.negative_consumption.enabled:
        results.append((cfg.negative_consumption.action, negative_consumption_check(values, ctx)))
    if cfg.interval_spike.enabled:
        sp = cfg.interval_spike
        res = interval_spike_check(
            values,
            ctx,
            quantile=sp.quantile,
            factor=sp.factor,
            floor_per_hour=sp.floor_per_hour,
            neighbour_factor=sp.neighbour_factor,
        )
        results.append((sp.action, res))
    if cfg.stuck_register.enabled:
        n = intervals_for(cfg.stuck_register.min_hours, ctx.interval_s)
        results.append((cfg.stuck_register.action, stuck_register_check(values, min_intervals=n)))
    if cfg.zero_run.enabled:
        n = intervals_for(cfg.zero_run.min_hours, ctx.interval_s)
        results.append((cfg.zero_run.action, zero_run_check(values, min_intervals=n, outage=ctx.outage)))
    from meter2cash.mdm.vee.engine import context_rules  # engine imports this module

    results.extend(context_rules(values, ctx, rs))
    rejected = np.zeros(values.shape, dtype=bool)
    suspect = np.zeros(values.shape, dtype=bool)
    findings: list[Finding] = []
    for action, res in results:
        if action == "reject":
            rejected |= res.mask
        elif action in ("flag", "exception"):
            suspect |= res.mask
        for f in res.findings:  # each rule's findings are fresh objects: set the action in place
            f.action = action
        findings.extend(res.findings)
    missing = np.isnan(values)
    return Evaluation(findings, rejected & ~missing, suspect & ~missing & ~rejected)
