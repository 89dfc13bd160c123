"""More VEE validation rules: pure kernels over ``(channels, intervals)`` arrays and their context.

These complete the catalogue of DOMAIN.md beside :mod:`.rules`: register increase (with rollover),
sum check (interval sum vs register advance), high/low usage against the channel's own history,
dynamic statistical comparison, interval size / unit of measure / multiplier, inactive
measurement, duplicate IMD, final measurement replacement and prolonged estimation. Outage
windows (IS 15959 power-failure events 101/102) are turned into interval masks here too.

Conventions as in :mod:`.rules`: NaN = nothing received; a kernel returns a :class:`RuleResult`
whose mask marks the intervals found and one :class:`Finding` per run (or per channel-day for the
day-level checks, which cover the whole day).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from meter2cash.mdm.vee.registers import (
    POWER_FAIL_END,
    POWER_FAIL_START,
    REGISTER_DECREASE,
    REGISTER_ROLLOVER,
    SUM_CHECK,
    TOU_SUM_CHECK,
    _day_findings,
    outage_windows,
    register_advance,
    sum_check,
    tou_sum_check,
    window_mask,
)
from meter2cash.mdm.vee.rules import (
    BoolArray,
    Finding,
    FloatArray,
    RuleResult,
    _findings,
    find_runs,
    runs_to_mask,
)

HIGH_USAGE = "vee.high_usage"
LOW_USAGE = "vee.low_usage"
DYNAMIC_COMPARISON = "vee.dynamic_comparison"
INTERVAL_SIZE = "vee.interval_size"
UNIT_OF_MEASURE = "vee.unit_of_measure"
MULTIPLIER = "vee.multiplier"
INACTIVE_MEASUREMENT = "vee.inactive_measurement"
DUPLICATE_IMD = "vee.duplicate_imd"
ESTIMATE_REPLACED = "vee.estimate_replaced"
EDIT_KEPT = "vee.edit_kept"
PROLONGED_ESTIMATION = "vee.prolonged_estimation"
__all__ = [
    "CHECK_CODES",
    "POWER_FAIL_END",
    "POWER_FAIL_START",
    "outage_windows",
    "register_advance",
    "sum_check",
    "tou_sum_check",
    "window_mask",
]

CHECK_CODES = (
    REGISTER_DECREASE,
    REGISTER_ROLLOVER,
    SUM_CHECK,
    TOU_SUM_CHECK,
    HIGH_USAGE,
    LOW_USAGE,
    DYNAMIC_COMPARISON,
    INTERVAL_SIZE,
    UNIT_OF_MEASURE,
    MULTIPLIER,
    INACTIVE_MEASUREMENT,
    DUPLICATE_IMD,
    ESTIMATE_REPLACED,
    EDIT_KEPT,
    PROLONGED_ESTIMATION,
)

#: Units an energy interval (delta) channel may carry.
ENERGY_UNITS = frozenset({"Wh", "kWh", "MWh", "varh", "kvarh", "VAh", "kVAh", "MVAh"})


def _num(x: Any) -> float | None:
    x = float(x)
    return None if np.isnan(x) else round(x, 6)


# --- usage against the channel's own history -----------------------------------------------------


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
) -> tuple[RuleResult, RuleResult]:
    """``vee.high_usage`` / ``vee.low_usage``: a day's use against the channel's own history.

    The reference is the mean daily use over the history days with at least ``min_coverage`` of
    their intervals valid (at least ``min_history_days`` of them). A day above ``high_factor`` x
    or below ``low_factor`` x the reference fails (days with less coverage are not judged).
    Findings cover the whole day and carry ``day_total`` and ``reference`` [unit per day].
    """
    values = np.atleast_2d(values)
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
    return _day_findings(HIGH_USAGE, high, spd, data), _day_findings(LOW_USAGE, low, spd, data)


def dynamic_comparison_check(
    values: FloatArray,
    history: FloatArray,
    *,
    slots_per_day: int,
    z: float = 6.0,
    floor_per_hour: float = 1.0,
    interval_s: int = 900,
    min_history_days: int = 5,
) -> RuleResult:
    """``vee.dynamic_comparison``: an interval far from the statistics of its slot of day.

    For every channel and slot of day the history gives a mean and standard deviation (at least
    ``min_history_days`` valid values). An interval fails when
    ``|value - mean| > z * std + floor`` with ``floor = floor_per_hour * interval_h``. Findings
    carry ``value``, ``mean`` and ``std`` of the slot [unit per interval].
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
    runs = find_runs(mask)
    res = RuleResult(mask, _findings(DYNAMIC_COMPARISON, mask, values, runs))
    if res.findings:
        rows_f = np.array([f.row for f in res.findings])
        slots_f = np.array([f.first % spd for f in res.findings])
        means = np.round(mean[rows_f, slots_f], 6).tolist()
        stds = np.round(std[rows_f, slots_f], 6).tolist()
        for f, m, sd in zip(res.findings, means, stds, strict=True):
            f.data["mean"], f.data["std"] = m, sd
    return res


# --- channel metadata, activity, duplicates --------------------------------------------------------


