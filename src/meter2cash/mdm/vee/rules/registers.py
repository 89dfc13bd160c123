"""Registers and outage windows: register increase with rollover, the sum check, TOU sums, and
the interval masks of time windows (outages from IS 15959 power-failure events, installations) and
the zeros of the intervals not received inside an outage.

Pure NumPy kernels; conventions as in :mod:`meter2cash.mdm.vee.types` (NaN = nothing received).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from meter2cash.mdm.vee.codes import REGISTER_DECREASE, REGISTER_ROLLOVER, SUM_CHECK
from meter2cash.mdm.vee.types import BoolArray, Finding, FloatArray, IntArray, RuleResult, day_findings

#: IS 15959 power-failure events: occurrence (start of the outage) and restoration (end).
POWER_FAIL_START = "101"
POWER_FAIL_END = "102"


# --- time windows → interval masks ---------------------------------------------------------------


def window_mask(starts: IntArray, ends: IntArray, *, t0: int, n: int, interval_s: int) -> BoolArray:
    """Intervals of ``[t0, t0 + n*interval_s)`` overlapping any window ``[starts[i], ends[i])``.

    Times are epoch seconds. An interval overlapping a window only partly counts as inside.
    """
    mask = np.zeros(n + 1, dtype=np.int32)
    s = np.clip((np.asarray(starts, dtype=np.int64) - t0) // interval_s, 0, n)
    e = np.clip(-((t0 - np.asarray(ends, dtype=np.int64)) // interval_s), 0, n)  # ceil
    keep = e > s
    np.add.at(mask, s[keep], 1)
    np.add.at(mask, e[keep], -1)
    return np.cumsum(mask[:n]) > 0


def outage_windows(
    times: IntArray, codes: Sequence[str], *, since: int, until: int
) -> tuple[IntArray, IntArray]:
    """Pair power-failure events (``101`` start, ``102`` end) into outage windows [epoch s].

    ``times`` are in time order. A start without an end lasts until ``until``; an end without a
    start (the outage began before the events given) starts at ``since``; a repeated start keeps
    the first.
    """
    starts: list[int] = []
    ends: list[int] = []
    open_at: int | None = None
    for t, code in zip(np.asarray(times, dtype=np.int64).tolist(), codes, strict=True):
        if code == POWER_FAIL_START and open_at is None:
            open_at = t
        elif code == POWER_FAIL_END:
            starts.append(since if open_at is None else open_at)
            ends.append(t)
            open_at = None
    if open_at is not None:
        starts.append(open_at)
        ends.append(until)
    return np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)


def outage_rows(
    events: dict[int, list[tuple[int, str]]], rows: list[int], *, t0: int, n: int, interval_s: int, since: int
) -> BoolArray:
    """Outage masks ``(len(rows), n)`` from power-failure events per row key (epoch s, code)."""
    mask = np.zeros((len(rows), n), dtype=bool)
    until = t0 + n * interval_s
    for r, key in enumerate(rows):
        evs = sorted(events.get(key, []))
        if not evs:
            continue
        starts, ends = outage_windows(
            np.array([t for t, _ in evs], dtype=np.int64), [c for _, c in evs], since=since, until=until
        )
        mask[r] = window_mask(starts, ends, t0=t0, n=n, interval_s=interval_s)
    return mask


def fill_outage_gaps(values: FloatArray, outage: BoolArray) -> tuple[FloatArray, BoolArray]:
    """Intervals with nothing received inside a recorded outage become 0 (no supply, no energy).

    ``outage`` has the shape of ``values``. Returns ``(values with those intervals 0, the mask of
    the intervals filled)``; other values are unchanged, and ``values`` itself is returned when
    nothing is filled.
    """
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    outage = np.asarray(outage, dtype=bool)
    if not outage.any():  # the usual case: one pass over the mask only
        return values, np.zeros(values.shape, dtype=bool)
    filled = np.isnan(values) & outage
    if not filled.any():
        return values, filled
    return np.where(filled, 0.0, values), filled


# --- registers -----------------------------------------------------------------------------------


def register_advance(reads: FloatArray, *, rollover: float | None = None) -> tuple[FloatArray, RuleResult]:
    """Advance between consecutive cumulative register reads, with rollover.

    ``reads`` is ``(channels, k)`` in time order (NaN = no read). A cumulative register never
    decreases; a decrease from above 90% of ``rollover`` (the register's capacity, e.g. 1e6 for
    six digits) to below 10% of it is a rollover: the advance is ``cur + rollover - prev``
    (``vee.register_rollover``, info). Any other decrease is ``vee.register_decrease``.

    Returns ``(advance, result)``: ``advance[:, j]`` is the advance from the last read before
    ``j`` to read ``j`` (NaN if either is missing or the register decreased); findings point at
    the read index ``j``.
    """
    reads = np.atleast_2d(np.asarray(reads, dtype=np.float64))
    prev = np.full_like(reads, np.nan)
    prev[:, 1:] = reads[:, :-1]
    adv = reads - prev
    with np.errstate(invalid="ignore"):
        down = adv < 0
        rolled = np.zeros_like(down)
        if rollover:
            rolled = down & (prev > 0.9 * rollover) & (reads < 0.1 * rollover)
            adv = np.where(rolled, reads + rollover - prev, adv)
    bad = down & ~rolled
    adv = np.where(bad, np.nan, adv)
    findings = [
        Finding(
            REGISTER_DECREASE, int(r), int(c), 1, {"value": float(reads[r, c]), "previous": float(prev[r, c])}
        )
        for r, c in zip(*np.nonzero(bad), strict=True)
    ] + [
        Finding(
            REGISTER_ROLLOVER, int(r), int(c), 1, {"value": float(reads[r, c]), "previous": float(prev[r, c])}
        )
        for r, c in zip(*np.nonzero(rolled), strict=True)
    ]
    return adv, RuleResult(bad | rolled, findings)


def sum_check(
    values: FloatArray,
    day_advance: FloatArray,
    *,
    slots_per_day: int,
    tolerance: float = 0.01,
    tolerance_rel: float = 0.02,
) -> RuleResult:
    """``vee.sum_check``: a complete day's interval sum differs from the register advance.

    ``day_advance`` is ``(channels, days)``: the cumulative register's advance over each UTC day
    [same unit as the intervals], NaN when there are no reads at both midnights. Only days with
    every interval received are compared. A day fails when
    ``|sum - advance| > tolerance + tolerance_rel * advance``. Findings cover the whole day and
    carry ``interval_sum``, ``register_advance`` and ``difference``.
    """
    values = np.atleast_2d(values)
    n_rows = values.shape[0]
    cube = values.reshape(n_rows, -1, slots_per_day)
    total = cube.sum(axis=2)  # NaN when any interval is missing
    diff = total - day_advance
    with np.errstate(invalid="ignore"):
        bad = np.abs(diff) > tolerance + tolerance_rel * np.abs(day_advance)
    return day_findings(
        SUM_CHECK,
        bad,
        slots_per_day,
        {"interval_sum": total, "register_advance": day_advance, "difference": diff},
    )


def tou_sum_check(
    total: FloatArray, tou: FloatArray, *, tolerance: float = 0.01, tolerance_rel: float = 0.0
) -> BoolArray:
    """``vee.tou_sum_check``: TOU register advances ``(channels, periods, k)`` must sum to ``total``
    ``(channels, k)`` within ``tolerance + tolerance_rel * |total|``; returns the ``(channels, k)``
    mask of failures. A period where the total or any tier is unknown (NaN) is not judged."""
    total = np.atleast_2d(np.asarray(total, dtype=np.float64))
    tou = np.asarray(tou, dtype=np.float64)
    known = ~np.isnan(total) & ~np.isnan(tou).any(axis=1)
    with np.errstate(invalid="ignore"):
        bad = np.abs(np.nansum(tou, axis=1) - total) > tolerance + tolerance_rel * np.abs(total)
    return np.asarray(known & bad)
