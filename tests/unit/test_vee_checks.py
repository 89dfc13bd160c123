"""Context rules of VEE: registers, sum check, history, outages, metadata, duplicates, replacement."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from meter2cash.core.quality import Quality
from meter2cash.mdm.vee import codes
from meter2cash.mdm.vee.codes import ZERO_RUN
from meter2cash.mdm.vee.evaluate import evaluate
from meter2cash.mdm.vee.rules import history, metadata, receipts, registers
from meter2cash.mdm.vee.rules.basic import zero_run_check
from meter2cash.mdm.vee.ruleset.schema import RuleSet
from meter2cash.mdm.vee.types import RuleContext

NAN = np.nan
SPD = 4  # a tiny "day" of four 6-hour intervals keeps the arrays readable


def _codes(res):
    return [(f.rule, f.row, f.first, f.count) for f in res.findings]


def test_register_decrease_is_found_and_rollover_is_not_a_decrease():
    reads = np.array([[10.0, 12.0, 11.0, 15.0], [999_990.0, 5.0, 9.0, NAN]])
    adv, res = registers.register_advance(reads, rollover=1_000_000)
    assert _codes(res) == [(codes.REGISTER_DECREASE, 0, 2, 1), (codes.REGISTER_ROLLOVER, 1, 1, 1)]
    np.testing.assert_allclose(adv[0], [NAN, 2.0, NAN, 4.0])
    np.testing.assert_allclose(adv[1, 1:3], [15.0, 4.0])
    assert res.findings[0].data == {"value": 11.0, "previous": 12.0}


def test_without_rollover_every_decrease_is_a_finding():
    _, res = registers.register_advance(np.array([[999_990.0, 5.0]]), rollover=None)
    assert _codes(res) == [(codes.REGISTER_DECREASE, 0, 1, 1)]


@given(st.lists(st.floats(0, 100), min_size=2, max_size=30))
def test_advances_of_an_increasing_register_add_up(steps):
    reads = np.cumsum([0.0, *steps])[None, :]
    adv, res = registers.register_advance(reads, rollover=None)
    assert res.findings == []
    assert np.isclose(np.nansum(adv), reads[0, -1] - reads[0, 0])


def test_sum_check_compares_complete_days_with_the_register_advance():
    v = np.array([[1.0, 1, 1, 1, 1, 1, 1, 1, 1, NAN, 1, 1]])  # three days
    adv = np.array([[4.0, 5.0, 9.0]])
    res = registers.sum_check(v, adv, slots_per_day=SPD, tolerance=0.01, tolerance_rel=0.0)
    assert _codes(res) == [(codes.SUM_CHECK, 0, 4, 4)]  # day 0 agrees, day 2 is incomplete
    assert res.findings[0].data == {"interval_sum": 4.0, "register_advance": 5.0, "difference": -1.0}
    assert res.mask[0, 4:8].all() and res.mask.sum() == 4


def test_tou_registers_must_sum_to_the_total():
    total = np.array([[10.0, 10.0]])
    tou = np.array([[[4.0, 4.0], [6.0, 5.0]]])
    assert registers.tou_sum_check(total, tou).tolist() == [[False, True]]


def test_high_and_low_usage_against_the_channels_history():
    hist = np.tile([1.0, 1, 1, 1], 5)[None, :]  # 4 per day
    v = np.array([[5.0, 5, 5, 5, 0.1, 0.1, 0.1, 0.1, 1, 1, 1, 1]])
    high, low = history.high_low_usage_check(v, hist, slots_per_day=SPD)
    assert _codes(high) == [(codes.HIGH_USAGE, 0, 0, 4)]
    assert _codes(low) == [(codes.LOW_USAGE, 0, 4, 4)]
    assert high.findings[0].data == {"day_total": 20.0, "reference": 4.0}


def test_high_low_usage_needs_enough_history():
    hist = np.tile([1.0, 1, 1, 1], 2)[None, :]
    high, low = history.high_low_usage_check(np.full((1, 4), 9.0), hist, slots_per_day=SPD)
    assert high.findings == [] and low.findings == []


def test_dynamic_comparison_against_slot_statistics():
    rng = np.random.default_rng(1)
    hist = (1.0 + 0.05 * rng.standard_normal((1, 10 * SPD))).clip(0)
    v = np.array([[1.0, 1.02, 4.0, 0.98]])
    res = history.dynamic_comparison_check(
        v, hist, slots_per_day=SPD, z=6, floor_per_hour=0.0, interval_s=21_600
    )
    assert _codes(res) == [(codes.DYNAMIC_COMPARISON, 0, 2, 1)]
    assert res.findings[0].data["value"] == 4.0 and 0.9 < res.findings[0].data["mean"] < 1.1


def test_outage_windows_pair_power_fail_events():
    s, e = registers.outage_windows(
        np.array([100, 200, 300, 450]), ["102", "101", "102", "101"], since=0, until=1000
    )
    assert s.tolist() == [0, 200, 450] and e.tolist() == [100, 300, 1000]
    mask = registers.window_mask(s, e, t0=0, n=10, interval_s=100)
    assert mask.astype(int).tolist() == [1, 0, 1, 0, 1, 1, 1, 1, 1, 1]


def test_zeros_inside_a_recorded_outage_are_valid():
    v = np.zeros((1, 8))
    outage = np.array([[True] * 5 + [False] * 3])
    assert zero_run_check(v, min_intervals=4, outage=outage).findings == []
    assert _codes(zero_run_check(v, min_intervals=4)) == [(ZERO_RUN, 0, 0, 8)]
    ctx = RuleContext(21_600, outage=np.array([[True] * 8]))
    assert ZERO_RUN not in {f.rule for f in evaluate(np.zeros((1, 8)), ctx).findings}


def test_metadata_checks():
    size, unit, mult = metadata.metadata_check(
        4,
        interval_s=[900, 1800],
        expected_interval_s=[900, 900],
        units=["kWh", "kW"],
        multipliers=[1.0, 0.0],
        allowed_multipliers=None,
    )
    assert _codes(size) == [(codes.INTERVAL_SIZE, 1, 0, 4)]
    assert _codes(unit) == [(codes.UNIT_OF_MEASURE, 1, 0, 4)]
    assert _codes(mult) == [(codes.MULTIPLIER, 1, 0, 4)]
    _, _, only = metadata.metadata_check(
        2,
        interval_s=[900],
        expected_interval_s=[900],
        units=["kWh"],
        multipliers=[40.0],
        allowed_multipliers=[1, 10],
    )
    assert only.findings[0].data == {"multiplier": 40.0}


def test_inactive_measurement_and_duplicate_imd():
    v = np.array([[1.0, 2.0, NAN, 4.0]])
    active = np.array([[False, True, False, True]])
    assert _codes(metadata.inactive_measurement_check(v, active)) == [(codes.INACTIVE_MEASUREMENT, 0, 0, 1)]
    dup = receipts.duplicate_imd_check(v, np.array([[1.0, 2.5, 3.0, NAN]]))
    assert _codes(dup) == [(codes.DUPLICATE_IMD, 0, 1, 1)]
    assert dup.findings[0].data == {"intervals": 1, "value": 2.0, "earlier": 2.5}


def test_replacement_rules_replace_estimates_and_keep_edits():
    est, edit = int(Quality.ESTIMATED), int(Quality.EDITED)
    raw = np.array([[1.0, 2.0, 3.0, NAN]])
    prev = np.array([[est, 0, edit, est]], dtype=np.uint16)
    replaced, kept = receipts.replacement_check(raw, prev, estimated_bit=est, edited_bit=edit)
    assert _codes(replaced) == [(codes.ESTIMATE_REPLACED, 0, 0, 1)]
    assert _codes(kept) == [(codes.EDIT_KEPT, 0, 2, 1)]


def test_prolonged_estimation_counts_the_run_from_the_history():
    est = np.array([[False, True, True, True, True, False, True, True]])
    res = history.prolonged_estimation_check(est, min_intervals=4, offset=3)
    assert _codes(res) == [(codes.PROLONGED_ESTIMATION, 0, 0, 2)]
    assert res.findings[0].data == {"intervals": 2, "run_intervals": 4}
    assert res.mask.tolist() == [[True, True, False, False, False]]


def test_exception_action_marks_suspect_and_evaluate_runs_context_rules():
    rs = RuleSet.from_mapping({"rules": {"inactive_measurement": {"action": "exception"}}})
    v = np.array([[1.0, 1.1, 1.2, 1.3]])
    ctx = RuleContext(21_600, active=np.array([[False, False, True, True]]))
    ev = evaluate(v, ctx, rs)
    found = [f for f in ev.findings if f.rule == codes.INACTIVE_MEASUREMENT]
    assert [(f.first, f.count, f.action) for f in found] == [(0, 2, "exception")]
    assert ev.suspect[0].tolist() == [True, True, False, False] and not ev.rejected.any()


@given(
    st.lists(st.tuples(st.integers(0, 2000), st.integers(1, 500)), max_size=6),
    st.integers(0, 1000),
    st.sampled_from([60, 900, 1800]),
)
def test_window_mask_marks_exactly_the_overlapping_intervals(windows, t0, interval_s):
    starts = np.array([s for s, _ in windows], dtype=np.int64)
    ends = starts + np.array([d for _, d in windows], dtype=np.int64)
    n = 40
    mask = registers.window_mask(starts, ends, t0=t0, n=n, interval_s=interval_s)
    lo = t0 + np.arange(n) * interval_s
    hi = lo + interval_s
    expected = np.zeros(n, dtype=bool)
    for s, e in zip(starts, ends, strict=True):
        expected |= (lo < e) & (hi > s)
    assert mask.tolist() == expected.tolist()


@given(st.lists(st.floats(0, 10), min_size=8, max_size=8), st.floats(0, 50))
def test_sum_check_fails_exactly_when_the_difference_exceeds_the_tolerance(vals, advance):
    v = np.array(vals)[None, :]
    res = registers.sum_check(
        v, np.array([[advance, advance]]), slots_per_day=4, tolerance=0.5, tolerance_rel=0.0
    )
    diffs = [abs(sum(vals[:4]) - advance), abs(sum(vals[4:]) - advance)]
    assert [f.first // 4 for f in res.findings] == [d for d in (0, 1) if diffs[d] > 0.5]
