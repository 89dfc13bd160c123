"""The energy audit's kernel on small arrays worked out by hand, and its invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from meter2cash.mdm.energy_audit_kernel import NodeSums, audit_figures, node_period_sums

NAN = np.nan


def test_sums_per_node_and_period_by_hand():
    # two rows, four intervals; periods 0, 0, 1, -1 (the last interval outside the window)
    values = np.array([[1.0, 2.0, NAN, 4.0], [0.5, 0.5, 0.5, 0.5]])
    estimated = np.array([[False, True, False, False], [False, False, True, False]])
    present = np.array([[True, False, False, True], [True, True, False, True]])
    node = np.array([[0, 0, 0, 0], [1, 0, -1, 1]])
    period = np.array([0, 0, 1, -1])
    s = node_period_sums(values, estimated, present, node, period, 2, 2)
    # node 0: period 0 gets 1 + 2 (row 0) + 0.5 (row 1, interval 1); period 1 gets row 0's NaN
    # node 1: period 0 gets row 1 interval 0 (0.5); row 1 interval 2 belongs to no node
    assert s.energy.tolist() == [[3.5, 0.0], [0.5, 0.0]]
    assert s.estimated.tolist() == [[2.0, 0.0], [0.0, 0.0]]
    assert s.expected.tolist() == [[3, 1], [1, 0]]
    assert s.present.tolist() == [[2, 0], [1, 0]]


def test_figures_by_hand():
    energy_in = NodeSums(np.array([[100.0], [0.0], [0.0]]), np.array([[10.0], [0.0], [0.0]]),
                         np.array([[96], [0], [96]]), np.array([[90], [0], [0]]))  # fmt: skip
    consumers = NodeSums(np.array([[80.0], [40.0], [5.0]]), np.array([[20.0], [4.0], [0.0]]),
                         np.array([[192], [96], [96]]), np.array([[192], [48], [96]]))  # fmt: skip
    f = audit_figures(energy_in, consumers)
    # node 0: loss 20 of 100; estimated 10/100 in, 20/80 consumers, 30/180 both; 90/96, 192/192, 282/288
    assert f.loss[0, 0] == 20.0 and f.loss_share[0, 0] == 0.2
    assert f.in_estimated_share[0, 0] == 0.1 and f.consumers_estimated_share[0, 0] == 0.25
    assert f.estimated_share[0, 0] == pytest.approx(30 / 180)
    assert f.in_completeness[0, 0] == 0.9375 and f.consumers_completeness[0, 0] == 1.0
    assert f.completeness[0, 0] == pytest.approx(282 / 288)
    # node 1: no boundary meter → no loss, no in-side shares
    assert np.isnan(f.loss[1, 0]) and np.isnan(f.loss_share[1, 0]) and np.isnan(f.in_completeness[1, 0])
    assert f.consumers_completeness[1, 0] == 0.5
    # node 2: a boundary meter that delivered nothing: loss -5, its share undefined
    assert f.loss[2, 0] == -5.0 and np.isnan(f.loss_share[2, 0]) and f.in_completeness[2, 0] == 0.0


def _sums(rows, n, nodes, periods, data):
    values = data.draw(arrays(np.float64, (rows, n), elements=st.floats(0, 1e3) | st.just(NAN)))
    estimated = data.draw(arrays(np.bool_, (rows, n)))
    present = data.draw(arrays(np.bool_, (rows, n)))
    node = data.draw(arrays(np.int64, (rows, n), elements=st.integers(-1, nodes - 1)))
    period = data.draw(arrays(np.int64, (n,), elements=st.integers(-1, periods - 1)))
    return values, estimated, present, node, period


@settings(max_examples=200, deadline=None)
@given(st.data(), st.integers(1, 5), st.integers(1, 30), st.integers(1, 3), st.integers(1, 3))
def test_invariants(data, rows, n, nodes, periods):
    vin, ein, pin, nin, period = _sums(rows, n, nodes, periods, data)
    vc, ec, pc, nc, _ = _sums(rows, n, nodes, periods, data)
    s_in = node_period_sums(vin, ein, pin, nin, period, nodes, periods)
    s_c = node_period_sums(vc, ec, pc, nc, period, nodes, periods)
    f = audit_figures(s_in, s_c)
    counted = (nc >= 0) & (period >= 0)
    # every counted interval's energy lands in exactly one cell
    assert s_c.energy.sum() == pytest.approx(np.nansum(np.where(counted, vc, 0.0)))
    assert s_c.expected.sum() == counted.sum()
    metered = s_in.expected > 0
    np.testing.assert_allclose(f.loss[metered], (s_in.energy - s_c.energy)[metered])
    assert np.isnan(f.loss[~metered]).all()
    positive = metered & (s_in.energy > 1e-9)
    np.testing.assert_allclose(f.loss_share[positive] * s_in.energy[positive], f.loss[positive], atol=1e-6)
    assert (f.loss_share[positive] <= 1.0).all()
    for share in (f.in_estimated_share, f.consumers_estimated_share, f.estimated_share, f.in_completeness,
                  f.consumers_completeness, f.completeness):  # fmt: skip
        defined = share[~np.isnan(share)]
        assert ((defined >= 0.0) & (defined <= 1.0 + 1e-12)).all()
    # the estimated share of both sides is the energy-weighted mean of the two sides' shares
    both = (s_in.energy > 1e-9) & (s_c.energy > 1e-9)
    weighted = (f.in_estimated_share * s_in.energy + f.consumers_estimated_share * s_c.energy) / (
        s_in.energy + s_c.energy
    )
    np.testing.assert_allclose(f.estimated_share[both], weighted[both], rtol=1e-9)


def test_nothing_counted_gives_zeros():
    s = node_period_sums(np.ones((2, 3)), np.zeros((2, 3), bool), np.ones((2, 3), bool),
                         np.full((2, 3), -1), np.array([0, 1, 2]), 2, 3)  # fmt: skip
    assert s.energy.sum() == 0 and s.expected.sum() == 0
