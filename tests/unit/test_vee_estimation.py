from __future__ import annotations

from datetime import date

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from meter2cash.core.quality import Quality
from meter2cash.mdm.vee.estimation import (
    LIKE_DAY_PROFILE,
    LINEAR_INTERPOLATION,
    NOT_ESTIMATED,
    WEEKDAY,
    WEEKEND,
    day_types_for,
    estimate,
    like_day_profile,
    linear_interpolation,
    quality_flags,
)

NAN = np.nan


# --- linear interpolation ----------------------------------------------------------------------


def test_linear_interpolation_fills_a_gap_between_two_values():
    out, filled = linear_interpolation(np.array([1.0, NAN, NAN, 4.0]))
    np.testing.assert_allclose(out, [[1, 2, 3, 4]])
    assert filled.tolist() == [[False, True, True, False]]


def test_linear_interpolation_leaves_edges_and_long_gaps():
    v = np.array([[NAN, 1, NAN, NAN, NAN, 5, NAN], [1, NAN, 3, NAN, NAN, NAN, NAN]])
    out, filled = linear_interpolation(v, max_interp_intervals=2)
    assert np.isnan(out[0, 0]) and np.isnan(out[0, 2:5]).all() and np.isnan(out[0, 6])
    assert out[1, 1] == 2.0 and np.isnan(out[1, 3:]).all()
    assert filled.sum() == 1
    out3, filled3 = linear_interpolation(v, max_interp_intervals=3)
    np.testing.assert_allclose(out3[0, 2:5], [2, 3, 4])
    assert filled3.sum() == 4


def test_linear_interpolation_does_not_join_two_channels():
    v = np.array([[1.0, 2.0, NAN], [NAN, 5.0, 6.0]])
    out, filled = linear_interpolation(v)
    assert not filled.any() and np.isnan(out[0, 2]) and np.isnan(out[1, 0])


def test_linear_interpolation_writes_only_the_target():
    v = np.array([[0.0, NAN, NAN, NAN, 4.0]])
    target = np.array([[False, False, True, True, True]])
    out, filled = linear_interpolation(v, target=target)
    assert np.isnan(out[0, 1]) and out[0, 2:4].tolist() == [2.0, 3.0]
    assert filled.sum() == 2


@given(
    st.floats(-100, 100),
    st.floats(-10, 10),
    st.integers(3, 40),
    st.data(),
)
def test_linear_interpolation_of_a_ramp_is_exact(a, b, n, data):
    ramp = a + b * np.arange(n, dtype=float)
    first = data.draw(st.integers(1, n - 2))
    length = data.draw(st.integers(1, min(8, n - 1 - first)))
    gappy = ramp.copy()
    gappy[first : first + length] = NAN
    out, filled = linear_interpolation(gappy[None, :], max_interp_intervals=8)
    np.testing.assert_allclose(out[0], ramp, rtol=1e-9, atol=1e-9)
    assert filled.sum() == length


# --- like-day profile --------------------------------------------------------------------------


def test_like_day_uses_the_same_slot_of_days_of_the_same_type():
    spd = 4
    days = np.array(
        [
            [1, 1, 1, 1],  # weekday
            [9, 9, 9, 9],  # weekend
            [3, NAN, 3, 3],  # weekday
            [NAN, NAN, NAN, NAN],  # weekday to estimate
            [NAN, NAN, NAN, NAN],  # weekend to estimate
        ]
    )
    types = [WEEKDAY, WEEKEND, WEEKDAY, WEEKDAY, WEEKEND]
    out, filled = like_day_profile(days.reshape(1, -1), slots_per_day=spd, day_types=types)
    got = out.reshape(5, spd)
    np.testing.assert_allclose(got[3], [2, 1, 2, 2])  # slot 1 had only one valid weekday
    np.testing.assert_allclose(got[4], [9, 9, 9, 9])
    np.testing.assert_allclose(got[2], [3, 1, 3, 3])  # the gap in day 2 as well
    assert filled.sum() == 9


def test_like_day_needs_enough_days_and_whole_days():
    v = np.array([[1.0, 2.0, NAN, NAN]])
    out, filled = like_day_profile(v, slots_per_day=2, day_types=[0, 0], min_days=2)
    assert not filled.any() and np.isnan(out[0, 2:]).all()
    with pytest.raises(ValueError, match="not 3 days"):
        like_day_profile(v, slots_per_day=2, day_types=[0, 0, 0])


def test_like_day_all_missing_channel_stays_missing():
    v = np.full((2, 8), NAN)
    v[1] = 1.0
    out, filled = like_day_profile(v, slots_per_day=4, day_types=[0, 0])
    assert np.isnan(out[0]).all() and not filled[0].any() and not filled[1].any()


def test_day_types_follow_the_local_calendar():
    # 2026-03-07 is a Saturday; 2026-03-09 a Monday
    days = [date(2026, 3, 6), date(2026, 3, 7), date(2026, 3, 8), date(2026, 3, 9)]
    assert day_types_for(days).tolist() == [0, 1, 1, 0]
    # at UTC noon it is already Saturday 01:00 in Auckland on the UTC Friday
    assert day_types_for([date(2026, 3, 6)], "Pacific/Auckland").tolist() == [1]


# --- estimate + flags ----------------------------------------------------------------------------


