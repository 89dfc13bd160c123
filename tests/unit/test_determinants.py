"""bill_determinants against a plain per-meter reference on random data."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from meter2cash.core.quality import Quality
from meter2cash.mdm.determinants import bill_determinants


def reference(values, flags, pidx, n_periods, interval_s, step):
    n, t = values.shape
    out = []
    for i in range(n):
        v = np.nan_to_num(values[i])
        blocks = [v[k : k + step].sum() * 3600 / (interval_s * step) for k in range(0, t, step)]
        bp = pidx[::step]
        out.append(
            (
                v.sum(),
                [v[pidx == p].sum() for p in range(n_periods)],
                max(blocks) if blocks else 0.0,
                [
                    max([b for b, q in zip(blocks, bp, strict=True) if q == p], default=0.0)
                    for p in range(n_periods)
                ],
                np.count_nonzero(flags[i] & Quality.ESTIMATED) / max(t, 1),
                np.count_nonzero(np.isnan(values[i]) | (flags[i] & Quality.MISSING != 0)) / max(t, 1),
            )
        )
    return out


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 4),
    blocks=st.integers(1, 12),
    step=st.sampled_from([1, 2, 4]),
    n_periods=st.integers(1, 4),
    ragged=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_determinants_equal_the_reference(n, blocks, step, n_periods, ragged, seed):
    rng = np.random.default_rng(seed)
    t = blocks * step - (1 if ragged and step > 1 else 0)
    values = rng.gamma(2.0, 0.3, (n, t)).round(3)
    values[rng.random((n, t)) < 0.1] = np.nan
    flags = np.where(rng.random((n, t)) < 0.2, Quality.ESTIMATED, 0).astype(np.uint16)
    flags[np.isnan(values)] |= np.uint16(Quality.MISSING)
    pidx = rng.integers(-1, n_periods + 1, t).astype(np.int8)  # some intervals in no period
    d = bill_determinants(values, flags, pidx, n_periods, 900, 900 * step)
    for i, (total, by_p, md, md_p, est, miss) in enumerate(
        reference(values, flags, pidx, n_periods, 900, step)
    ):
        assert np.isclose(d.kwh_total[i], total)
        np.testing.assert_allclose(d.kwh_by_period[i], by_p, atol=1e-9)
        assert np.isclose(d.max_demand_kw[i], md)
        np.testing.assert_allclose(d.max_demand_kw_by_period[i], md_p, atol=1e-9)
        assert d.estimated_share[i] == est and d.missing_share[i] == miss


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), whole=st.booleans())
def test_missing_intervals_of_a_bill_are_filled_with_the_row_average(seed, whole):
    from meter2cash.mdm.determinants import fill_missing

    rng = np.random.default_rng(seed)
    values = rng.gamma(2.0, 0.3, (3, 12))
    values[rng.random((3, 12)) < 0.3] = np.nan
    values[2] = np.nan  # a row with nothing
    flags = np.where(np.isnan(values), Quality.MISSING, 0).astype(np.uint16)
    active = np.ones((3, 12), bool) if whole else rng.random((3, 12)) < 0.7
    before = values.copy()
    got, got_flags = fill_missing(values, flags, active)
    np.testing.assert_array_equal(values, before)  # the input is left alone
    for i in range(3):
        present = active[i] & ~np.isnan(values[i])
        mean = values[i][present].mean() if present.any() else 0.0
        for k in range(12):
            if not active[i, k]:
                assert np.isnan(got[i, k]) and got_flags[i, k] == Quality.MISSING
            elif np.isnan(values[i, k]):
                assert np.isclose(got[i, k], mean) and got_flags[i, k] & Quality.ESTIMATED
            else:
                assert got[i, k] == values[i, k] and got_flags[i, k] == flags[i, k]
