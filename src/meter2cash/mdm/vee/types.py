"""The types every VEE rule shares: arrays, findings, rule results, the rules' context, runs.

A rule takes a 2-D float64 array ``values`` (one row per channel, one column per interval of the
same length; NaN = nothing received) and returns a :class:`RuleResult`: a boolean mask of the
intervals it found and one :class:`Finding` per run of consecutive found intervals (or per
channel-day for the day-level rules, :func:`day_findings`).

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

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]


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
    #: Intervals inside a recorded power outage, shape of ``values``: zeros there are valid, and
    #: an interval not received there is a zero (docs/vee.md, "Outages").
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


@dataclass(slots=True)
class Evaluation:
    """The outcome of a rule set over an array: findings plus what to do with the intervals."""

    findings: list[Finding]
    rejected: BoolArray
    suspect: BoolArray


# --- runs ----------------------------------------------------------------------------------------


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


def run_findings(
    rule: str, mask: BoolArray, values: FloatArray, runs: tuple[IntArray, IntArray, IntArray], **extra: Any
) -> list[Finding]:
    """One finding per run, with the run's extreme value when the intervals hold numbers.

    ``extra`` values go into every finding's data: a scalar as it is, an array by the run's row.
    """
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


def day_findings(rule: str, mask_days: BoolArray, spd: int, data: dict[str, FloatArray]) -> RuleResult:
    """Whole-day findings from a ``(channels, days)`` mask; ``data`` arrays share that shape."""
    rows, days = np.nonzero(mask_days)
    cols = {k: np.round(np.asarray(v, dtype=np.float64)[rows, days], 6).tolist() for k, v in data.items()}
    out = [
        Finding(rule, r, d * spd, spd, {k: (None if x != x else x) for k, x in zip(cols, vals, strict=True)})
        for r, d, *vals in zip(rows.tolist(), days.tolist(), *cols.values(), strict=True)
    ]
    return RuleResult(np.repeat(mask_days, spd, axis=1), out)