def test_estimate_interpolates_short_gaps_and_profiles_the_rest():
    spd = 8
    day = np.arange(1.0, 9.0)
    v = np.tile(day, 3)[None, :].copy()
    v[0, 9] = NAN  # short gap in day 1 → linear
    v[0, 16 + 2 : 16 + 7] = NAN  # long gap in day 2 → profile
    v[0, 23] = NAN  # day 2 last slot: only one neighbour → profile
    est = estimate(v, slots_per_day=spd, day_types=[0, 0, 0], max_interp_intervals=2)
    assert est.method[0, 9] == LINEAR_INTERPOLATION
    assert (est.method[0, 18:23] == LIKE_DAY_PROFILE).all() and est.method[0, 23] == LIKE_DAY_PROFILE
    np.testing.assert_allclose(est.values[0], np.tile(day, 3))
    counts = est.counts()
    assert counts["linear_interpolation"] == 1 and counts["like_day_profile"] == 6
    assert sum(counts.values()) == 7


def test_quality_flags():
    values = np.array([[1.0, 2.0, NAN, 3.0, NAN]])
    rejected = np.array([[False, True, True, False, False]])
    suspect = np.array([[False, False, False, True, False]])
    method = np.array([[0, 1, 0, 0, 0]], dtype=np.int8)
    flags = quality_flags(values, rejected, suspect, method)
    assert flags.tolist() == [
        [
            0,
            Quality.REJECTED | Quality.ESTIMATED,
            Quality.REJECTED | Quality.MISSING,
            Quality.SUSPECT,
            Quality.MISSING,
        ]
    ]


@settings(max_examples=80)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(1, 3), st.integers(1, 4).map(lambda d: d * 6)),
        elements=st.one_of(st.just(NAN), st.floats(0, 5)),
    ),
    st.integers(0, 8),
)
def test_estimation_never_changes_a_received_value(values, max_interp):
    days = values.shape[1] // 6
    est = estimate(
        values, slots_per_day=6, day_types=[d % 2 for d in range(days)], max_interp_intervals=max_interp
    )
    received = ~np.isnan(values)
    assert (est.values[received] == values[received]).all()
    assert (est.method[received] == NOT_ESTIMATED).all()
    # every interval is exactly one of: received, estimated, still missing
    estimated = est.method != NOT_ESTIMATED
    still_missing = np.isnan(est.values)
    assert (received.astype(int) + estimated + still_missing == 1).all()
    flags = quality_flags(est.values, np.zeros_like(received), np.zeros_like(received), est.method)
    assert (flags[received] == 0).all()
    assert (flags[estimated] == Quality.ESTIMATED).all() and (flags[still_missing] == Quality.MISSING).all()


def test_holidays_count_as_weekend_days():
    days = [date(2026, 1, 26), date(2026, 1, 27)]  # Republic Day (Mon), then an ordinary Tuesday
    assert day_types_for(days, "Asia/Kolkata").tolist() == [0, 0]
    assert day_types_for(days, "Asia/Kolkata", holiday_country="IN").tolist() == [1, 0]


def test_like_day_within_recent_weeks_only():
    from meter2cash.mdm.vee.estimation import like_day_profile

    spd = 2
    v = np.array([[1.0, 1.0, 9.0, 9.0, 2.0, 2.0, NAN, NAN]])  # days 0..3, all weekdays
    near, _ = like_day_profile(v, slots_per_day=spd, day_types=[0, 0, 0, 0], window_days=1)
    far, _ = like_day_profile(v, slots_per_day=spd, day_types=[0, 0, 0, 0])
    np.testing.assert_allclose(near[0, 6:], [2.0, 2.0])  # only day 2 is within a day
    np.testing.assert_allclose(far[0, 6:], [4.0, 4.0])  # mean of days 0..2


def test_average_daily_use_and_outage_zeros():
    from meter2cash.mdm.vee.estimation import AVERAGE_DAILY_USE, OUTAGE_ZERO

    spd = 4
    v = np.array([[1.0, 1, 1, 1, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN]])
    outage = np.zeros(v.shape, dtype=bool)
    outage[0, 8:] = True
    est = estimate(v, slots_per_day=spd, day_types=[0, 1, 2], outage=outage, max_interp_intervals=0)
    assert (est.method[0, 8:] == OUTAGE_ZERO).all() and (est.values[0, 8:] == 0).all()
    assert (est.method[0, 4:8] == AVERAGE_DAILY_USE).all()  # no like-day of its type
    np.testing.assert_allclose(est.values[0, 4:8], 1.0)


@settings(max_examples=60)
@given(
    st.lists(st.floats(0.01, 5), min_size=8, max_size=8),
    st.lists(st.booleans(), min_size=8, max_size=8),
    st.floats(0, 40),
)
def test_adjustment_to_the_register_makes_the_day_add_up(vals, est_mask, advance):
    from meter2cash.mdm.vee.estimation import adjust_to_scalar

    v = np.array(vals)[None, :]
    m = np.array(est_mask)[None, :]
    out, scaled = adjust_to_scalar(v, m, np.array([[advance, advance]]), slots_per_day=4)
    for d in (0, 1):
        sl = slice(4 * d, 4 * d + 4)
        actual = v[0, sl][~m[0, sl]].sum()
        if scaled[0, sl].any():
            assert np.isclose(out[0, sl].sum(), advance) and (out[0, sl] >= 0).all()
        else:
            np.testing.assert_array_equal(out[0, sl], v[0, sl])
            assert not m[0, sl].any() or advance < actual
        np.testing.assert_array_equal(out[0, sl][~m[0, sl]], v[0, sl][~m[0, sl]])  # received kept
