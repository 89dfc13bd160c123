"""VEE rules on a channel's metadata and installation: interval size, unit of measure, multiplier,
and inactive measurement (data for intervals in which the meter was not installed).

Conventions: :mod:`meter2cash.mdm.vee.types`. A failing metadata row is found over its whole window.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from meter2cash.mdm.vee.codes import INACTIVE_MEASUREMENT, INTERVAL_SIZE, MULTIPLIER, UNIT_OF_MEASURE
from meter2cash.mdm.vee.types import BoolArray, Finding, FloatArray, RuleResult, find_runs, run_findings

#: Units an energy interval (delta) channel may carry.
ENERGY_UNITS = frozenset({"Wh", "kWh", "MWh", "varh", "kvarh", "VAh", "kVAh", "MVAh"})


def metadata_failures(
    *,
    interval_s: Sequence[int],
    expected_interval_s: Sequence[int | None],
    units: Sequence[str],
    multipliers: Sequence[float],
    allowed_units: frozenset[str] = ENERGY_UNITS,
    allowed_multipliers: Sequence[float] | None = None,
) -> tuple[BoolArray, BoolArray, BoolArray]:
    """The rows failing interval size, unit of measure and multiplier (see :func:`metadata_check`)."""
    size_bad = np.array(
        [e is not None and i != e for i, e in zip(interval_s, expected_interval_s, strict=True)], dtype=bool
    )
    unit_bad = np.array([u not in allowed_units for u in units], dtype=bool)
    mult = np.asarray(multipliers, dtype=np.float64)
    mult_bad = ~(mult > 0)
    if allowed_multipliers is not None:
        mult_bad |= ~np.isin(mult, np.asarray(allowed_multipliers, dtype=np.float64))
    return size_bad, unit_bad, mult_bad


def metadata_check(
    n: int,
    *,
    interval_s: Sequence[int],
    expected_interval_s: Sequence[int | None],
    units: Sequence[str],
    multipliers: Sequence[float],
    allowed_units: frozenset[str] = ENERGY_UNITS,
    allowed_multipliers: Sequence[float] | None = None,
) -> tuple[RuleResult, RuleResult, RuleResult]:
    """``vee.interval_size``, ``vee.unit_of_measure``, ``vee.multiplier`` for each channel row.

    A row fails interval size when the stored interval length differs from its reading type's;
    unit of measure when the reading type's unit is not an energy unit for interval data;
    multiplier when the channel's multiplier is not positive or not in ``allowed_multipliers``.
    A failing row is found over its whole window of ``n`` intervals.
    """
    rows = len(interval_s)
    size_bad, unit_bad, mult_bad = metadata_failures(
        interval_s=interval_s,
        expected_interval_s=expected_interval_s,
        units=units,
        multipliers=multipliers,
        allowed_units=allowed_units,
        allowed_multipliers=allowed_multipliers,
    )
    mult = np.asarray(multipliers, dtype=np.float64)

    def result(rule: str, bad: BoolArray, data: Callable[[int], dict[str, Any]]) -> RuleResult:
        mask = np.zeros((rows, n), dtype=bool)
        mask[bad.astype(bool)] = True
        return RuleResult(mask, [Finding(rule, int(r), 0, n, data(int(r))) for r in np.flatnonzero(bad)])

    return (
        result(
            INTERVAL_SIZE,
            size_bad.reshape(-1),
            lambda r: {"interval_s": interval_s[r], "expected_interval_s": expected_interval_s[r]},
        ),
        result(UNIT_OF_MEASURE, unit_bad, lambda r: {"unit": units[r]}),
        result(MULTIPLIER, mult_bad, lambda r: {"multiplier": float(mult[r])}),
    )


def inactive_measurement_check(values: FloatArray, active: BoolArray) -> RuleResult:
    """``vee.inactive_measurement``: data received for an interval in which the meter was not
    installed (or the channel not active). ``active`` has the shape of ``values``."""
    values = np.atleast_2d(values)
    mask = ~np.isnan(values) & ~np.asarray(active, dtype=bool)
    return RuleResult(mask, run_findings(INACTIVE_MEASUREMENT, mask, values, find_runs(mask)))
