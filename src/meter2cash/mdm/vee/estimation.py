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
from meter2cash.mdm.vee.rules import find_runs

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
MethodArray = npt.NDArray[np.int8]

NOT_ESTIMATED = 0
LINEAR_INTERPOLATION = 1
LIKE_DAY_PROFILE = 2
METHOD_NAMES: dict[int, str] = {
    LINEAR_INTERPOLATION: "linear_interpolation",
    LIKE_DAY_PROFILE: "like_day_profile",
}

WEEKDAY = 0
WEEKEND = 1


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
) -> tuple[FloatArray, BoolArray]:
    """Fill each gap with the mean of the same slot on valid days of the same day type.

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
    n_rows, n = values.shape
    if n != len(types) * slots_per_day:
        raise ValueError(f"{n} intervals are not {len(types)} days of {slots_per_day} slots")
    cube = values.reshape(n_rows, len(types), slots_per_day)
    valid = ~np.isnan(cube)
    profile = np.full_like(cube, np.nan)
    for t in np.unique(types):  # a handful of day types, each a whole-array operation
        sel = types == t
        total = np.where(valid[:, sel], cube[:, sel], 0.0).sum(axis=1)
        count = valid[:, sel].sum(axis=1)
        mean = np.divide(total, count, out=np.full_like(total, np.nan), where=count >= min_days)
        profile[:, sel, :] = mean[:, None, :]
    flat = profile.reshape(n_rows, n)
    fill = _target(values, target) & ~np.isnan(flat)
    out = np.where(fill, flat, values)
    return out, fill


def estimate(
    values: FloatArray,
    *,
    slots_per_day: int,
    day_types: Sequence[int] | npt.NDArray[np.integer],
    target: BoolArray | None = None,
    max_interp_intervals: int = 8,
    min_like_days: int = 1,
) -> Estimate:
    """Linear interpolation for short gaps, then like-day profiles for everything else.

    Profiles are computed from the valid values only (never from other estimates). Valid
    (non-NaN) values are returned unchanged; intervals nothing could fill stay NaN with method 0.
    """
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    method = np.zeros(values.shape, dtype=np.int8)
    lin, lin_mask = linear_interpolation(values, max_interp_intervals=max_interp_intervals, target=target)
    method[lin_mask] = LINEAR_INTERPOLATION
    remaining = _target(values, target) & ~lin_mask
    prof, prof_mask = like_day_profile(
        values, slots_per_day=slots_per_day, day_types=day_types, target=remaining, min_days=min_like_days
    )
    method[prof_mask] = LIKE_DAY_PROFILE
    return Estimate(np.where(prof_mask, prof, lin), method)


def quality_flags(
    values: FloatArray, rejected: BoolArray, suspect: BoolArray, method: MethodArray
) -> npt.NDArray[np.uint16]:
    """Quality bits of validated intervals.

    ``values`` are the final values (NaN = still missing → MISSING); ``rejected`` → REJECTED,
    ``suspect`` → SUSPECT, a non-zero ``method`` → ESTIMATED. A valid received value gets 0.
    """
    flags = np.zeros(np.shape(values), dtype=FLAG_DTYPE)
    flags[np.isnan(values)] |= FLAG_DTYPE(Quality.MISSING)
    flags[rejected] |= FLAG_DTYPE(Quality.REJECTED)
    flags[suspect] |= FLAG_DTYPE(Quality.SUSPECT)
    flags[method != NOT_ESTIMATED] |= FLAG_DTYPE(Quality.ESTIMATED)
    return flags


def day_types_for(days: Sequence[date], tz: ZoneInfo | str = "UTC") -> npt.NDArray[np.int8]:
    """Day type of each UTC day: WEEKEND (1) if its midpoint falls on a local Saturday or Sunday."""
    zone = ZoneInfo(str(tz))
    noon = [datetime(d.year, d.month, d.day, 12, tzinfo=UTC).astimezone(zone).weekday() for d in days]
    return (np.asarray(noon, dtype=np.int64) >= 5).astype(np.int8)
