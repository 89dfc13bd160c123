"""VEE rules against the channel's own history: high/low usage, dynamic statistical comparison and
prolonged estimation.

The history is the validated values of the days before the window (NaN where not usable: nothing
received, rejected, or an estimate). Conventions: :mod:`meter2cash.mdm.vee.types`; the day-level
rules cover whole days, one finding per channel-day.
"""

from __future__ import annotations

import numpy as np

from meter2cash.mdm.vee.codes import DYNAMIC_COMPARISON, HIGH_USAGE, LOW_USAGE, PROLONGED_ESTIMATION
from meter2cash.mdm.vee.types import (
    BoolArray,
    Finding,
    FloatArray,
    RuleResult,
    day_findings,
    find_runs,
    run_findings,
    runs_to_mask,
)


def _daily(values: FloatArray, spd: int, min_coverage: float) -> FloatArray:
    """Day totals scaled up for missing intervals; NaN below ``min_coverage`` of the day."""
    cube = values.reshape(values.shape[0], -1, spd)
    valid = ~np.isnan(cube)
    got = valid.sum(axis=2)
    total = np.where(valid, cube, 0.0).sum(axis=2)
    return np.where(got >= min_coverage * spd, total * spd / np.maximum(got, 1), np.nan)


def high_low_usage_check(
    values: FloatArray,
    history: FloatArray,
    *,
    slots_per_day: int,
    high_factor: float = 3.0,
    low_factor: float = 0.2,
    min_history_days: int = 3,
    min_coverage: float = 0.5,
    outage: BoolArray | None = None,
) -> tuple[RuleResult, RuleResult]:
    """``vee.high_usage`` / ``vee.low_usage``: a day's use against the channel's own history.

    The reference is the mean daily use over the history days with at least ``min_coverage`` of
    their intervals valid (at least ``min_history_days`` of them). A day above ``high_factor`` x
    or below ``low_factor`` x the reference fails (days with less coverage are not judged).
    Intervals inside a recorded outage (``outage``, the shape of ``values``) count as not
    received: the day's use is that of its supplied intervals, scaled up like missing ones.
    Findings cover the whole day and carry ``day_total`` and ``reference`` [unit per day].
    """
    values = np.atleast_2d(values)
    if outage is not None:
        values = np.where(np.asarray(outage, dtype=bool), np.nan, values)
    spd = slots_per_day
    day = _daily(values, spd, min_coverage)
    hist = (
        _daily(np.atleast_2d(history), spd, min_coverage)
        if history.shape[1]
        else np.empty((values.shape[0], 0))
    )
    n_ok = (~np.isnan(hist)).sum(axis=1)
    ref = np.where(n_ok >= min_history_days, np.nansum(hist, axis=1) / np.maximum(n_ok, 1), np.nan)[:, None]
    ref_b = np.broadcast_to(ref, day.shape)
    with np.errstate(invalid="ignore"):
        high = day > high_factor * ref_b
        low = (day < low_factor * ref_b) & (ref_b > 0)
    data = {"day_total": day, "reference": ref_b}
    return day_findings(HIGH_USAGE, high, spd, data), day_findings(LOW_USAGE, low, spd, data)


def dynamic_comparison_check(
    values: FloatArray,
    history: FloatArray,
    *,
    slots_per_day: int,
    z: float = 6.0,
    floor_per_hour: float = 1.0,
    interval_s: int = 900,
    min_history_days: int = 5,
    outage: BoolArray | None = None,
) -> RuleResult:
    """``vee.dynamic_comparison``: an interval far from the statistics of its slot of day.

    For every channel and slot of day the history gives a mean and standard deviation (at least
    ``min_history_days`` valid values). An interval fails when
    ``|value - mean| > z * std + floor`` with ``floor = floor_per_hour * interval_h``; intervals
    inside a recorded outage (``outage``, the shape of ``values``) never do. Findings carry
    ``value``, ``mean`` and ``std`` of the slot [unit per interval].
    """
    values = np.atleast_2d(values)
    n_rows, n = values.shape
    spd = slots_per_day
    h = np.atleast_2d(history).reshape(n_rows, -1, spd)
    valid = ~np.isnan(h)
    cnt = valid.sum(axis=1)
    hz = np.where(valid, h, 0.0)
    mean = hz.sum(axis=1) / np.maximum(cnt, 1)
    var = (hz * hz).sum(axis=1) / np.maximum(cnt, 1) - mean * mean
    std = np.sqrt(np.maximum(var, 0.0))
    usable = cnt >= min_history_days
    limit = np.where(usable, z * std + floor_per_hour * interval_s / 3600.0, np.inf)
    days = n // spd
    cube = values.reshape(n_rows, days, spd)
    with np.errstate(invalid="ignore"):
        mask = (np.abs(cube - mean[:, None, :]) > limit[:, None, :]).reshape(n_rows, n)
    if outage is not None:
        mask &= ~np.asarray(outage, dtype=bool)
    runs = find_runs(mask)
    res = RuleResult(mask, run_findings(DYNAMIC_COMPARISON, mask, values, runs))
    if res.findings:
        rows_f = np.array([f.row for f in res.findings])
        slots_f = np.array([f.first % spd for f in res.findings])
        means = np.round(mean[rows_f, slots_f], 6).tolist()
        stds = np.round(std[rows_f, slots_f], 6).tolist()
        for f, m, sd in zip(res.findings, means, stds, strict=True):
            f.data["mean"], f.data["std"] = m, sd
    return res


def prolonged_estimation_check(estimated: BoolArray, *, min_intervals: int, offset: int = 0) -> RuleResult:
    """``vee.prolonged_estimation``: ``min_intervals`` or more consecutive estimated intervals.

    ``estimated`` covers history and window; only the part from column ``offset`` on is returned
    (the window), but a run that began in the history counts with its full length
    (``data.run_intervals``).
    """
    estimated = np.atleast_2d(estimated)
    rows, cols, lengths = find_runs(estimated, min_intervals)
    end = cols + lengths
    keep = end > offset
    rows, cols, end, lengths = rows[keep], cols[keep], end[keep], lengths[keep]
    c0 = np.maximum(cols, offset)
    shape = (estimated.shape[0], estimated.shape[1] - offset)
    mask = runs_to_mask(shape, rows, c0 - offset, end - c0)
    out = [
        Finding(
            PROLONGED_ESTIMATION,
            int(r),
            int(c - offset),
            int(e - c),
            {"intervals": int(e - c), "run_intervals": int(n)},
        )
        for r, c, e, n in zip(rows, c0, end, lengths, strict=True)
    ]
    return RuleResult(mask, out)
