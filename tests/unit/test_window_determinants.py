"""window_determinants equals the NumPy composition the bill run uses: rows taken from the window,
missing intervals of the active days estimated (``fill_missing``), ``bill_determinants`` and
``daily_kwh``."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from meter2cash.core.quality import Quality
from meter2cash.mdm.determinants import (
    Determinants,
    WindowDeterminants,
    bill_determinants,
    daily_kwh,
    fill_missing,
    window_determinants,
)

NAN = np.nan
MISSING, EST, SUSPECT = int(Quality.MISSING), int(Quality.ESTIMATED), int(Quality.SUSPECT)
FIELDS = ("kwh_total", "kwh_by_period", "max_demand_kw", "max_demand_kw_by_period")


def reference(
    values: np.ndarray,
    flags: np.ndarray,
    rows: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    pidx: np.ndarray,
    n_periods: int,
    starts: np.ndarray,
    tz: str,
    interval_s: int,
    demand_s: int | None,
) -> tuple[Determinants, list[str], np.ndarray, np.ndarray]:
    """The bill run's composition: (determinants, ISO dates, daily kWh, valid counts)."""
    cols = np.arange(values.shape[1])
    active = (cols[None, :] >= lo[:, None]) & (cols[None, :] < hi[:, None])
    raw, raw_flags = values[rows], flags[rows]
    valid = np.count_nonzero(active & ~np.isnan(raw), axis=1)
    filled, filled_flags = fill_missing(raw, raw_flags, active)
    det = bill_determinants(filled, filled_flags, pidx, n_periods, interval_s, demand_s)
    dates, daily = daily_kwh(np.where(active, filled, np.nan), starts, tz)
    return det, dates, daily, valid


def local_days(starts: np.ndarray, tz: str) -> tuple[list[str], np.ndarray, int]:
    """(ISO dates, day number of every interval, number of days), one interval at a time."""
    dates = [datetime.fromtimestamp(int(s), UTC).astimezone(ZoneInfo(tz)).date() for s in starts]
    first = dates[0].toordinal()
    n_days = dates[-1].toordinal() - first + 1
    iso = [datetime.fromordinal(first + d).date().isoformat() for d in range(n_days)]
    return iso, np.array([d.toordinal() - first for d in dates], dtype=np.int64), n_days


def assert_same(got: WindowDeterminants, det: Determinants, daily: np.ndarray, valid: np.ndarray) -> None:
    """kWh per period and per day within rounding (the reference sums them by matrix product);
    kWh totals and demands in NumPy's summation order, so exactly; counts and shares exactly."""
    for name in FIELDS:
        np.testing.assert_allclose(getattr(got.det, name), getattr(det, name), rtol=1e-12, atol=1e-9)
    np.testing.assert_array_equal(got.det.kwh_total, det.kwh_total)
    np.testing.assert_array_equal(got.det.max_demand_kw, det.max_demand_kw)
    np.testing.assert_array_equal(got.det.max_demand_kw_by_period, det.max_demand_kw_by_period)
    np.testing.assert_array_equal(got.det.estimated_share, det.estimated_share)
    np.testing.assert_array_equal(got.det.missing_share, det.missing_share)
    np.testing.assert_allclose(got.daily, daily, rtol=1e-12, atol=1e-9)
    np.testing.assert_array_equal(got.valid, valid)
    assert got.valid.dtype == np.int64
    assert got.daily.shape == daily.shape


# NaN (a gap), zeros, negatives (export on a net channel) and ordinary energy
VALUES = st.one_of(st.just(NAN), st.sampled_from([0.0, -0.0, -1.5, 0.25]), st.floats(-5.0, 250.0))
FLAGS = st.sampled_from([0, 0, MISSING, EST, MISSING | EST, SUSPECT, SUSPECT | EST])
ZONES = ["UTC", "Europe/Berlin", "Asia/Kolkata", "America/St_Johns"]
# around the end of summer time in Europe (a 25-hour local day)
EPOCH_0 = int(datetime(2024, 10, 26, 18, tzinfo=UTC).timestamp())


