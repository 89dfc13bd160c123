"""The energy audit's arithmetic, as array functions: interval energy summed per network node and
period, then energy in against the consumers' energy, the loss, and how much of each side is
estimated or missing.

Pure: plain NumPy arrays in and out, no database.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Energy below this [kWh] counts as none when dividing by it (a share of it is undefined).
NEGLIGIBLE_KWH = 1e-9


@dataclass(frozen=True, slots=True)
class NodeSums:
    """Sums per node and period, each of shape ``(nodes, periods)``.

    ``energy`` [kWh] of the intervals counted, ``estimated`` [kWh] of those flagged estimated,
    ``expected`` intervals counted and ``present`` intervals among them actually received.
    """

    energy: FloatArray
    estimated: FloatArray
    expected: IntArray
    present: IntArray

    @classmethod
    def zeros(cls, nodes: int, periods: int) -> NodeSums:
        return cls(
            np.zeros((nodes, periods)),
            np.zeros((nodes, periods)),
            np.zeros((nodes, periods), dtype=np.int64),
            np.zeros((nodes, periods), dtype=np.int64),
        )

    def __add__(self, other: NodeSums) -> NodeSums:
        return NodeSums(
            self.energy + other.energy,
            self.estimated + other.estimated,
            self.expected + other.expected,
            self.present + other.present,
        )


def node_period_sums(
    values: FloatArray,
    estimated: BoolArray,
    present: BoolArray,
    node: IntArray,
    period: IntArray,
    nodes: int,
    periods: int,
) -> NodeSums:
    """Interval energy summed per node and period.

    Parameters
    ----------
    values : (rows, n) float
        Energy per interval [kWh]; NaN counts as nothing (an interval neither received nor
        estimated).
    estimated, present : (rows, n) bool
        Whether each interval's value is an estimate, and whether it was actually received.
    node : (rows, n) int
        The node (0 .. ``nodes`` - 1) each row's interval counts for; -1 for none (the meter not
        installed there then, or not below any node).
    period : (n,) int
        The period (0 .. ``periods`` - 1) of each interval; -1 outside every period.

    Returns
    -------
    NodeSums
        ``(nodes, periods)`` sums; intervals of node or period -1 are left out.
    """
    counted = (node >= 0) & (period >= 0)[np.newaxis, :]
    key = (node * periods + period[np.newaxis, :])[counted]
    size = nodes * periods
    v = np.where(np.isfinite(values), values, 0.0)[counted]
    shape = (nodes, periods)
    return NodeSums(
        np.bincount(key, weights=v, minlength=size).reshape(shape).astype(np.float64),
        np.bincount(key, weights=np.where(estimated[counted], v, 0.0), minlength=size)
        .reshape(shape)
        .astype(np.float64),
        np.bincount(key, minlength=size).reshape(shape).astype(np.int64),
        np.bincount(key, weights=present[counted], minlength=size).reshape(shape).astype(np.int64),
    )


@dataclass(frozen=True, slots=True)
class AuditFigures:
    """The audit of every node and period, arrays of the same shape.

    ``loss`` = energy in − consumers [kWh] (NaN where the node had no boundary meter);
    ``loss_share`` = loss / energy in (NaN where energy in is below :data:`NEGLIGIBLE_KWH`);
    the estimated shares are estimated energy / energy of the side (``estimated_share`` of both
    sides together; NaN where that energy is negligible); the completeness figures are intervals
    received / intervals expected (NaN where none expected).
    """

    energy_in: FloatArray
    consumers: FloatArray
    loss: FloatArray
    loss_share: FloatArray
    in_estimated_share: FloatArray
    consumers_estimated_share: FloatArray
    estimated_share: FloatArray
    in_completeness: FloatArray
    consumers_completeness: FloatArray
    completeness: FloatArray


def _ratio(num: npt.NDArray[np.float64] | IntArray, den: npt.NDArray[np.float64] | IntArray) -> FloatArray:
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den > NEGLIGIBLE_KWH)
    return out


def audit_figures(energy_in: NodeSums, consumers: NodeSums) -> AuditFigures:
    """Energy in against the consumers' energy, per node and period (see :class:`AuditFigures`)."""
    metered = energy_in.expected > 0
    loss = np.where(metered, energy_in.energy - consumers.energy, np.nan)
    return AuditFigures(
        energy_in=energy_in.energy,
        consumers=consumers.energy,
        loss=loss,
        loss_share=np.where(metered, _ratio(loss, energy_in.energy), np.nan),
        in_estimated_share=_ratio(energy_in.estimated, energy_in.energy),
        consumers_estimated_share=_ratio(consumers.estimated, consumers.energy),
        estimated_share=_ratio(
            energy_in.estimated + consumers.estimated, energy_in.energy + consumers.energy
        ),
        in_completeness=_ratio(energy_in.present, energy_in.expected),
        consumers_completeness=_ratio(consumers.present, consumers.expected),
        completeness=_ratio(energy_in.present + consumers.present, energy_in.expected + consumers.expected),
    )
