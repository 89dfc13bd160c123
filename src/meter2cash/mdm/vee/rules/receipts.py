"""VEE rules on the receipts of a channel-day: duplicate IMD (an interval received again with
another value) and final measurement replacement (which stored values newer data may replace).

Conventions: :mod:`meter2cash.mdm.vee.types`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from meter2cash.mdm.vee.codes import DUPLICATE_IMD, EDIT_KEPT, ESTIMATE_REPLACED
from meter2cash.mdm.vee.types import FloatArray, RuleResult, find_runs, run_findings


def duplicate_imd_check(raw: FloatArray, earlier_raw: FloatArray) -> RuleResult:
    """``vee.duplicate_imd``: an interval received more than once with differing values.

    ``earlier_raw`` is the raw value of the earliest stored receipt of the same day (NaN where
    there was none). Identical repeats change nothing and are only counted by ingestion. Findings
    carry ``value`` (the newer value) and ``earlier`` (the first one received).
    """
    raw, earlier_raw = np.atleast_2d(raw), np.atleast_2d(earlier_raw)
    with np.errstate(invalid="ignore"):
        mask = np.abs(raw - earlier_raw) > 1e-9  # NaN on either side compares False
    res = RuleResult(mask, run_findings(DUPLICATE_IMD, mask, raw, find_runs(mask)))
    for f in res.findings:
        f.data["earlier"] = float(earlier_raw[f.row, f.first])
    return res


def replacement_check(
    raw: FloatArray,
    prev_flags: npt.NDArray[np.uint16],
    *,
    estimated_bit: int,
    edited_bit: int,
    rejected_bit: int = 0,
) -> tuple[RuleResult, RuleResult]:
    """Final measurement replacement: which stored values a newer receipt may replace.

    ``prev_flags`` are the flags of the version being superseded (0 where none). An interval that
    was an estimate and now has actual data is replaced (``vee.estimate_replaced``); an interval
    a person edited keeps the edit (``vee.edit_kept``), whatever arrives later. Estimates of
    rejected values (``rejected_bit``) were made while the value was there: not a replacement.
    """
    raw = np.atleast_2d(raw)
    got = ~np.isnan(raw)
    flags = np.atleast_2d(prev_flags)
    # an estimate of a rejected value is not replaced by the same value arriving again
    replaced = got & ((flags & estimated_bit) != 0) & ((flags & (edited_bit | rejected_bit)) == 0)
    kept = (flags & edited_bit) != 0
    return (
        RuleResult(replaced, run_findings(ESTIMATE_REPLACED, replaced, raw, find_runs(replaced))),
        RuleResult(kept, run_findings(EDIT_KEPT, kept, raw, find_runs(kept))),
    )
