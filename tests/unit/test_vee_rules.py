from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from conftest import shared_data
from meter2cash.core.errors import InvalidInput
from meter2cash.mdm.vee.codes import (
    INTERVAL_SPIKE,
    MISSING_INTERVAL,
    NEGATIVE_CONSUMPTION,
    STUCK_REGISTER,
    ZERO_RUN,
)
from meter2cash.mdm.vee.evaluate import evaluate
from meter2cash.mdm.vee.rules.basic import (
    interval_spike_check,
    missing_interval_check,
    negative_consumption_check,
    row_quantile,
    stuck_register_check,
    zero_run_check,
)
from meter2cash.mdm.vee.ruleset.schema import RuleSet, intervals_for
from meter2cash.mdm.vee.types import RuleContext, find_runs, runs_to_mask

NAN = np.nan
CTX = RuleContext(interval_s=900)


def _runs(findings):
    return [(f.row, f.first, f.count) for f in findings]


# --- run helpers -------------------------------------------------------------------------------


def test_runs_never_cross_from_one_channel_to_the_next():
    mask = np.array([[0, 0, 1, 1], [1, 1, 0, 1]], dtype=bool)
    rows, cols, lengths = find_runs(mask)
    assert list(zip(rows, cols, lengths, strict=True)) == [(0, 2, 2), (1, 0, 2), (1, 3, 1)]
    assert [tuple(r) for r in zip(*find_runs(mask, 2), strict=True)] == [(0, 2, 2), (1, 0, 2)]


@given(arrays(bool, st.tuples(st.integers(1, 4), st.integers(0, 30))))
def test_runs_to_mask_inverts_find_runs(mask):
    assert (runs_to_mask(mask.shape, *find_runs(mask)) == mask).all()


def test_row_quantile_ignores_unusable_values_and_empty_rows():
    v = np.array([[1.0, 2.0, 3.0, NAN, 100.0], [NAN, NAN, NAN, NAN, NAN]])
    q = row_quantile(v, 0.5, v > 1)
    assert q[0] == 3.0 and np.isnan(q[1])


# --- missing interval --------------------------------------------------------------------------


def test_missing_interval_one_finding_per_run():
    v = np.array([[NAN, 1, NAN, NAN, 2], [1, 2, 3, 4, NAN]])
    res = missing_interval_check(v)
    assert _runs(res.findings) == [(0, 0, 1), (0, 2, 2), (1, 4, 1)]
    assert res.findings[1].data == {"intervals": 2}
    assert res.mask.sum() == 4


def test_missing_interval_one_dimensional_and_empty():
    assert _runs(missing_interval_check(np.array([1.0, NAN])).findings) == [(0, 1, 1)]
    assert missing_interval_check(np.empty((3, 0))).findings == []
    assert _runs(missing_interval_check(np.full((1, 5), NAN)).findings) == [(0, 0, 5)]


def test_missing_intervals_of_a_real_london_household():
    """LCL MAC000060, half-hourly: three whole days were never received."""
    path = shared_data("loadprofiles/lcl_MAC000060.csv")
    df = pd.read_csv(path, header=0, names=["ts", "kwh"], parse_dates=["ts"])
    step = pd.Timedelta(minutes=30)
    grid = pd.date_range(df.ts.iloc[0], df.ts.iloc[-1], freq=step)
    values = df.set_index("ts").kwh.reindex(grid).to_numpy()[None, :]
    # independent reasoning: a jump of k half-hours between consecutive readings is a gap of k-1
    jumps = df.ts.diff()
    at = jumps > step
    gap_first = ((df.ts[at] - jumps[at] + step - df.ts.iloc[0]) / step).astype(int).tolist()
    gap_len = (jumps[at] / step - 1).astype(int).tolist()
    assert len(gap_first) == 3 and gap_len == [48, 48, 48]

    res = missing_interval_check(values)
    assert _runs(res.findings) == [(0, f, n) for f, n in zip(gap_first, gap_len, strict=True)]
    assert [grid[f.first].date().isoformat() for f in res.findings] == [
        "2012-10-18",
        "2012-12-12",
        "2012-12-29",
    ]
    # the default rule set finds nothing else in this ordinary household's data
    found = evaluate(values, RuleContext(1800)).findings
    assert {f.rule for f in found} == {MISSING_INTERVAL} and len(found) == 3


