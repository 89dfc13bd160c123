"""VEE estimation: pure kernels that fill missing or rejected intervals.

Inputs are ``(channels, intervals)`` float64 arrays where NaN marks an interval to fill (nothing
received, or the received value was rejected). A kernel never changes a non-NaN value. Methods
(DOMAIN.md, VEE catalogue, "Estimation"):

* :func:`linear_interpolation` — short gaps with a valid value on both sides;
* :func:`like_day_profile` — historical like-days: the mean of the same interval slot over the
  valid days of the same day type (weekday / weekend) in the window and its history.

:func:`estimate` applies both in that order and returns an ``int8`` method code per interval so a
service can count estimates by method; :func:`quality_flags` turns the outcome into the
per-interval :class:`~meter2cash.core.quality.Quality` bits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from meter2cash.core.quality import FLAG_DTYPE, Quality
from meter2cash.mdm.vee.types import BoolArray, FloatArray, find_runs

MethodArray = npt.NDArray[np.int8]

NOT_ESTIMATED = 0
LINEAR_INTERPOLATION = 1
LIKE_DAY_PROFILE = 2
LEARNED = 3
SCALAR_ADJUSTED = 4
AVERAGE_DAILY_USE = 5
OUTAGE_ZERO = 6
METHOD_NAMES: dict[int, str] = {
    LINEAR_INTERPOLATION: "linear_interpolation",
    LIKE_DAY_PROFILE: "like_day_profile",
    LEARNED: "learned",
    SCALAR_ADJUSTED: "scalar_adjusted",
    AVERAGE_DAILY_USE: "average_daily_use",
    OUTAGE_ZERO: "outage_zero",
}

WEEKDAY = 0
WEEKEND = 1

#: The bits :func:`quality_flags` sets: missing, rejected, suspect, estimated.
_FLAG_BITS = np.array(
    [Quality.MISSING, Quality.REJECTED, Quality.SUSPECT, Quality.ESTIMATED], dtype=FLAG_DTYPE
)


@dataclass(slots=True)
class Estimate:
    """Filled values (NaN where nothing could estimate) and the method code of every interval."""

    values: FloatArray
    method: MethodArray

    def counts(self) -> dict[str, int]:
        """Estimated intervals by method name."""
        found = np.bincount(self.method.ravel().astype(np.int64), minlength=len(METHOD_NAMES) + 1)
        return {name: int(found[code]) for code, name in METHOD_NAMES.items()}


def _target(values: FloatArray, target: BoolArray | None) -> BoolArray:
    gaps = np.isnan(values)
    return gaps if target is None else gaps & np.asarray(target, dtype=bool)


def linear_interpolation(
    values: FloatArray, *, max_interp_intervals: int = 8, target: BoolArray | None = None
) -> tuple[FloatArray, BoolArray]:
    """Fill gaps of at most ``max_interp_intervals`` lying between two valid values.

    A gap of ``n`` intervals between ``a`` (before) and ``b`` (after) gets
    ``a + (b - a) * k / (n + 1)`` for ``k = 1..n`` [unit per interval]. Gaps touching either edge
    of a row, or longer than the limit, are left NaN. Default 8 = 2 h at 15 min.

    Parameters
    ----------
    values : (channels, intervals) float64, NaN = to fill.
    target : optional mask of intervals that may be written (others stay as they are).

    Returns
    -------
    (filled copy of ``values``, mask of the intervals filled)
    """
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    out = values.copy()
    n = values.shape[1]
    rows, cols, lengths = find_runs(np.isnan(values))
    ok = (lengths <= max_interp_intervals) & (cols > 0) & (cols + lengths < n)
    rows, cols, lengths = rows[ok], cols[ok], lengths[ok]
    filled = np.zeros(values.shape, dtype=bool)
    if len(rows) == 0:
        return out, filled
    before = values[rows, cols - 1]
    after = values[rows, cols + lengths]
    run_of = np.repeat(np.arange(len(rows)), lengths)
    offset = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    r = rows[run_of]
    c = cols[run_of] + offset
    frac = (offset + 1) / (lengths[run_of] + 1)
    est = before[run_of] + (after[run_of] - before[run_of]) * frac
    write = _target(values, target)[r, c]
    out[r[write], c[write]] = est[write]
    filled[r[write], c[write]] = True
    return out, filled


def like_day_profile(
    values: FloatArray,
    *,
    slots_per_day: int,
    day_types: Sequence[int] | npt.NDArray[np.integer],
    target: BoolArray | None = None,
    min_days: int = 1,
    window_days: int | None = None,
) -> tuple[FloatArray, BoolArray]:
    """Fill each gap with the mean of the same slot on valid days of the same day type.

    With ``window_days`` only like-days within that many days before or after count (recent
    weeks); without, every day of the array does.

    ``values`` covers whole days: ``intervals == len(day_types) * slots_per_day``, column
    ``d * slots_per_day + s`` being slot ``s`` of day ``d``. For every channel, day type and slot
    the profile is the mean of the non-NaN values of that slot over the days of that type (the
    day being estimated contributes nothing there, since its value is NaN). A slot with fewer than
    ``min_days`` valid like-days stays NaN.

    Parameters
    ----------
    values : (channels, days * slots_per_day) float64 [unit per interval], NaN = to fill.
    day_types : (days,) int, e.g. 0 weekday and 1 weekend (see :func:`day_types_for`).

    Returns
    -------
    (filled copy of ``values``, mask of the intervals filled)
    """
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    types = np.asarray(day_types, dtype=np.int64)
    n = values.shape[1]
    if n != len(types) * slots_per_day:
        raise ValueError(f"{n} intervals are not {len(types)} days of {slots_per_day} slots")
    flat = profile_of(
        values, slots_per_day=slots_per_day, day_types=types, min_days=min_days, window_days=window_days
    )
    fill = _target(values, target) & ~np.isnan(flat)
    out = np.where(fill, flat, values)
    return out, fill


def profile_of(
    values: FloatArray,
    *,
    slots_per_day: int,
    day_types: npt.NDArray[np.integer],
    min_days: int = 1,
    window_days: int | None = None,
) -> FloatArray:
    """The like-day profile value of every interval (NaN where fewer than ``min_days`` like-days).

    The mean of the same slot over the valid days of the same type, over the whole array or
    within ``window_days`` days on either side (cumulative sums over days: no loop over days).
    """
    n_rows, n = values.shape
    types = np.asarray(day_types, dtype=np.int64)
    n_days = len(types)
    cube = values.reshape(n_rows, n_days, slots_per_day)
    valid = ~np.isnan(cube)
    vz = np.where(valid, cube, 0.0)
    profile = np.full_like(cube, np.nan)
    for t in np.unique(types):  # a handful of day types, each a whole-array operation
        sel = types == t
        if window_days is None:
            total = vz[:, sel].sum(axis=1, keepdims=True)
            count = valid[:, sel].sum(axis=1, keepdims=True)
        else:
            w = np.where(sel[None, :, None], vz, 0.0)
            c = (valid & sel[None, :, None]).astype(np.float64)
            cs = np.concatenate((np.zeros((n_rows, 1, slots_per_day)), np.cumsum(w, axis=1)), axis=1)
            cc = np.concatenate((np.zeros((n_rows, 1, slots_per_day)), np.cumsum(c, axis=1)), axis=1)
            days = np.flatnonzero(sel)
            lo = np.clip(days - window_days, 0, n_days)
            hi = np.clip(days + window_days + 1, 0, n_days)
            total = cs[:, hi] - cs[:, lo]
            count = cc[:, hi] - cc[:, lo]
        mean = np.divide(total, count, out=np.full(total.shape, np.nan), where=count >= min_days)
        profile[:, sel, :] = mean
    return profile.reshape(n_rows, n)


def average_daily_use(
    values: FloatArray, *, slots_per_day: int, target: BoolArray | None = None, min_days: int = 1
) -> tuple[FloatArray, BoolArray]:
    """Scalar estimation from average daily use: each gap gets the channel's mean use per interval
    over its complete (fully valid) days, i.e. average daily use / slots per day."""
    values = np.atleast_2d(values)
    cube = values.reshape(values.shape[0], -1, slots_per_day)
    day_sum = cube.sum(axis=2)
    ok = ~np.isnan(day_sum)
    n_ok = ok.sum(axis=1)
    per_interval = np.where(
        n_ok >= min_days, np.where(ok, day_sum, 0.0).sum(axis=1) / np.maximum(n_ok, 1), np.nan
    )
    per_interval = per_interval / slots_per_day
    fill = _target(values, target) & ~np.isnan(per_interval)[:, None]
    return np.where(fill, per_interval[:, None], values), fill


def adjust_to_scalar(
    values: FloatArray, estimated: BoolArray, day_advance: FloatArray, *, slots_per_day: int
) -> tuple[FloatArray, BoolArray]:
    """Interval adjustment from scalar: scale a day's estimated intervals so the day sums to the
    register advance ``day_advance`` ``(channels, days)`` [unit per day].

    Only days whose every interval has a value and whose estimates sum to more than zero are
    scaled; the received intervals are kept, so the estimates share ``advance - received sum``
    in proportion to their profile (never below zero). Returns the values and the intervals scaled.
    """
    values = np.atleast_2d(values)
    n_rows = values.shape[0]
    cube = values.reshape(n_rows, -1, slots_per_day)
    est = np.atleast_2d(estimated).reshape(cube.shape)
    est_sum = np.where(est, cube, 0.0).sum(axis=2)
    actual_sum = np.where(est, 0.0, cube).sum(axis=2)  # NaN when an interval is missing
    residual = day_advance - actual_sum
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = (est_sum > 0) & ~np.isnan(residual) & (residual >= 0) & est.any(axis=2)
        factor = np.where(ok, residual / np.where(est_sum > 0, est_sum, 1.0), 1.0)
    scaled = est & ok[:, :, None]
    out = np.where(scaled, cube * factor[:, :, None], cube)
    return out.reshape(values.shape), scaled.reshape(values.shape)


def estimate(
    values: FloatArray,
    *,
    slots_per_day: int,
    day_types: Sequence[int] | npt.NDArray[np.integer],
    target: BoolArray | None = None,
    max_interp_intervals: int = 8,
    min_like_days: int = 1,
    outage: BoolArray | None = None,
    learned: FloatArray | None = None,
    day_advance: FloatArray | None = None,
    fused: bool = True,
) -> Estimate:
    """Estimate the gaps: outage zeros, linear interpolation, learned, like-day, average use.

    In that order, each method fills what the earlier ones left: a gap inside a recorded power
    outage (``outage``) is zero; short gaps between two values are interpolated; ``learned``
    (predictions of :mod:`.learned` for every interval, NaN where it has none) fills longer gaps;
    then like-day profiles; then the average daily use. Finally, on days with a register advance
    (``day_advance``, ``(channels, days)``), the estimates other than outage zeros are scaled to
    match it.

    Profiles are computed from the valid values only (never from other estimates). Valid
    (non-NaN) values are returned unchanged; intervals nothing could fill stay NaN with method 0.

    With ``fused`` (the default) every method runs in one compiled pass per channel
    (:func:`.compiled.kernels.estimate_rows`); without, method function by method function. Both give the
    same values and methods.
    """
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    if fused:
        est = _estimate_fused(
            values,
            slots_per_day,
            day_types,
            target,
            max_interp_intervals,
            min_like_days,
            outage,
            learned,
            day_advance,
        )
        if est is not None:
            return est
    method = np.zeros(values.shape, dtype=np.int8)
    remaining = _target(values, target)
    out = values.copy()
    if outage is not None:
        zero = remaining & np.asarray(outage, dtype=bool)
        out[zero] = 0.0
        method[zero] = OUTAGE_ZERO
        remaining &= ~zero
    lin, lin_mask = linear_interpolation(values, max_interp_intervals=max_interp_intervals, target=remaining)
    out[lin_mask] = lin[lin_mask]
    method[lin_mask] = LINEAR_INTERPOLATION
    remaining &= ~lin_mask
    if learned is not None:
        fill = remaining & ~np.isnan(learned)
        out[fill] = np.maximum(learned[fill], 0.0)
        method[fill] = LEARNED
        remaining &= ~fill
    rows = np.flatnonzero(remaining.any(axis=1))  # profiles only for channels that need one
    if len(rows):
        sub = values[rows]
        prof, prof_mask = like_day_profile(
            sub,
            slots_per_day=slots_per_day,
            day_types=day_types,
            target=remaining[rows],
            min_days=min_like_days,
        )
        left = remaining[rows] & ~prof_mask
        avg, avg_mask = average_daily_use(sub, slots_per_day=slots_per_day, target=left)
        filled = np.where(prof_mask, prof, np.where(avg_mask, avg, out[rows]))
        out[rows] = filled
        m = method[rows]
        m[prof_mask] = LIKE_DAY_PROFILE
        m[avg_mask] = AVERAGE_DAILY_USE
        method[rows] = m
    if day_advance is not None:  # the zeros of an outage are not scaled
        scalable = (method != NOT_ESTIMATED) & (method != OUTAGE_ZERO)
        est_rows = np.flatnonzero(scalable.any(axis=1))
        if len(est_rows):
            adj, scaled = adjust_to_scalar(
                out[est_rows],
                scalable[est_rows],
                day_advance[est_rows],
                slots_per_day=slots_per_day,
            )
            out[est_rows] = adj
            m = method[est_rows]
            m[scaled] = SCALAR_ADJUSTED
            method[est_rows] = m
    return Estimate(out, method)


def _estimate_fused(
    values: FloatArray,
    spd: int,
    day_types: Sequence[int] | npt.NDArray[np.integer],
    target: BoolArray | None,
    max_interp: int,
    min_like_days: int,
    outage: BoolArray | None,
    learned: FloatArray | None,
    day_advance: FloatArray | None,
) -> Estimate | None:
    """:func:`estimate` through the compiled kernel; None when the arrays do not fit it (the
    method functions then run, and report a mismatch as before)."""
    from meter2cash.mdm.vee.compiled import kernels  # Numba loads on first use
    from meter2cash.mdm.vee.compiled.kernels import contiguous

    n_rows, n = values.shape
    types = np.asarray(day_types, dtype=np.int64)
    if values.ndim != 2 or not values.size or spd <= 0 or types.ndim != 1 or len(types) * spd != n:
        return None
    no_f, no_b = np.zeros((0, 0)), np.zeros((0, 0), dtype=bool)
    args = [contiguous(values, np.float64, values.shape)]
    for given, dtype, shape, dummy in (
        (target, np.bool_, values.shape, no_b),
        (outage, np.bool_, values.shape, no_b),
        (learned, np.float64, values.shape, no_f),
        (day_advance, np.float64, (n_rows, len(types)), no_f),
    ):
        got = dummy if given is None else contiguous(given, dtype, shape)
        if got is None:
            return None
        args.append(got)
    if args[0] is None:
        return None
    out = np.empty((n_rows, n))
    method = np.zeros((n_rows, n), dtype=np.int8)
    kernels.estimate_rows(
        *args,
        types,
        spd,
        max_interp,
        min_like_days,
        out,
        method,
        np.empty(n, dtype=bool),
        np.empty(len(types) + spd),
    )
    return Estimate(out, method)


def quality_flags(
    values: FloatArray, rejected: BoolArray, suspect: BoolArray, method: MethodArray
) -> npt.NDArray[np.uint16]:
    """Quality bits of validated intervals.

    ``values`` are the final values (NaN = still missing → MISSING); ``rejected`` → REJECTED,
    ``suspect`` → SUSPECT, a non-zero ``method`` → ESTIMATED. A valid received value gets 0.
    """
    shape = np.shape(values)
    if np.shape(rejected) == np.shape(suspect) == np.shape(method) == shape and np.size(values):
        from meter2cash.mdm.vee.compiled import kernels  # Numba loads on first use
        from meter2cash.mdm.vee.compiled.kernels import contiguous

        size = (int(np.size(values)),)
        m = np.asarray(method)
        flags = np.empty(shape, dtype=FLAG_DTYPE)
        kernels.flag_values(
            contiguous(np.ravel(values), np.float64, size),
            contiguous(np.ravel(rejected), np.bool_, size),
            contiguous(np.ravel(suspect), np.bool_, size),
            contiguous(np.ravel(m if m.dtype == np.int8 else (m != 0).view(np.int8)), np.int8, size),
            flags.reshape(-1),
            _FLAG_BITS,
        )
        return flags
    flags = np.zeros(np.shape(values), dtype=FLAG_DTYPE)
    flags[np.isnan(values)] |= FLAG_DTYPE(Quality.MISSING)
    flags[rejected] |= FLAG_DTYPE(Quality.REJECTED)
    flags[suspect] |= FLAG_DTYPE(Quality.SUSPECT)
    flags[method != NOT_ESTIMATED] |= FLAG_DTYPE(Quality.ESTIMATED)
    return flags


def day_types_for(
    days: Sequence[date],
    tz: ZoneInfo | str = "UTC",
    *,
    holiday_country: str | None = None,
    holiday_subdiv: str | None = None,
) -> npt.NDArray[np.int8]:
    """Day type of each UTC day: WEEKEND (1) if its midpoint falls on a local Saturday or Sunday,
    or on a public holiday of ``holiday_country`` (``holidays`` package, e.g. ``"IN"``, ``"GB"``);
    WEEKDAY (0) otherwise."""
    zone = ZoneInfo(str(tz))
    local = [datetime(d.year, d.month, d.day, 12, tzinfo=UTC).astimezone(zone) for d in days]
    kind = np.asarray([t.weekday() >= 5 for t in local], dtype=bool)
    if holiday_country and days:
        import holidays

        years = sorted({t.year for t in local})
        cal = holidays.country_holidays(holiday_country, subdiv=holiday_subdiv, years=years)
        kind |= np.asarray([t.date() in cal for t in local], dtype=bool)
    return kind.astype(np.int8)
