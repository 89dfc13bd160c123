"""Outage-aware VEE kernels: the zeros of the intervals not received inside an outage, the rules
that leave outage intervals alone, and the estimation that does not scale an outage's zeros.
Expectations by hand, on days of four 6-hour intervals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from meter2cash.mdm.vee.estimation import (
    LIKE_DAY_PROFILE,
    NOT_ESTIMATED,
    OUTAGE_ZERO,
    SCALAR_ADJUSTED,
    estimate,
)
from meter2cash.mdm.vee.evaluate import evaluate
from meter2cash.mdm.vee.rules.history import dynamic_comparison_check, high_low_usage_check
from meter2cash.mdm.vee.rules.registers import fill_outage_gaps
from meter2cash.mdm.vee.ruleset.schema import RuleSet
from meter2cash.mdm.vee.types import RuleContext

NAN = np.nan
SPD = 4
INTERVAL_S = 86_400 // SPD


def test_nothing_received_inside_an_outage_is_zero_and_nothing_else_changes():
    values = np.array([[1.0, NAN, NAN, 0.0, NAN], [NAN, 2.0, NAN, NAN, 3.0]])
    outage = np.array([[False, True, False, True, True], [False, True, True, False, False]])
    filled, mask = fill_outage_gaps(values, outage)
    np.testing.assert_array_equal(filled, [[1.0, 0.0, NAN, 0.0, 0.0], [NAN, 2.0, 0.0, NAN, 3.0]])
    assert mask.tolist() == [[False, True, False, False, True], [False, False, True, False, False]]
    assert np.isnan(values[0, 1])  # the input is not changed


def test_no_outage_gap_returns_the_values_as_they_are():
    values = np.array([[1.0, NAN, 2.0]])
    filled, mask = fill_outage_gaps(values, np.array([[True, False, True]]))
    assert filled is values and not mask.any()


def _rules(**rules: dict[str, object]) -> RuleSet:
    off = {"enabled": False}
    base: dict[str, object] = {
        name: off
        for name in (
            "missing_interval", "negative_consumption", "interval_spike", "stuck_register", "zero_run",
            "sum_check", "high_low_usage", "dynamic_comparison", "metadata", "inactive_measurement",
            "duplicate_imd", "replacement", "prolonged_estimation",
        )
    }  # fmt: skip
    return RuleSet.from_mapping({"rules": {**base, **rules}})


@pytest.mark.parametrize("fused", [True, False])
def test_a_gap_inside_an_outage_is_no_missing_interval_and_its_zeros_no_zero_run(fused):
    values = np.array([[1.0, NAN, NAN, 0.0, 0.0, 0.0, 0.0, 1.2]])
    outage = np.array([[False, True, False, True, True, True, False, False]])
    rs = _rules(missing_interval={"action": "exception"}, zero_run={"action": "flag", "min_hours": 6.0})
    ev = evaluate(values, RuleContext(INTERVAL_S, outage=outage), rs, fused=fused)
    # slot 2 was not received outside the outage; slot 6 is the only zero outside it
    assert [(f.rule, f.first, f.count, f.action) for f in ev.findings] == [
        ("vee.missing_interval", 2, 1, "exception"),
        ("vee.zero_run", 6, 1, "flag"),
    ]
    assert ev.suspect.tolist() == [[False] * 6 + [True, False]]
    without = evaluate(values, RuleContext(INTERVAL_S), rs, fused=fused)
    assert [(f.rule, f.first, f.count) for f in without.findings] == [
        ("vee.missing_interval", 1, 2),
        ("vee.zero_run", 3, 4),
    ]


def test_dynamic_comparison_leaves_outage_intervals_alone():
    history = np.tile([1.0, 1.0, 1.0, 1.0], 5)[None, :]  # five days, every slot exactly 1.0
    values = np.array([[1.0, 0.0, 0.0, 1.0]])
    outage = np.array([[False, True, False, False]])
    kw = {"slots_per_day": SPD, "z": 6.0, "floor_per_hour": 0.0, "interval_s": INTERVAL_S}
    res = dynamic_comparison_check(values, history, outage=outage, **kw)
    assert [(f.first, f.count) for f in res.findings] == [(2, 1)]
    assert res.mask.tolist() == [[False, False, True, False]]
    assert [(f.first, f.count) for f in dynamic_comparison_check(values, history, **kw).findings] == [(1, 2)]


def test_high_low_usage_judges_a_day_by_its_supplied_intervals():
    history = np.ones((1, 3 * SPD))  # three days of 4.0: the reference
    values = np.array([[1.0, 0.9, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]])
    outage = np.array([[False, False, True, True, False, True, True, True]])
    kw = {"slots_per_day": SPD, "high_factor": 3.0, "low_factor": 0.5, "min_history_days": 3}
    high, low = high_low_usage_check(values, history, **kw)
    # without outages: days of 1.9 and 1.0 against 4.0, both below 2.0
    assert [(f.first, f.data["day_total"]) for f in low.findings] == [(0, 1.9), (4, 1.0)]
    high, low = high_low_usage_check(values, history, outage=outage, **kw)
    # day 1: two supplied intervals of 1.9 scale to 3.8, not low; day 2: one of four supplied,
    # below half of the day: not judged
    assert low.findings == [] and high.findings == []


@pytest.mark.parametrize("fused", [True, False])
def test_the_adjustment_to_the_register_advance_leaves_an_outages_zeros_alone(fused):
    # day 0 complete at 0.5; day 1: slot 0 in an outage, slot 1 missing, then 1.0 and 1.0
    values = np.array([[0.5, 0.5, 0.5, 0.5, NAN, NAN, 1.0, 1.0]])
    outage = np.zeros(values.shape, dtype=bool)
    outage[0, 4] = True
    est = estimate(
        values,
        slots_per_day=SPD,
        day_types=[0, 0],
        outage=outage,
        max_interp_intervals=0,
        day_advance=np.array([[NAN, 3.0]]),
        fused=fused,
    )
    # like-day gives slot 1 0.5; the register's 3.0 less the 2.0 received leaves 1.0 for it
    np.testing.assert_allclose(est.values, [[0.5, 0.5, 0.5, 0.5, 0.0, 1.0, 1.0, 1.0]])
    assert est.method[0, 4:].tolist() == [OUTAGE_ZERO, SCALAR_ADJUSTED, NOT_ESTIMATED, NOT_ESTIMATED]
    no_advance = estimate(
        values, slots_per_day=SPD, day_types=[0, 0], outage=outage, max_interp_intervals=0, fused=fused
    )
    assert no_advance.method[0, 4:6].tolist() == [OUTAGE_ZERO, LIKE_DAY_PROFILE]


def test_outage_awareness_is_on_by_default_and_in_every_packaged_rule_set(tmp_path: Path):
    from meter2cash.mdm.vee.ruleset.store import packaged_rule_sets

    assert RuleSet().outage_aware is True
    assert {name: rs.outage_aware for name, rs in packaged_rule_sets().items()} == {
        "default": True,
        "residential": True,
        "commercial": True,
    }
    off = tmp_path / "off.toml"
    off.write_text('name = "off"\nversion = "3"\noutage_aware = false\n', encoding="utf-8")
    rs = RuleSet.from_toml(off)
    assert rs.outage_aware is False and rs.to_mapping()["outage_aware"] is False