# --- negative consumption ----------------------------------------------------------------------


def test_negative_consumption_only_on_import_channels():
    v = np.array([[1, -0.5, -2, 1], [-1, 1, 1, NAN]])
    res = negative_consumption_check(v, CTX)
    assert _runs(res.findings) == [(0, 1, 2), (1, 0, 1)]
    assert res.findings[0].data["value"] == -2.0
    export_second = RuleContext(900, import_rows=np.array([True, False]))
    assert _runs(negative_consumption_check(v, export_second).findings) == [(0, 1, 2)]


# --- interval spike ----------------------------------------------------------------------------


def test_interval_spike_above_level_and_neighbours():
    v = np.array([[0.2, 0.3, 9.0, 0.25, 0.2, 0.2, 0.3, 0.2]])
    res = interval_spike_check(v, CTX, floor_per_hour=0.0)
    assert _runs(res.findings) == [(0, 2, 1)]
    assert res.findings[0].data["value"] == 9.0
    assert res.findings[0].data["threshold"] == pytest.approx(3 * 0.3)


def test_interval_spike_needs_to_exceed_the_absolute_floor():
    v = np.array([[0.01, 0.01, 0.2, 0.01, 0.01]])  # 20x the level, but only 0.8 kW
    assert interval_spike_check(v, CTX, floor_per_hour=2.0).findings == []
    assert _runs(interval_spike_check(v, CTX, floor_per_hour=0.5).findings) == [(0, 2, 1)]


def test_a_high_plateau_is_not_a_spike():
    v = np.array([[0.2, 0.2, 5.0, 5.2, 5.1, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2]])
    assert interval_spike_check(v, CTX, floor_per_hour=0.0, quantile=0.5).findings == []


def test_spike_level_uses_history_and_missing_neighbours():
    v = np.array([[NAN, 3.0, NAN]])
    assert interval_spike_check(v, CTX).findings == []  # level 3.0 from the value itself
    hist = np.full((1, 50), 0.2)
    res = interval_spike_check(v, RuleContext(900, history=hist))
    assert _runs(res.findings) == [(0, 1, 1)]


# --- stuck register and zero runs ----------------------------------------------------------------


def test_stuck_register_finds_long_flat_lines_only():
    v = np.concatenate([np.full(16, 0.7), [0.1], np.full(15, 0.3), np.zeros(20)])[None, :]
    res = stuck_register_check(v, min_intervals=16)
    assert _runs(res.findings) == [(0, 0, 16)]
    assert res.findings[0].data["value"] == 0.7
    assert res.mask.sum() == 16


def test_stuck_register_is_broken_by_a_gap_and_per_channel():
    v = np.array([[1, 1, NAN, 1, 1, 1], [2, 2, 2, 2, 3, 3]], dtype=float)
    assert _runs(stuck_register_check(v, min_intervals=3).findings) == [(0, 3, 3), (1, 0, 4)]


def test_zero_run():
    v = np.array([[0, 0, 0, 1, 0, 0, NAN, 0, 0, 0, 0]], dtype=float)
    res = zero_run_check(v, min_intervals=3)
    assert _runs(res.findings) == [(0, 0, 3), (0, 7, 4)]
    assert res.findings[0].data == {"intervals": 3, "value": 0.0}


# --- a rule set --------------------------------------------------------------------------------


def test_evaluate_applies_actions():
    v = np.concatenate([[0.2, -1, 0.2, 9.0, 0.2, NAN], np.zeros(16), np.full(16, 0.5)])[None, :]
    ev = evaluate(v, CTX)
    rules = {f.rule: f.action for f in ev.findings}
    assert rules == {
        MISSING_INTERVAL: "flag",
        NEGATIVE_CONSUMPTION: "reject",
        INTERVAL_SPIKE: "reject",
        ZERO_RUN: "info",
        STUCK_REGISTER: "reject",
    }
    assert np.flatnonzero(ev.rejected[0]).tolist() == [1, 3, *range(22, 38)]
    assert not ev.suspect.any()  # a missing interval has no value to mark suspect
    assert not (ev.rejected & np.isnan(v)).any()


