"""Bill determinants: energy by TOU period, maximum demand and data quality, for many meters.

:func:`bill_determinants` is a pure kernel over ``(meters, intervals)`` arrays;
:func:`window_determinants` gives the same for many bill jobs straight from a read window, with
their missing intervals estimated, in one compiled call (Numba, loaded on first use). Pure: the
usage port (:mod:`meter2cash.mdm.usage`) reads the store and calls them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from meter2cash.core.quality import Quality
from meter2cash.core.timeutil import local_frame

if TYPE_CHECKING:
    pass
# The kernel compiles (or loads from Numba's cache) on the first call of window_determinants:
# importing this module must not load Numba. It sums in NumPy's pairwise order through the VEE
# kernels' ``pairwise_sum``, bound as a global of this module when the kernel is first built.
if TYPE_CHECKING:
    from meter2cash.mdm.vee.compiled.kernels import pairwise_sum

F64 = npt.NDArray[np.float64]


@dataclass(slots=True)
class Determinants:
    """Bill determinants of ``n`` meters over one period with ``P`` TOU periods.

    kwh_total (n,) [kWh]; kwh_by_period (n, P) [kWh]; max_demand_kw (n,) [kW];
    max_demand_kw_by_period (n, P) [kW]; estimated_share and missing_share (n,) [0..1] of the
    period's intervals.
    """

    kwh_total: F64
    kwh_by_period: F64
    max_demand_kw: F64
    max_demand_kw_by_period: F64
    estimated_share: F64
    missing_share: F64

    def take(self, idx: npt.ArrayLike) -> Determinants:
        """The determinants of the meters ``idx``."""
        return Determinants(*(getattr(self, f.name)[idx] for f in fields(Determinants)))

    def as_dict(self, i: int, period_names: Sequence[str]) -> dict[str, Any]:
        """The determinants of meter ``i`` as a JSON-serialisable dict (kWh and kW to 3 decimals)."""
        return {
            "kwh_total": round(float(self.kwh_total[i]), 3),
            "kwh_by_period": {
                n: round(float(v), 3) for n, v in zip(period_names, self.kwh_by_period[i], strict=True)
            },
            "max_demand_kw": round(float(self.max_demand_kw[i]), 3),
            "max_demand_kw_by_period": {
                n: round(float(v), 3)
                for n, v in zip(period_names, self.max_demand_kw_by_period[i], strict=True)
            },
            "estimated_share": round(float(self.estimated_share[i]), 4),
            "missing_share": round(float(self.missing_share[i]), 4),
        }


def bill_determinants(
    values: F64,
    flags: npt.NDArray[np.uint16],
    period_index: npt.NDArray[np.int8],
    n_periods: int,
    interval_s: int,
    demand_interval_s: int | None = None,
) -> Determinants:
    """Compute bill determinants from interval energy.

    Parameters
    ----------
    values : (n, T) float64
        Energy per interval [kWh]; NaN where missing (counted as 0 kWh, reported in missing_share).
    flags : (n, T) uint16
        Quality flags (:class:`~meter2cash.core.quality.Quality`).
    period_index : (T,) int8
        TOU period of every interval (see :func:`meter2cash.mdm.tou.tou_period_index`).
    n_periods : int
        Number of TOU periods ``P``.
    interval_s : int
        Interval length of ``values`` [s].
    demand_interval_s : int, optional
        Demand integration period [s] (a multiple of ``interval_s``; default ``interval_s``).
        Demand of a block = kWh in the block × 3600 / demand_interval_s; a block belongs to the
        TOU period of its first interval.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError("values must be 2-D (meters, intervals)")
    n, t = values.shape
    flags = np.asarray(flags)
    pidx = np.asarray(period_index, dtype=np.int8)
    if flags.shape != values.shape or pidx.shape != (t,):
        raise ValueError(f"shapes differ: values {values.shape}, flags {flags.shape}, periods {pidx.shape}")
    nan = np.isnan(values)
    filled = np.where(nan, 0.0, values)
    onehot = np.zeros((t, n_periods))
    inside = np.flatnonzero((pidx >= 0) & (pidx < n_periods))
    onehot[inside, pidx[inside]] = 1.0
    kwh_by_period = filled @ onehot  # one pass over the intervals for every period at once
    step = (demand_interval_s or interval_s) // interval_s
    if step < 1 or (demand_interval_s or interval_s) % interval_s:
        raise ValueError(f"demand interval {demand_interval_s} s is not a multiple of {interval_s} s")
    blocks = -(-t // step) if t else 0
    if t % step:  # a last, shorter block: pad with zeros
        filled = np.concatenate((filled, np.zeros((n, blocks * step - t))), axis=1)
    block_kwh = filled[:, 0::step].copy() if step > 1 else filled
    for k in range(1, step):  # strided adds: NumPy reduces a short last axis slowly
        block_kwh += filled[:, k::step]
    if step > 1:  # block_kwh is a new array: scale it in place
        block_kwh *= 3600.0 / (interval_s * step)
        demand = block_kwh
    else:
        demand = filled * (3600.0 / interval_s)
    filled = filled[:, :t]
    block_period = pidx[::step] if t else pidx
    md_by_period = np.zeros((n, n_periods))
    max_demand = np.zeros(n)
    if blocks:
        # maxima of the runs of consecutive blocks in one period (one pass, no copy), then of
        # each period's runs; the largest run maximum is the maximum demand
        starts = np.flatnonzero(np.r_[True, block_period[1:] != block_period[:-1]])
        run_max = np.maximum.reduceat(demand, starts, axis=1)
        run_period = block_period[starts]
        for p in range(n_periods):
            cols = run_period == p
            if cols.any():
                md_by_period[:, p] = run_max[:, cols].max(axis=1)
        max_demand = run_max.max(axis=1)
    denom = max(t, 1)
    missing = nan | ((flags & np.uint16(Quality.MISSING)) != 0)  # a uint16 mask, not IntFlag
    return Determinants(
        kwh_total=filled.sum(axis=1),
        kwh_by_period=kwh_by_period,
        max_demand_kw=max_demand,
        max_demand_kw_by_period=md_by_period,
        estimated_share=np.count_nonzero(flags & np.uint16(Quality.ESTIMATED), axis=1) / denom,
        missing_share=np.count_nonzero(missing, axis=1) / denom,
    )


def fill_missing(values: np.ndarray, flags: np.ndarray, active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Estimate missing intervals inside the active window by the row's average interval
    (flagged ESTIMATED): a bill on incomplete data is an estimated bill, not a low one. Outside
    ``active`` values are NaN and flags MISSING. The NumPy reference of the gap filling that
    :func:`window_determinants` does in its walk."""
    nan = np.isnan(values)
    gap = active & nan
    whole = bool(active.all())  # the usual case: nothing to blank outside the active days
    if whole:
        flags = flags.astype(np.uint16)
    else:
        values = np.where(active, values, np.nan)
        flags = np.where(active, flags, np.uint16(Quality.MISSING)).astype(np.uint16)
    if not gap.any():
        return values, flags
    count = np.count_nonzero(active & ~nan, axis=1)
    mean = np.where(count > 0, np.nansum(values, axis=1) / np.maximum(count, 1), 0.0)
    rows, cols = np.nonzero(gap)
    if whole:
        values = values.copy()  # the caller's array
    values[rows, cols] = mean[rows]
    flags[rows, cols] |= np.uint16(Quality.ESTIMATED)
    return values, flags


def daily_kwh(values: F64, epoch_s: npt.NDArray[np.int64], tz: ZoneInfo | str) -> tuple[list[str], F64]:
    """Energy per local calendar day: (ISO dates, (n, days) [kWh]); NaN counts as 0."""
    frame = local_frame(epoch_s, tz)
    codes, uniques = np.unique(frame["date"].to_numpy("datetime64[D]"), return_inverse=True)
    onehot = np.zeros((len(epoch_s), len(codes)))
    onehot[np.arange(len(epoch_s)), uniques] = 1.0
    filled = np.where(np.isnan(values), 0.0, values)
    return [str(d) for d in codes], filled @ onehot


@dataclass(slots=True)
class WindowDeterminants:
    """Bill determinants, energy per local day and data present of ``n`` jobs read from one window.

    det : :class:`Determinants` of the jobs; daily (n, D) [kWh] per local day; valid (n,) count of
    intervals of the job's active span that hold data (not NaN).
    """

    det: Determinants
    daily: F64
    valid: npt.NDArray[np.int64]


# values and flags of any layout (a window's columns are a slice of whole UTC days), read only
_WINDOW_SIGNATURE = (
    "void(Array(float64, 2, 'A', readonly=True), Array(uint16, 2, 'A', readonly=True),"
    " i8[::1], i8[::1], i8[::1], i8[::1], i8[::1], i8, i8, f8, u2, u2,"
    " f8[::1], f8[:, ::1], f8[::1], f8[:, ::1], i8[::1], i8[::1], i8[::1], f8[:, ::1],"
    " f8[::1], f8[::1], f8[::1], i8[::1])"
)


def _window_rows(
    values,
    flags,
    rows,
    lo,
    hi,
    period,
    day,
    n_periods,
    step,
    scale,
    est_bit,
    miss_bit,
    kwh_total,
    kwh_by_period,
    max_demand,
    md_by_period,
    est_count,
    miss_count,
    valid,
    daily,
    buf,
    kwh_p,
    md_p,
    has_block,
):
    """Per job ``k``: the row ``rows[k]`` of the window, estimated inside ``[lo[k], hi[k])`` and
    blanked outside it as :func:`fill_missing` does, reduced to its determinants: one walk over the
    active span for its mean, one for everything else; the row is read in place.

    ``period`` holds each interval's TOU period, ``n_periods`` where it has none (a slot summed
    and maximised but never reported); ``buf`` (T,), ``kwh_p``, ``md_p`` and ``has_block``
    (n_periods + 1,) are scratch. The active mean and kWh total are pairwise sums over a row of T
    (zeros outside the active span), as NumPy's ``nansum`` and ``sum`` along the last axis."""
    n = rows.shape[0]
    t_all = values.shape[1]
    n_blocks = (t_all + step - 1) // step
    for p in range(n_periods + 1):
        has_block[p] = 0
    for b in range(n_blocks):
        has_block[period[b * step]] = 1
    outside_est = 1 if miss_bit & est_bit else 0
    for k in range(n):
        vrow = values[rows[k]]
        frow = flags[rows[k]]
        a = lo[k]
        e = hi[k]
        # pass 1: the mean of the data present in the active span (0 if none)
        for t in range(a):
            buf[t] = 0.0
        for t in range(e, t_all):
            buf[t] = 0.0
        count = 0
        for t in range(a, e):
            v = vrow[t]
            ok = v == v
            buf[t] = v if ok else 0.0
            count += ok
        valid[k] = count
        mean = 0.0
        if count > 0 and count < e - a:
            mean = pairwise_sum(buf, 0, t_all) / count
        fill_nan = mean != mean
        fill = 0.0 if fill_nan else mean
        # pass 2: energy per period and day, block demand, quality counts
        for p in range(n_periods + 1):
            kwh_p[p] = 0.0
            md_p[p] = -np.inf
        n_est = outside_est * (a + t_all - e)
        n_miss = a + t_all - e  # NaN and MISSING outside the active span
        b0 = a // step
        b1 = (e + step - 1) // step if e > a else b0
        for i in range(n_blocks - (b1 - b0)):  # the blocks wholly outside the span: zero demand
            p = period[(i if i < b0 else i + b1 - b0) * step]
            if md_p[p] < 0.0:  # False for NaN, which stays (np.maximum propagates NaN)
                md_p[p] = 0.0
        if e > a:
            # energy of the span: the kWh of a run of one period and day is summed apart, then
            # added to both; a block's kWh in order (zeros outside the span add nothing), the
            # largest demand of a run of blocks of one period kept apart, then merged
            pos = a - b0 * step
            block_p = period[b0 * step]
            block = 0.0
            bmax = -np.inf
            run = 0.0
            run_p = period[a]
            run_d = day[a]
            for t in range(a, e):
                v = vrow[t]
                f = frow[t]
                missing = (f & miss_bit) != 0
                if v != v:
                    v = fill
                    buf[t] = fill
                    f |= est_bit
                    missing = missing or fill_nan
                n_est += (f & est_bit) != 0
                n_miss += missing
                p = period[t]
                d = day[t]
                if p != run_p or d != run_d:
                    kwh_p[run_p] += run
                    daily[k, run_d] += run
                    run = 0.0
                    run_p = p
                    run_d = d
                run += v
                block += v
                pos += 1
                if pos == step:
                    demand = block * scale
                    if bmax == bmax and not (demand <= bmax):
                        bmax = demand
                    block = 0.0
                    pos = 0
                    if t + 1 < t_all and period[t + 1] != block_p:
                        m = md_p[block_p]
                        if m == m and not (bmax <= m):
                            md_p[block_p] = bmax
                        bmax = -np.inf
                        block_p = period[t + 1]
            kwh_p[run_p] += run
            daily[k, run_d] += run
            if pos:  # a block cut short by the end of the span or of the window
                demand = block * scale
                if bmax == bmax and not (demand <= bmax):
                    bmax = demand
            m = md_p[block_p]
            if m == m and not (bmax <= m):
                md_p[block_p] = bmax
        top = -np.inf  # the largest block demand is the largest of the periods'
        for p in range(n_periods + 1):
            m = md_p[p]
            if top == top and not (m <= top):
                top = m
        kwh_total[k] = pairwise_sum(buf, 0, t_all)
        for p in range(n_periods):
            kwh_by_period[k, p] = kwh_p[p]
            md_by_period[k, p] = md_p[p] if has_block[p] else 0.0
        max_demand[k] = top if n_blocks else 0.0
        est_count[k] = n_est
        miss_count[k] = n_miss


_window_kernel: Any = None


def _compiled_window_kernel() -> Any:
    """The kernel of :func:`window_determinants`, compiled (or loaded from Numba's cache) once."""
    global _window_kernel, pairwise_sum
    if _window_kernel is None:
        from meter2cash.mdm.vee.compiled.kernels import _jit, pairwise_sum

        _window_kernel = _jit(_WINDOW_SIGNATURE)(_window_rows)
    return _window_kernel


def _int_array(a: npt.ArrayLike, name: str, n: int | None) -> npt.NDArray[np.int64]:
    """``a`` as a 1-D int64 array (of length ``n`` if given)."""
    out = np.asarray(a)
    if out.ndim != 1 or (out.size and out.dtype.kind not in "iu"):
        raise ValueError(f"{name} must be a 1-D integer array")
    if n is not None and out.shape[0] != n:
        raise ValueError(f"{name} has {out.shape[0]} entries, rows has {n}")
    return np.ascontiguousarray(out, dtype=np.int64)


def window_determinants(
    values: F64,
    flags: npt.NDArray[np.uint16],
    rows: npt.NDArray[np.int64],
    lo: npt.NDArray[np.int64],
    hi: npt.NDArray[np.int64],
    period_index: npt.NDArray[np.int8],
    n_periods: int,
    day_index: npt.NDArray[np.int64],
    n_days: int,
    interval_s: int,
    demand_interval_s: int | None = None,
) -> WindowDeterminants:
    """Bill determinants and daily energy of many jobs, straight from a read window.

    Equal to taking each job's row (``values[rows]``, ``flags[rows]``), estimating the missing
    intervals of its active span ``[lo, hi)`` by the span's mean interval and blanking the rest
    (:func:`fill_missing`), then :func:`bill_determinants` and the daily sums
    of :func:`daily_kwh` — in one compiled call: two walks over each job's active span (its mean,
    then everything else), with no copy of any row. kWh totals, the estimates and the demands are
    summed in NumPy's order; kWh per period and per day may differ from the matrix products in
    the last bits.

    Parameters
    ----------
    values : (C, T) float64
        Energy per interval of the window's channels [kWh]; NaN where missing. Any layout.
    flags : (C, T) uint16
        Quality flags (:class:`~meter2cash.core.quality.Quality`).
    rows : (n,) int
        Row of ``values`` of each job (rows may repeat).
    lo, hi : (n,) int
        Each job's active span: columns ``lo <= t < hi`` (``0 <= lo <= hi <= T``). Outside it an
        interval is missing (no energy, flag MISSING); inside, a NaN is estimated (flag ESTIMATED).
    period_index : (T,) int8
        TOU period of every interval (see :func:`meter2cash.mdm.tou.tou_period_index`).
    n_periods : int
        Number of TOU periods ``P``.
    day_index : (T,) int
        Local day ``0 <= d < n_days`` of every interval.
    n_days : int
        Number of local days ``D``.
    interval_s, demand_interval_s : int
        Interval length [s] and demand integration period [s], as for :func:`bill_determinants`.

    Returns
    -------
    WindowDeterminants
        ``det`` as :func:`bill_determinants` gives it, ``daily`` (n, D) [kWh] and ``valid`` (n,),
        the number of intervals of each active span that hold data.
    """
    if not isinstance(values, np.ndarray) or values.ndim != 2 or values.dtype != np.float64:
        raise ValueError("values must be a 2-D float64 array (channels, intervals)")
    c, t = values.shape
    if not isinstance(flags, np.ndarray) or flags.dtype != np.uint16 or flags.shape != values.shape:
        raise ValueError(f"flags must be a uint16 array of the shape of values {values.shape}")
    rows_ = _int_array(rows, "rows", None)
    n = rows_.shape[0]
    lo_, hi_ = _int_array(lo, "lo", n), _int_array(hi, "hi", n)
    if n and (rows_.min() < 0 or rows_.max() >= c):
        raise ValueError(f"rows must lie in [0, {c})")
    if n and (lo_.min() < 0 or hi_.max() > t or bool((lo_ > hi_).any())):
        raise ValueError(f"active spans must satisfy 0 <= lo <= hi <= {t}")
    pidx = np.asarray(period_index, dtype=np.int8)  # as bill_determinants reads it
    day = _int_array(day_index, "day_index", None)
    if pidx.shape != (t,) or day.shape != (t,):
        raise ValueError(f"shapes differ: values {values.shape}, periods {pidx.shape}, days {day.shape}")
    if n_periods < 0 or n_days < 0:
        raise ValueError(f"n_periods {n_periods} and n_days {n_days} must not be negative")
    if t and (day.min() < 0 or day.max() >= n_days):
        raise ValueError(f"day_index must lie in [0, {n_days})")
    if interval_s <= 0:
        raise ValueError(f"interval {interval_s} s is not positive")
    step = (demand_interval_s or interval_s) // interval_s
    if step < 1 or (demand_interval_s or interval_s) % interval_s:
        raise ValueError(f"demand interval {demand_interval_s} s is not a multiple of {interval_s} s")
    # intervals of no reported period count in a slot of their own, as bill_determinants counts
    # them in kwh_total and max_demand only
    period = np.where((pidx >= 0) & (pidx < n_periods), pidx, n_periods).astype(np.int64)
    kwh_total, max_demand = np.empty(n), np.empty(n)
    kwh_by_period, md_by_period = np.empty((n, n_periods)), np.empty((n, n_periods))
    est_count = np.empty(n, dtype=np.int64)
    miss_count = np.empty(n, dtype=np.int64)
    valid = np.empty(n, dtype=np.int64)
    daily = np.zeros((n, n_days))
    _compiled_window_kernel()(
        values,
        flags,
        rows_,
        lo_,
        hi_,
        period,
        day,
        n_periods,
        step,
        3600.0 / (interval_s * step),
        np.uint16(Quality.ESTIMATED),
        np.uint16(Quality.MISSING),
        kwh_total,
        kwh_by_period,
        max_demand,
        md_by_period,
        est_count,
        miss_count,
        valid,
        daily,
        np.empty(t),
        np.empty(n_periods + 1),
        np.empty(n_periods + 1),
        np.empty(n_periods + 1, dtype=np.int64),
    )
    denom = max(t, 1)
    det = Determinants(
        kwh_total=kwh_total,
        kwh_by_period=kwh_by_period,
        max_demand_kw=max_demand,
        max_demand_kw_by_period=md_by_period,
        estimated_share=est_count / denom,
        missing_share=miss_count / denom,
    )
    return WindowDeterminants(det=det, daily=daily, valid=valid)