@st.composite
def spans(draw: st.DrawFn, t: int) -> tuple[int, int]:
    kind = draw(st.sampled_from(["full", "empty", "some"]))
    if kind == "full":
        return 0, t
    if kind == "empty":
        a = draw(st.integers(0, t))
        return a, a
    a, b = sorted((draw(st.integers(0, t)), draw(st.integers(0, t))))
    return a, b


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_equals_the_numpy_composition(data: st.DataObject) -> None:
    c = data.draw(st.integers(1, 5), "channels")
    t = data.draw(st.integers(1, 40), "intervals")
    n = data.draw(st.integers(1, 6), "jobs")
    values = data.draw(arrays(np.float64, (c, t), elements=VALUES), "values")
    flags = data.draw(arrays(np.uint16, (c, t), elements=FLAGS), "flags")
    rows = np.array(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)), dtype=np.int64)
    lo, hi = np.array([data.draw(spans(t)) for _ in range(n)], dtype=np.int64).reshape(n, 2).T
    n_periods = data.draw(st.integers(1, 4), "periods")
    # mostly reported periods; now and then one of none (-1, n_periods)
    pidx = np.array(data.draw(st.lists(st.integers(-1, n_periods), min_size=t, max_size=t)), dtype=np.int8)
    if data.draw(st.booleans()):
        pidx = np.clip(pidx, 0, n_periods - 1).astype(np.int8)
    interval_s = data.draw(st.sampled_from([900, 3600, 4 * 3600, 6 * 3600]), "interval")
    step = data.draw(st.integers(1, 4), "step")
    demand_s = None if step == 1 and data.draw(st.booleans()) else step * interval_s
    tz = data.draw(st.sampled_from(ZONES), "tz")
    starts = EPOCH_0 + data.draw(st.integers(-30, 30)) * 1800 + interval_s * np.arange(t, dtype=np.int64)
    dates, day, n_days = local_days(starts, tz)

    det, ref_dates, daily, valid = reference(
        values, flags, rows, lo, hi, pidx, n_periods, starts, tz, interval_s, demand_s
    )
    assert ref_dates == dates
    got = window_determinants(values, flags, rows, lo, hi, pidx, n_periods, day, n_days, interval_s, demand_s)
    assert_same(got, det, daily, valid)


