"""The fused VEE kernels give exactly what the rule and estimation functions give one by one."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from meter2cash.core.quality import Quality
from meter2cash.mdm.vee.compiled import kernels
from meter2cash.mdm.vee.compiled.fused import evaluate_fused
from meter2cash.mdm.vee.estimation import _estimate_fused, estimate, quality_flags
from meter2cash.mdm.vee.evaluate import evaluate
from meter2cash.mdm.vee.ruleset.schema import RuleSet
from meter2cash.mdm.vee.types import Evaluation, RuleContext

NAN = np.nan


def _same(values: np.ndarray, ctx: RuleContext, rs: RuleSet) -> Evaluation:
    """The fused evaluation (never the fallback) compared with the rules one by one."""
    fused = evaluate_fused(values, ctx, rs)
    assert fused is not None
    separate = evaluate(values, ctx, rs, fused=False)
    assert [f.to_dict() for f in fused.findings] == [f.to_dict() for f in separate.findings]
    assert fused.rejected.tolist() == separate.rejected.tolist()
    assert fused.suspect.tolist() == separate.suspect.tolist()
    return fused


SPD = 4  # four 6-hour intervals a day keep the arrays small
EST, EDIT, REJ = int(Quality.ESTIMATED), int(Quality.EDITED), int(Quality.REJECTED)
# NaN, zeros, repeats (flat lines), negatives and spikes among ordinary values
VALUES = st.sampled_from([NAN, NAN, 0.0, 0.0, -0.5, 0.2, 0.2, 0.5, 1.0, 1.3, 40.0, 250.0])
ACTIONS = st.sampled_from(["info", "flag", "reject", "exception"])


@st.composite
def rule_sets(draw: st.DrawFn) -> RuleSet:
    def rule(**extra: object) -> dict[str, object]:
        return {"enabled": draw(st.booleans()) or draw(st.booleans()), "action": draw(ACTIONS), **extra}

    return RuleSet.from_mapping(
        {
            "rules": {
                "missing_interval": rule(),
                "negative_consumption": rule(),
                "interval_spike": rule(
                    quantile=draw(st.sampled_from([0.5, 0.9, 0.95, 1.0])),
                    factor=draw(st.sampled_from([1.5, 3.0])),
                    floor_per_hour=draw(st.sampled_from([0.0, 0.05, 2.0])),
                    neighbour_factor=draw(st.sampled_from([1.0, 3.0])),
                ),
                "stuck_register": rule(min_hours=draw(st.sampled_from([6.0, 12.0, 18.0]))),
                "zero_run": rule(min_hours=draw(st.sampled_from([6.0, 12.0]))),
                "sum_check": rule(tolerance=draw(st.sampled_from([0.0, 0.5])), tolerance_rel=0.02),
                "high_low_usage": rule(
                    high_factor=draw(st.sampled_from([1.5, 3.0])),
                    low_factor=draw(st.sampled_from([0.2, 0.8])),
                    min_history_days=draw(st.integers(1, 3)),
                ),
                "dynamic_comparison": rule(
                    z=draw(st.sampled_from([0.5, 6.0])),
                    floor_per_hour=draw(st.sampled_from([0.0, 0.1])),
                    min_history_days=draw(st.integers(2, 3)),
                ),
                "metadata": rule(allowed_multipliers=draw(st.sampled_from([(), (1.0, 10.0)]))),
                "inactive_measurement": rule(),
                "duplicate_imd": rule(),
                "replacement": {"enabled": draw(st.booleans()), "keep_edits": draw(st.booleans())},
            }
        }
    )


@st.composite
def cases(draw: st.DrawFn) -> tuple[np.ndarray, RuleContext]:
    rows = draw(st.integers(1, 4))
    days = draw(st.integers(1, 3))
    n = days * SPD + draw(st.sampled_from([0, 0, 0, 1]))  # now and then not whole days
    shape = (rows, n)
    values = draw(arrays(np.float64, shape, elements=VALUES))

    def maybe(strategy: st.SearchStrategy[np.ndarray]) -> np.ndarray | None:
        return draw(st.one_of(st.none(), strategy))

    hist_len = draw(st.sampled_from([0, SPD * 2, SPD * 5, 7]))
    history = maybe(arrays(np.float64, (rows, hist_len), elements=VALUES.map(abs)))
    earlier = values.copy()
    earlier[draw(arrays(bool, shape))] = 0.3
    metadata = (
        [draw(st.sampled_from([21_600, 3600])) for _ in range(rows)],
        [draw(st.sampled_from([21_600, None])) for _ in range(rows)],
        [draw(st.sampled_from(["kWh", "kWh", "kW"])) for _ in range(rows)],
        [draw(st.sampled_from([1.0, 1.0, 10.0, 40.0, 0.0])) for _ in range(rows)],
    )
    ctx = RuleContext(
        86_400 // SPD,
        history=history,
        import_rows=maybe(arrays(bool, (rows,))),
        outage=maybe(arrays(bool, shape)),
        active=maybe(arrays(bool, shape, elements=st.sampled_from([True, True, True, False]))),
        earlier_raw=draw(st.sampled_from([None, earlier])),
        prev_flags=maybe(arrays(np.uint16, shape, elements=st.sampled_from([0, 0, EST, EDIT, EST | REJ]))),
        day_advance=maybe(
            arrays(np.float64, (rows, n // SPD), elements=st.sampled_from([NAN, 0.0, 1.0, 2.9, 60.0]))
        ),
        metadata=draw(st.sampled_from([None, metadata])),
    )
    return values, ctx


@settings(max_examples=400, deadline=None)
@given(cases(), rule_sets())
def test_fused_rule_set_equals_the_rules_one_by_one(case, rs):
    _same(*case, rs)


@settings(max_examples=200, deadline=None)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(1, 3), st.integers(1, 40)),
        elements=st.one_of(st.just(NAN), st.floats(-1, 50), st.sampled_from([0.0, 1.0, 6.0])),
    ),
    st.booleans(),
    rule_sets(),
)
def test_fused_spike_and_run_rules_on_any_values(values, with_history, rs):
    history = np.abs(values[:, ::-1]) if with_history else None
    _same(values, RuleContext(86_400 // SPD, history=history), rs)


def test_fused_rule_set_on_a_long_row_with_many_runs():
    """More runs than the first run buffer holds, rows of more than 128 intervals a day."""
    rng = np.random.default_rng(5)
    spd = 288  # 5-minute intervals
    values = rng.choice([NAN, 0.0, 0.4, 0.4, -1.0, 9.0], size=(30, spd * 3))
    history = np.abs(rng.normal(0.3, 0.1, size=(30, spd * 4)))
    ctx = RuleContext(300, history=history, day_advance=np.full((30, 3), 50.0))
    assert len(_same(values, ctx, RuleSet()).findings) > 20 * 30


@st.composite
def estimation_cases(draw: st.DrawFn) -> dict[str, object]:
    rows = draw(st.integers(1, 3))
    days = draw(st.integers(1, 5))
    shape = (rows, days * SPD)
    values = draw(
        arrays(np.float64, shape, elements=st.one_of(st.just(NAN), st.sampled_from([0.0, 0.5, 2.0])))
    )

    def maybe(strategy: st.SearchStrategy[np.ndarray]) -> np.ndarray | None:
        return draw(st.one_of(st.none(), strategy))

    return {
        "values": values,
        "slots_per_day": SPD,
        "day_types": draw(st.lists(st.integers(0, 2), min_size=days, max_size=days)),
        "target": maybe(arrays(bool, shape)),
        "max_interp_intervals": draw(st.integers(0, 4)),
        "min_like_days": draw(st.integers(1, 3)),
        "outage": maybe(arrays(bool, shape, elements=st.sampled_from([False, False, True]))),
        "learned": maybe(arrays(np.float64, shape, elements=st.sampled_from([NAN, NAN, -0.2, 0.7]))),
        "day_advance": maybe(
            arrays(np.float64, (rows, days), elements=st.sampled_from([NAN, 0.0, 0.5, 3.0, 40.0]))
        ),
    }


@settings(max_examples=300, deadline=None)
@given(estimation_cases())
def test_fused_estimation_equals_the_methods_one_by_one(case):
    args = [case[k] for k in ("values", "slots_per_day", "day_types", "target", "max_interp_intervals")]
    args += [case[k] for k in ("min_like_days", "outage", "learned", "day_advance")]
    fused = _estimate_fused(*args)
    assert fused is not None
    separate = estimate(**case, fused=False)
    assert np.array_equal(fused.values, separate.values, equal_nan=True)
    assert fused.method.tolist() == separate.method.tolist()


def test_estimation_of_days_that_do_not_fit_the_day_types_is_refused_as_before():
    v = np.array([[1.0, NAN, 1.0, NAN, NAN, NAN]])
    with pytest.raises(ValueError, match="not 1 days"):
        estimate(v, slots_per_day=SPD, day_types=[0])


@given(
    arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(1, 9)), elements=st.sampled_from([NAN, 1.0])),
    st.data(),
)
def test_quality_flags_kernel_sets_the_documented_bits(values, data):
    shape = values.shape
    rejected = data.draw(arrays(bool, shape))
    suspect = data.draw(arrays(bool, shape))
    method = data.draw(arrays(np.int8, shape, elements=st.integers(0, 6)))
    expected = (
        np.where(np.isnan(values), Quality.MISSING, 0)
        | np.where(rejected, Quality.REJECTED, 0)
        | np.where(suspect, Quality.SUSPECT, 0)
        | np.where(method != 0, Quality.ESTIMATED, 0)
    )
    assert quality_flags(values, rejected, suspect, method).tolist() == expected.tolist()
    assert quality_flags(values, rejected, suspect, method.astype(np.int64)).tolist() == expected.tolist()


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 96, 127, 128, 129, 300, 1440, 5000])
def test_pairwise_sum_adds_in_numpys_order(n):
    rng = np.random.default_rng(n)
    a = rng.normal(size=n + 3) * 10.0 ** rng.integers(-8, 9, size=n + 3)
    assert kernels.pairwise_sum(a, 3, n) == a[3:].sum()


@given(st.lists(st.floats(0.001, 1e6), min_size=1, max_size=300), st.data())
def test_kth_smallest_selects_like_a_sort(xs, data):
    k = data.draw(st.integers(0, len(xs) - 1))
    assert kernels._kth_smallest(np.array(xs), len(xs), k) == sorted(xs)[k]
