"""Estimation on real households: real gaps found exactly, and the learned estimator ahead."""

from __future__ import annotations

import numpy as np
import pandas as pd

from conftest import shared_data
from meter2cash.mdm.vee.estimation import day_types_for
from meter2cash.mdm.vee.learned import fit_l1, train
from meter2cash.mdm.vee.research.accuracy import CLASSICAL, hide_gaps, load_sgsc, real_gaps, run_accuracy
from meter2cash.mdm.vee.rules.basic import missing_interval_check


def test_real_gaps_of_the_australian_households_are_found_exactly():
    """SGSC: local Sydney times; rows whose local time is ambiguous or does not exist are left out."""
    path = shared_data("loadprofiles/sgsc_smart_meter10.csv.gz")
    series, left_out = load_sgsc(path)
    # independent reasoning with pandas: consecutive UTC readings more than 30 min apart
    df = pd.read_csv(path, parse_dates=["reading_datetime"])
    utc = df.reading_datetime.dt.tz_localize("Australia/Sydney", ambiguous="NaT", nonexistent="NaT")
    assert left_out == int(utc.isna().sum()) > 0
    df = df.assign(ts=utc.dt.tz_convert("UTC")).dropna(subset=["ts"]).sort_values(["customer_id", "ts"])
    expected = {}
    step = pd.Timedelta(minutes=30)
    for cid, g in df.groupby("customer_id"):
        jumps = g.ts.diff()
        at = jumps > step
        expected[str(cid)] = [
            (ts - j + step, int(j / step) - 1) for ts, j in zip(g.ts[at], jumps[at], strict=True)
        ]
    assert sum(len(v) for v in expected.values()) == 129
    lengths_h = [n / 2 for v in expected.values() for _, n in v]
    assert min(lengths_h) == 2.0 and max(lengths_h) == 472.0  # 2.5 h..472.5 h between readings

    found = 0
    for s in series:
        lo = int(np.flatnonzero(~np.isnan(s.values))[0])
        hi = int(np.flatnonzero(~np.isnan(s.values))[-1]) + 1
        res = missing_interval_check(s.values[lo:hi])
        got = [(s.start + (lo + f.first) * step, f.count) for f in res.findings]
        assert got == expected[s.name], s.name
        assert real_gaps(s) == [(lo + f.first, f.count) for f in res.findings]
        found += len(got)
    assert found == 129


def test_hidden_gaps_do_not_overlap_and_avoid_real_gaps():
    v = np.ones(2000)
    v[100:150] = np.nan
    gaps = hide_gaps(v, np.random.default_rng(1), count=30, max_len=100)
    covered = np.zeros(2000, dtype=int)
    for first, n in gaps:
        covered[first - 1 : first + n + 1] += 1
    assert len(gaps) == 30 and covered.max() == 1 and not covered[100:150].any()


def test_least_absolute_deviations_ignores_outliers():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, 500)
    y = 2.0 * x + 1.0
    y[:40] += 50.0  # outliers
    coef = fit_l1(np.column_stack([np.ones_like(x), x]), y, ridge=0.0, iterations=30)
    np.testing.assert_allclose(coef, [1.0, 2.0], atol=0.05)


def test_learned_model_learns_a_repeating_profile_and_never_uses_hidden_values():
    spd, days = 48, 60
    shape = 0.2 + 0.3 * np.sin(np.arange(spd) / spd * 2 * np.pi) ** 2
    truth = np.tile(shape, days)[None, :] * np.random.default_rng(2).uniform(0.9, 1.1, (1, spd * days))
    types = day_types_for([pd.Timestamp("2024-01-01").date() + pd.Timedelta(days=k) for k in range(days)])
    hidden = truth.copy()
    hidden[0, 1000:1200] = np.nan
    gap = np.isnan(hidden)
    model = train(hidden, slots_per_day=spd, day_types=types)
    assert model is not None
    pred = model.predict(hidden, gap, slots_per_day=spd, day_types=types)
    err = np.abs(pred[0, 1000:1200] - truth[0, 1000:1200]).mean()
    assert err < 0.05 and np.isnan(pred[0, :1000]).all() and np.isnan(pred[0, 1200:]).all()
    # whatever the gap holds (here an absurd 1e6 kWh), the prediction of the gap is the same
    poisoned = hidden.copy()
    poisoned[0, 1000:1200] = 1e6
    again = model.predict(poisoned, gap, slots_per_day=spd, day_types=types)
    np.testing.assert_array_equal(again, pred)


def test_learned_estimator_beats_every_classical_method_on_real_data():
    series, _ = load_sgsc(shared_data("loadprofiles/sgsc_smart_meter10.csv.gz"))
    rep = run_accuracy(series[:4], gaps_per_channel=25, seed=7)
    learned = rep.overall("learned").mae
    assert all(learned < rep.overall(m).mae for m in CLASSICAL)
    assert rep.learned_gain() > 5.0


def test_m2c_vee_accuracy_prints_the_table():
    from typer.testing import CliRunner

    from meter2cash.cli import app

    data = shared_data("loadprofiles/lcl_MAC000060.csv").parent
    out = CliRunner().invoke(
        app, ["vee", "accuracy", "--data", str(data), "--gaps", "4"], env={"COLUMNS": "200"}
    )
    assert out.exit_code == 0, out.output
    text = " ".join(out.output.split())  # the console may wrap lines
    assert "overall" in text and "3–7 d" in text and "% lower" in text