@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_reads_a_column_slice_of_the_window_in_place(data: st.DataObject) -> None:
    """A window's arrays are a column slice of whole UTC days, and may be read-only."""
    t = data.draw(st.integers(1, 30))
    off = data.draw(st.integers(0, 5))
    big = data.draw(arrays(np.float64, (3, t + off + 4), elements=VALUES))
    big_flags = data.draw(arrays(np.uint16, (3, t + off + 4), elements=FLAGS))
    values, flags = big[:, off : off + t], big_flags[:, off : off + t]
    values.flags.writeable = False
    assert not values.flags.c_contiguous
    rows = np.array([2, 0, 2], dtype=np.int64)
    lo, hi = np.array([0, t // 3, t // 2]), np.array([t, t, t // 2 + t // 4])
    pidx = (np.arange(t) % 3).astype(np.int8)
    starts = EPOCH_0 + 3600 * np.arange(t, dtype=np.int64)
    _, day, n_days = local_days(starts, "Asia/Kolkata")
    det, _, daily, valid = reference(values, flags, rows, lo, hi, pidx, 3, starts, "Asia/Kolkata", 3600, 7200)
    got = window_determinants(values, flags, rows, lo, hi, pidx, 3, day, n_days, 3600, 7200)
    assert_same(got, det, daily, valid)


def test_two_jobs_by_hand() -> None:
    """Eight half-hour intervals from 21:30 UTC (midnight after the fifth), hourly demand blocks
    (demand = block kWh), periods 0 0 1 1 1 1 0 0 (blocks: 0 1 1 0)."""
    values = np.array(
        [
            [1.0, 2.0, NAN, 4.0, 1.0, 2.0, 3.0, 1.0],
            [5.0, 5.0, 2.0, 4.0, NAN, NAN, 6.0, 5.0],
        ]
    )
    flags = np.zeros((2, 8), dtype=np.uint16)
    flags[0, 2] = flags[1, 4] = flags[1, 5] = MISSING
    flags[1, 7] = SUSPECT
    rows = np.array([0, 1])
    lo, hi = np.array([0, 2]), np.array([8, 7])
    pidx = np.array([0, 0, 1, 1, 1, 1, 0, 0], dtype=np.int8)
    day = np.array([0, 0, 0, 0, 0, 1, 1, 1])
    got = window_determinants(values, flags, rows, lo, hi, pidx, 2, day, 2, 1800, 3600)

    # job 0, all active: the gap is the mean of the other seven, 14 / 7 = 2
    #   filled 1 2 2 4 | 1 2 3 1, blocks 3 6 3 4
    # job 1, active 2..6: the gaps are (2 + 4 + 6) / 3 = 4; outside counts 0 kWh and is missing
    #   filled 0 0 2 4 | 4 4 6 0, blocks 0 6 8 6
    np.testing.assert_array_equal(got.det.kwh_total, [16.0, 20.0])
    np.testing.assert_array_equal(got.det.kwh_by_period, [[7.0, 9.0], [6.0, 14.0]])
    np.testing.assert_array_equal(got.det.max_demand_kw, [6.0, 8.0])
    np.testing.assert_array_equal(got.det.max_demand_kw_by_period, [[4.0, 6.0], [6.0, 8.0]])
    np.testing.assert_array_equal(got.det.estimated_share, [1 / 8, 2 / 8])
    # a filled gap keeps its MISSING flag; job 1 also misses its three intervals outside
    np.testing.assert_array_equal(got.det.missing_share, [1 / 8, 5 / 8])
    np.testing.assert_array_equal(got.daily, [[10.0, 6.0], [10.0, 10.0]])
    np.testing.assert_array_equal(got.valid, [7, 3])

    starts = int(datetime(2024, 1, 1, 21, 30, tzinfo=UTC).timestamp()) + 1800 * np.arange(8)
    det, dates, daily, valid = reference(values, flags, rows, lo, hi, pidx, 2, starts, "UTC", 1800, 3600)
    assert dates == ["2024-01-01", "2024-01-02"]
    assert_same(got, det, daily, valid)


def test_blocks_outside_the_active_days_have_zero_demand() -> None:
    """Export-only (negative) energy: inside the active days every block is negative, outside
    them the blocks hold no energy, so a period with an outside block has maximum demand 0
    (job 1, active 0..5: blocks -2 -2 -2 and 0 outside, in periods 0 1 1 0)."""
    values = np.full((1, 8), -1.0)
    flags = np.zeros((1, 8), dtype=np.uint16)
    pidx = np.array([0, 0, 1, 1, 1, 1, 0, 0], dtype=np.int8)
    day = np.zeros(8, dtype=np.int64)
    rows, lo, hi = np.array([0, 0, 0]), np.array([0, 0, 3]), np.array([8, 6, 3])
    got = window_determinants(values, flags, rows, lo, hi, pidx, 2, day, 1, 1800, 3600)
    np.testing.assert_array_equal(got.det.max_demand_kw, [-2.0, 0.0, 0.0])
    np.testing.assert_array_equal(got.det.max_demand_kw_by_period, [[-2.0, -2.0], [0.0, -2.0], [0.0, 0.0]])
    np.testing.assert_array_equal(got.det.kwh_total, [-8.0, -6.0, 0.0])
    np.testing.assert_array_equal(got.det.missing_share, [0.0, 0.25, 1.0])
    np.testing.assert_array_equal(got.valid, [8, 6, 0])


def test_no_data_in_the_active_days_is_estimated_as_zero() -> None:
    values = np.array([[NAN, NAN, 3.0, NAN]])
    flags = np.array([[MISSING, MISSING, 0, MISSING]], dtype=np.uint16)
    first, pidx, day = np.array([0]), np.zeros(4, np.int8), np.zeros(4, np.int64)
    got = window_determinants(values, flags, first, first, np.array([2]), pidx, 1, day, 1, 900)
    np.testing.assert_array_equal(got.det.kwh_total, [0.0])
    np.testing.assert_array_equal(got.det.estimated_share, [0.5])
    np.testing.assert_array_equal(got.det.missing_share, [1.0])
    np.testing.assert_array_equal(got.valid, [0])


def test_empty_shapes() -> None:
    pidx, day = np.zeros(0, np.int8), np.zeros(0, np.int64)
    none = np.zeros(0, np.int64)
    empty = np.zeros((2, 0))
    got = window_determinants(empty, empty.astype(np.uint16), none, none, none, pidx, 3, day, 0, 900)
    assert got.det.kwh_by_period.shape == (0, 3) and got.daily.shape == (0, 0) and got.valid.shape == (0,)
    z = np.zeros((1, 0))
    one = np.zeros(1, np.int64)
    got = window_determinants(z, z.astype(np.uint16), one, one, one, pidx, 2, day, 0, 900, 1800)
    ref = bill_determinants(z, z.astype(np.uint16), pidx, 2, 900, 1800)
    for name in (*FIELDS, "estimated_share", "missing_share"):
        np.testing.assert_array_equal(getattr(got.det, name), getattr(ref, name))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"values": np.zeros((2, 4), np.float32)}, "values must be a 2-D float64"),
        ({"values": np.zeros(4)}, "values must be a 2-D float64"),
        ({"flags": np.zeros((2, 4), np.int32)}, "flags must be a uint16"),
        ({"flags": np.zeros((2, 3), np.uint16)}, "flags must be a uint16"),
        ({"rows": np.array([0, 2])}, r"rows must lie in \[0, 2\)"),
        ({"rows": np.array([0.0, 1.0])}, "rows must be a 1-D integer array"),
        ({"lo": np.array([0])}, "lo has 1 entries, rows has 2"),
        ({"lo": np.array([0, 4])}, "0 <= lo <= hi <= 4"),
        ({"hi": np.array([4, 5])}, "0 <= lo <= hi <= 4"),
        ({"lo": np.array([-1, 0])}, "0 <= lo <= hi <= 4"),
        ({"period_index": np.zeros(3, np.int8)}, "shapes differ"),
        ({"day_index": np.array([0, 0, 1, 2])}, r"day_index must lie in \[0, 2\)"),
        ({"demand_interval_s": 1000}, "demand interval 1000 s is not a multiple of 900 s"),
        ({"demand_interval_s": 450}, "demand interval 450 s is not a multiple of 900 s"),
        ({"interval_s": 0}, "interval 0 s is not positive"),
    ],
)
def test_refuses_bad_inputs(change: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "values": np.zeros((2, 4)),
        "flags": np.zeros((2, 4), np.uint16),
        "rows": np.array([0, 1]),
        "lo": np.array([0, 1]),
        "hi": np.array([4, 3]),
        "period_index": np.zeros(4, np.int8),
        "n_periods": 1,
        "day_index": np.array([0, 0, 1, 1]),
        "n_days": 2,
        "interval_s": 900,
        "demand_interval_s": None,
    }
    args.update(change)
    with pytest.raises(ValueError, match=message):
        window_determinants(**args)  # type: ignore[arg-type]


def test_importing_the_module_does_not_load_numba() -> None:
    code = "import sys, meter2cash.mdm.determinants; sys.exit('numba' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
