"""A whole rule set in one pass: :func:`meter2cash.mdm.vee.evaluate.evaluate` through the fused kernel.

:func:`evaluate_fused` turns a rule set and a :class:`~meter2cash.mdm.vee.types.RuleContext` into
the parameters of :func:`.kernels.evaluate_rows`, and the run arrays it returns into the same
findings, in the same order, with the same data as the rule functions give one by one. Findings
are built from whole columns (``tolist`` once per rule), never with a NumPy call per finding.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from itertools import repeat
from typing import Any

import numpy as np
import numpy.typing as npt

from meter2cash.core.quality import Quality
from meter2cash.mdm.vee import codes
from meter2cash.mdm.vee.compiled import kernels
from meter2cash.mdm.vee.compiled.kernels import contiguous
from meter2cash.mdm.vee.rules.metadata import metadata_check, metadata_failures
from meter2cash.mdm.vee.rules.registers import fill_outage_gaps
from meter2cash.mdm.vee.rules.select import runnable_context_rules
from meter2cash.mdm.vee.ruleset.schema import RuleSet, intervals_for
from meter2cash.mdm.vee.types import Evaluation, Finding, FloatArray, RuleContext

#: Finding code of each rule number of the kernel.
CODES = (
    codes.MISSING_INTERVAL,
    codes.NEGATIVE_CONSUMPTION,
    codes.INTERVAL_SPIKE,
    codes.STUCK_REGISTER,
    codes.ZERO_RUN,
    codes.SUM_CHECK,
    codes.HIGH_USAGE,
    codes.LOW_USAGE,
    codes.DYNAMIC_COMPARISON,
    codes.INTERVAL_SIZE,
    codes.UNIT_OF_MEASURE,
    codes.MULTIPLIER,
    codes.INACTIVE_MEASUREMENT,
    codes.DUPLICATE_IMD,
    codes.ESTIMATE_REPLACED,
    codes.EDIT_KEPT,
)
_ACTION = {"info": kernels.ACT_INFO, "flag": kernels.ACT_SUSPECT, "exception": kernels.ACT_SUSPECT}
_ACTION["reject"] = kernels.ACT_REJECT
_NO_F = np.zeros((0, 0))
_NO_HISTORY = np.zeros((1, 0))  # a row to index, of no days
_NO_B = np.zeros((0, 0), dtype=bool)


def evaluate_fused(values: FloatArray, ctx: RuleContext, rs: RuleSet) -> Evaluation | None:
    """The :class:`~meter2cash.mdm.vee.types.Evaluation` of ``rs`` over ``values`` (2-D float64), or
    None when the context arrays do not have the shapes the rules expect (the caller then runs the
    rules one by one, which reports the mismatch as before)."""
    n_rows, n = values.shape
    if ctx.outage is not None and np.shape(ctx.outage) == values.shape:
        values, _ = fill_outage_gaps(values, ctx.outage)  # nothing received there: no supply
    cfg = rs.rules
    spd = 86_400 // ctx.interval_s
    runs = runnable_context_rules(n, ctx, rs)
    on = np.zeros(kernels.N_RULES, dtype=bool)
    act = np.zeros(kernels.N_RULES, dtype=np.int8)
    actions = ["info"] * kernels.N_RULES

    def enable(rule: int, action: str) -> None:
        on[rule], act[rule], actions[rule] = True, _ACTION[action], action

    for rule, name in (
        (kernels.R_MISSING, "missing_interval"),
        (kernels.R_NEGATIVE, "negative_consumption"),
        (kernels.R_SPIKE, "interval_spike"),
        (kernels.R_STUCK, "stuck_register"),
        (kernels.R_ZERO, "zero_run"),
    ):
        if getattr(cfg, name).enabled:
            enable(rule, getattr(cfg, name).action)
    for rule, name in (
        (kernels.R_SUM, "sum_check"),
        (kernels.R_HIGH, "high_low_usage"),
        (kernels.R_LOW, "high_low_usage"),
        (kernels.R_DYNAMIC, "dynamic_comparison"),
        (kernels.R_SIZE, "metadata"),
        (kernels.R_UNIT, "metadata"),
        (kernels.R_MULTIPLIER, "metadata"),
        (kernels.R_INACTIVE, "inactive_measurement"),
        (kernels.R_DUPLICATE, "duplicate_imd"),
    ):
        if name in runs:
            enable(rule, getattr(cfg, name).action)
    if "replacement" in runs:
        enable(kernels.R_REPLACED, "info")
    if "keep_edits" in runs:
        enable(kernels.R_KEPT, "info")

    shape = (n_rows, n)
    imports = np.ones(n_rows, dtype=bool) if ctx.import_rows is None else ctx.import_rows
    hist_cols = np.shape(ctx.history)[-1] if ctx.history is not None else 0
    uses_outage = on[[kernels.R_ZERO, kernels.R_DYNAMIC, kernels.R_HIGH, kernels.R_LOW]].any()
    # absent context: no history, no outage, always active, no earlier receipt, no flags
    wanted: list[tuple[Any, npt.DTypeLike, tuple[int, ...], Callable[[], np.ndarray]]] = [
        (ctx.history, np.float64, (n_rows, hist_cols), lambda: _NO_HISTORY),
        (imports, np.bool_, (n_rows,), lambda: _NO_B),
        (
            ctx.outage if uses_outage else None,
            np.bool_,
            shape,
            lambda: np.zeros(shape, dtype=bool),
        ),
        (ctx.active if on[kernels.R_INACTIVE] else None, np.bool_, shape, lambda: np.ones(shape, dtype=bool)),
        (ctx.earlier_raw if on[kernels.R_DUPLICATE] else None, np.float64, shape, lambda: values),
        (
            ctx.prev_flags if "replacement" in runs else None,
            np.uint16,
            shape,
            lambda: np.zeros(shape, np.uint16),
        ),
        (ctx.day_advance if on[kernels.R_SUM] else None, np.float64, (n_rows, n // spd), lambda: _NO_F),
    ]
    args: list[np.ndarray] = []
    for given, dtype, want, absent in wanted:
        got = absent() if given is None else contiguous(given, dtype, want)
        if got is None:
            return None
        args.append(got)

    bad = np.zeros((n_rows, 3), dtype=bool)
    if "metadata" in runs and ctx.metadata is not None:
        interval_s, expected, units, mults = ctx.metadata
        if not len(interval_s) == len(expected) == len(units) == len(mults) == n_rows:
            return None
        failures = metadata_failures(
            interval_s=interval_s,
            expected_interval_s=expected,
            units=units,
            multipliers=mults,
            allowed_multipliers=cfg.metadata.allowed_multipliers or None,
        )
        bad = np.ascontiguousarray(np.stack(failures, axis=1))

    fp = np.zeros(kernels.N_FLOAT_PARAMS)
    ip = np.zeros(kernels.N_INT_PARAMS, dtype=np.int64)
    sp, sc, hl, dc = cfg.interval_spike, cfg.sum_check, cfg.high_low_usage, cfg.dynamic_comparison
    fp[kernels.F_SPIKE_FLOOR] = sp.floor_per_hour * ctx.interval_s / 3600.0
    fp[kernels.F_SPIKE_FACTOR] = sp.factor
    fp[kernels.F_SPIKE_QUANTILE] = sp.quantile
    fp[kernels.F_SPIKE_NEIGHBOUR] = sp.neighbour_factor
    fp[kernels.F_SUM_TOL] = sc.tolerance
    fp[kernels.F_SUM_TOL_REL] = sc.tolerance_rel
    fp[kernels.F_HIGH] = hl.high_factor
    fp[kernels.F_LOW] = hl.low_factor
    fp[kernels.F_COVERAGE] = 0.5  # rules.history.high_low_usage_check's min_coverage
    fp[kernels.F_DYN_Z] = dc.z
    fp[kernels.F_DYN_FLOOR] = dc.floor_per_hour * ctx.interval_s / 3600.0
    ip[kernels.I_SPD] = spd
    ip[kernels.I_STUCK_MIN] = max(intervals_for(cfg.stuck_register.min_hours, ctx.interval_s) - 1, 1)
    ip[kernels.I_ZERO_MIN] = intervals_for(cfg.zero_run.min_hours, ctx.interval_s)
    ip[kernels.I_HL_MIN_DAYS] = hl.min_history_days
    ip[kernels.I_DYN_MIN_DAYS] = dc.min_history_days
    ip[kernels.I_ESTIMATED_BIT] = int(Quality.ESTIMATED)
    ip[kernels.I_EDITED_BIT] = int(Quality.EDITED)
    ip[kernels.I_REJECTED_BIT] = int(Quality.REJECTED)

    ip[kernels.I_ROOM] = kernels.room_per_row(n)

    rejected = np.zeros(shape, dtype=bool)
    suspect = np.zeros(shape, dtype=bool)
    f_size, i_size, b_size = kernels.scratch_sizes(n, args[0].shape[1], spd)
    scratch = (np.empty(f_size), np.empty(i_size, dtype=np.int64), np.empty(b_size, dtype=np.uint16))
    capacity = 8 * n_rows + int(ip[kernels.I_ROOM])
    parts: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]] = []
    row = 0
    while row < n_rows:  # the run buffers fill up only with many runs: then more room
        ib = np.empty((capacity, 4), dtype=np.int64)
        fb = np.empty((capacity, 4))
        k, row = kernels.evaluate_rows(
            values, *args, bad, on, act, fp, ip, rejected, suspect, ib, fb, row, *scratch
        )
        parts.append((ib[:k], fb[:k]))
        capacity *= 2
    ib, fb = (
        parts[0]
        if len(parts) == 1
        else (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    )
    # thousands of small objects and no cycles among them: collecting garbage while they are
    # built only walks the process's objects again and again
    collecting = gc.isenabled()
    gc.disable()
    try:
        findings = _findings(ib, fb, actions, ctx, n, cfg.metadata.allowed_multipliers)
    finally:
        if collecting:
            gc.enable()
    return Evaluation(findings, rejected, suspect)


def _findings(
    ib: npt.NDArray[np.int64],
    fb: npt.NDArray[np.float64],
    actions: list[str],
    ctx: RuleContext,
    n: int,
    allowed_multipliers: tuple[float, ...],
) -> list[Finding]:
    """Findings from the kernel's runs: by rule (in rule order), then row, then column."""
    order = np.argsort(ib[:, 0], kind="stable")
    ib, fb = ib[order], fb[order]
    bounds = np.searchsorted(ib[:, 0], np.arange(kernels.N_RULES + 1))
    out: list[Finding] = []
    for rule in range(kernels.N_RULES):
        lo, hi = int(bounds[rule]), int(bounds[rule + 1])
        if lo == hi:
            continue
        rows = ib[lo:hi, 1].tolist()
        counts = ib[lo:hi, 3].tolist()
        data = _data(rule, fb[lo:hi], counts, rows, ctx, n, allowed_multipliers)
        code = CODES[rule]
        out += map(Finding, repeat(code), rows, ib[lo:hi, 2].tolist(), counts, data, repeat(actions[rule]))
    return out