def test_rule_set_actions_and_switches_from_toml(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(
        'name = "north"\nversion = "2026.2"\n'
        '[rules.interval_spike]\naction = "flag"\nfactor = 2.0\n'
        "[rules.zero_run]\nenabled = false\n"
        "[estimation]\nmax_interp_hours = 1.0\n"
    )
    rs = RuleSet.from_toml(path)
    assert (rs.name, rs.version, rs.rules.interval_spike.factor) == ("north", "2026.2", 2.0)
    v = np.concatenate([[0.2, 0.2, 9.0, 0.2], np.zeros(16)])[None, :]
    ev = evaluate(v, CTX, rs)
    assert {f.rule for f in ev.findings} == {INTERVAL_SPIKE}
    assert ev.suspect[0, 2] and not ev.rejected.any()


@pytest.mark.parametrize(
    "text",
    ['[rules.interval_spike]\naction = "delete"\n', "[rules.no_such_rule]\n", "name = \n"],
)
def test_bad_rule_set_is_refused_with_a_code(tmp_path, text):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(InvalidInput) as err:
        RuleSet.from_toml(path)
    assert err.value.code == "vee.rule_set_invalid"


def test_hours_to_intervals():
    assert intervals_for(4.0, 900) == 16 and intervals_for(4.0, 1800) == 8 and intervals_for(0.1, 3600) == 1


@settings(max_examples=60)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(1, 3), st.integers(1, 60)),
        elements=st.sampled_from([NAN, 0.0, -1.0, 0.2, 0.5, 40.0]),
    )
)
def test_findings_match_masks_and_never_reject_missing(values):
    ev = evaluate(values, CTX)
    for f in ev.findings:
        assert f.first >= 0 and f.first + f.count <= values.shape[1] and f.count >= 1
    assert not (ev.rejected & ev.suspect).any()
    assert not ((ev.rejected | ev.suspect) & np.isnan(values)).any()
    missing = [f for f in ev.findings if f.rule == MISSING_INTERVAL]
    assert sum(f.count for f in missing) == np.isnan(values).sum()


def _spikes_by_definition(values, history, *, quantile, factor, floor, neighbour_factor):
    """The spike rule as documented, computed the slow way (a quantile for every channel)."""
    from meter2cash.mdm.vee.rules.basic import row_quantile

    pool = values if history is None else np.concatenate((history, values), axis=1)
    level = row_quantile(pool, quantile, pool > 0)
    threshold = np.fmax(floor, factor * level)
    left = np.full_like(values, np.nan)
    right = np.full_like(values, np.nan)
    left[:, 1:], right[:, :-1] = values[:, :-1], values[:, 1:]
    nb = np.fmax(left, right)
    with np.errstate(invalid="ignore"):
        above = np.isnan(nb) | (values > neighbour_factor * np.fmax(nb, 0.0))
        return (values > threshold[:, None]) & above


@settings(max_examples=150, deadline=None)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(1, 4), st.integers(2, 30)),
        elements=st.one_of(st.just(np.nan), st.floats(-1, 20), st.sampled_from([0.0, 1.0, 6.0])),
    ),
    st.booleans(),
    st.floats(0.5, 1.0),
    st.floats(0.5, 4.0),
    st.floats(0.0, 3.0),
)
def test_spike_rule_equals_its_definition(values, with_history, quantile, factor, floor_per_hour):
    history = np.abs(values[:, ::-1]) if with_history else None
    ctx = RuleContext(3600, history=history)
    res = interval_spike_check(values, ctx, quantile=quantile, factor=factor, floor_per_hour=floor_per_hour)
    expected = _spikes_by_definition(
        values, history, quantile=quantile, factor=factor, floor=floor_per_hour, neighbour_factor=3.0
    )
    assert res.mask.tolist() == expected.tolist()