def metadata_failures(
    *,
    interval_s: Sequence[int],
    expected_interval_s: Sequence[int | None],
    units: Sequence[str],
    multipliers: Sequence[float],
    allowed_units: frozenset[str] = ENERGY_UNITS,
    allowed_multipliers: Sequence[float] | None = None,
) -> tuple[BoolArray, BoolArray, BoolArray]:
    """The rows failing interval size, unit of measure and multiplier (see :func:`metadata_check`)."""
    size_bad = np.array(
        [e is not None and i != e for i, e in zip(interval_s, expected_interval_s, strict=True)], dtype=bool
    )
    unit_bad = np.array([u not in allowed_units for u in units], dtype=bool)
    mult = np.asarray(multipliers, dtype=np.float64)
    mult_bad = ~(mult > 0)
    if allowed_multipliers is not None:
        mult_bad |= ~np.isin(mult, np.asarray(allowed_multipliers, dtype=np.float64))
    return size_bad, unit_bad, mult_bad


def metadata_check(
    n: int,
    *,
    interval_s: Sequence[int],
    expected_interval_s: Sequence[int | None],
    units: Sequence[str],
    multipliers: Sequence[float],
    allowed_units: frozenset[str] = ENERGY_UNITS,
    allowed_multipliers: Sequence[float] | None = None,
) -> tuple[RuleResult, RuleResult, RuleResult]:
    """``vee.interval_size``, ``vee.unit_of_measure``, ``vee.multiplier`` for each channel row.

    A row fails interval size when the stored interval length differs from its reading type's;
    unit of measure when the reading type's unit is not an energy unit for interval data;
    multiplier when the channel's multiplier is not positive or not in ``allowed_multipliers``.
    A failing row is found over its whole window of ``n`` intervals.
    """
    rows = len(interval_s)
    size_bad, unit_bad, mult_bad = metadata_failures(
        interval_s=interval_s,
        expected_interval_s=expected_interval_s,
        units=units,
        multipliers=multipliers,
        allowed_units=allowed_units,
        allowed_multipliers=allowed_multipliers,
    )
    mult = np.asarray(multipliers, dtype=np.float64)

    def result(rule: str, bad: BoolArray, data: Callable[[int], dict[str, Any]]) -> RuleResult:
        mask = np.zeros((rows, n), dtype=bool)
        mask[bad.astype(bool)] = True
        return RuleResult(mask, [Finding(rule, int(r), 0, n, data(int(r))) for r in np.flatnonzero(bad)])

    return (
        result(
            INTERVAL_SIZE,
            size_bad.reshape(-1),
            lambda r: {"interval_s": interval_s[r], "expected_interval_s": expected_interval_s[r]},
        ),
        result(UNIT_OF_MEASURE, unit_bad, lambda r: {"unit": units[r]}),
        result(MULTIPLIER, mult_bad, lambda r: {"multiplier": float(mult[r])}),
    )


def inactive_measurement_check(values: FloatArray, active: BoolArray) -> RuleResult:
    """``vee.inactive_measurement``: data received for an interval in which the meter was not
    installed (or the channel not active). ``active`` has the shape of ``values``."""
    values = np.atleast_2d(values)
    mask = ~np.isnan(values) & ~np.asarray(active, dtype=bool)
    return RuleResult(mask, _findings(INACTIVE_MEASUREMENT, mask, values, find_runs(mask)))


def duplicate_imd_check(raw: FloatArray, earlier_raw: FloatArray) -> RuleResult:
    """``vee.duplicate_imd``: an interval received more than once with differing values.

    ``earlier_raw`` is the raw value of the earliest stored receipt of the same day (NaN where
    there was none). Identical repeats change nothing and are only counted by ingestion. Findings
    carry ``value`` (the newer value) and ``earlier`` (the first one received).
    """
    raw, earlier_raw = np.atleast_2d(raw), np.atleast_2d(earlier_raw)
    with np.errstate(invalid="ignore"):
        mask = np.abs(raw - earlier_raw) > 1e-9  # NaN on either side compares False
    res = RuleResult(mask, _findings(DUPLICATE_IMD, mask, raw, find_runs(mask)))
    for f in res.findings:
        f.data["earlier"] = float(earlier_raw[f.row, f.first])
    return res


def replacement_check(
    raw: FloatArray,
    prev_flags: npt.NDArray[np.uint16],
    *,
    estimated_bit: int,
    edited_bit: int,
    rejected_bit: int = 0,
) -> tuple[RuleResult, RuleResult]:
    """Final measurement replacement: which stored values a newer receipt may replace.

    ``prev_flags`` are the flags of the version being superseded (0 where none). An interval that
    was an estimate and now has actual data is replaced (``vee.estimate_replaced``); an interval
    a person edited keeps the edit (``vee.edit_kept``), whatever arrives later. Estimates of
    rejected values (``rejected_bit``) were made while the value was there: not a replacement.
    """
    raw = np.atleast_2d(raw)
    got = ~np.isnan(raw)
    flags = np.atleast_2d(prev_flags)
    # an estimate of a rejected value is not replaced by the same value arriving again
    replaced = got & ((flags & estimated_bit) != 0) & ((flags & (edited_bit | rejected_bit)) == 0)
    kept = (flags & edited_bit) != 0
    return (
        RuleResult(replaced, _findings(ESTIMATE_REPLACED, replaced, raw, find_runs(replaced))),
        RuleResult(kept, _findings(EDIT_KEPT, kept, raw, find_runs(kept))),
    )


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