def _rounded(col: npt.NDArray[np.float64]) -> list[float | None]:
    return [None if x != x else x for x in np.round(col, 6).tolist()]


def _data(
    rule: int,
    fb: npt.NDArray[np.float64],
    counts: list[int],
    rows: list[int],
    ctx: RuleContext,
    n: int,
    allowed_multipliers: tuple[float, ...],
) -> list[dict[str, Any]]:
    """The ``data`` of each finding of one rule, as the rule functions write it."""
    if rule == kernels.R_SUM:
        cols = (_rounded(fb[:, 1]), _rounded(fb[:, 2]), _rounded(fb[:, 3]))
        keys = ("interval_sum", "register_advance", "difference")
        return [dict(zip(keys, vals, strict=True)) for vals in zip(*cols, strict=True)]
    if rule in (kernels.R_HIGH, kernels.R_LOW):
        return [
            {"day_total": a, "reference": b}
            for a, b in zip(_rounded(fb[:, 1]), _rounded(fb[:, 2]), strict=True)
        ]
    if rule in (kernels.R_SIZE, kernels.R_UNIT, kernels.R_MULTIPLIER):
        assert ctx.metadata is not None
        interval_s, expected, units, mults = ctx.metadata
        results = metadata_check(
            n,
            interval_s=interval_s,
            expected_interval_s=expected,
            units=units,
            multipliers=mults,
            allowed_multipliers=allowed_multipliers or None,
        )
        by_row = {f.row: f.data for f in results[rule - kernels.R_SIZE].findings}
        return [by_row[row] for row in rows]
    values = fb[:, 0].tolist()
    if rule == kernels.R_DYNAMIC:  # the most frequent finding: one comprehension
        means, stds = np.round(fb[:, 1], 6).tolist(), np.round(fb[:, 2], 6).tolist()
        return [
            {"intervals": c, "value": x, "mean": m, "std": s}
            for c, x, m, s in zip(counts, values, means, stds, strict=True)
        ]  # a dynamic comparison run always holds values
    data = [
        {"intervals": c, "value": x} if x == x else {"intervals": c}
        for c, x in zip(counts, values, strict=True)
    ]
    if rule == kernels.R_SPIKE:
        for d, t in zip(data, fb[:, 1].tolist(), strict=True):
            d["threshold"] = t
    elif rule == kernels.R_DUPLICATE:
        for d, e in zip(data, fb[:, 1].tolist(), strict=True):
            d["earlier"] = e
    return data
