"""VEE evaluation: a whole rule set over ``(channels, intervals)`` arrays, the one entry point.

:func:`evaluate` runs the rule set in one compiled pass per channel
(:mod:`meter2cash.mdm.vee.compiled.fused`), or rule function by rule function
(:mod:`meter2cash.mdm.vee.rules`): the value rules, then the context rules
(:func:`context_rules`) that :func:`~meter2cash.mdm.vee.rules.select.runnable_context_rules`
chooses. Both ways give the same findings, in the same order, and the same masks. Numba loads on
the first compiled evaluation only.
"""

from __future__ import annotations

import numpy as np

from meter2cash.core.quality import Quality
from meter2cash.mdm.vee.rules.basic import (
    interval_spike_check,
    missing_interval_check,
    negative_consumption_check,
    stuck_register_check,
    zero_run_check,
)
from meter2cash.mdm.vee.rules.history import dynamic_comparison_check, high_low_usage_check
from meter2cash.mdm.vee.rules.metadata import inactive_measurement_check, metadata_check
from meter2cash.mdm.vee.rules.receipts import duplicate_imd_check, replacement_check
from meter2cash.mdm.vee.rules.registers import fill_outage_gaps, sum_check
from meter2cash.mdm.vee.rules.select import runnable_context_rules
from meter2cash.mdm.vee.ruleset.schema import RuleSet, intervals_for
from meter2cash.mdm.vee.types import Evaluation, Finding, FloatArray, RuleContext, RuleResult


def evaluate(
    values: FloatArray, ctx: RuleContext, rule_set: RuleSet | None = None, *, fused: bool = True
) -> Evaluation:
    """Run every enabled rule of ``rule_set`` over ``values``; apply each rule's action.

    ``reject`` marks intervals REJECTED (to be estimated), ``flag`` marks them SUSPECT, ``info``
    records the finding only. Missing intervals are estimated whatever the action.

    Inside a recorded outage (``ctx.outage``) an interval with nothing received is judged as the
    zero it is (:func:`~meter2cash.mdm.vee.rules.registers.fill_outage_gaps`): it is not a missing
    interval; zeros there are no zero run, and neither the dynamic comparison nor the high/low
    usage of a day judges outage intervals.

    With ``fused`` (the default) the whole rule set runs in one compiled pass per channel
    (:mod:`.compiled.fused`); without, rule function by rule function. Both give the same findings, in
    the same order, and the same masks.
    """
    rs = rule_set or RuleSet()
    cfg = rs.rules
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    if fused and values.size and values.ndim == 2:
        from meter2cash.mdm.vee.compiled.fused import evaluate_fused  # Numba loads on first use
        from meter2cash.mdm.vee.compiled.kernels import contiguous

        c_values = contiguous(values, np.float64, values.shape)
        ev = None if c_values is None else evaluate_fused(c_values, ctx, rs)
        if ev is not None:
            return ev
    if ctx.outage is not None and np.shape(ctx.outage) == values.shape:
        values, _ = fill_outage_gaps(values, ctx.outage)
    results: list[tuple[str, RuleResult]] = []
    if cfg.missing_interval.enabled:
        results.append((cfg.missing_interval.action, missing_interval_check(values)))
    if cfg.negative_consumption.enabled:
        results.append((cfg.negative_consumption.action, negative_consumption_check(values, ctx)))
    if cfg.interval_spike.enabled:
        sp = cfg.interval_spike
        res = interval_spike_check(
            values,
            ctx,
            quantile=sp.quantile,
            factor=sp.factor,
            floor_per_hour=sp.floor_per_hour,
            neighbour_factor=sp.neighbour_factor,
        )
        results.append((sp.action, res))
    if cfg.stuck_register.enabled:
        n = intervals_for(cfg.stuck_register.min_hours, ctx.interval_s)
        results.append((cfg.stuck_register.action, stuck_register_check(values, min_intervals=n)))
    if cfg.zero_run.enabled:
        n = intervals_for(cfg.zero_run.min_hours, ctx.interval_s)
        results.append((cfg.zero_run.action, zero_run_check(values, min_intervals=n, outage=ctx.outage)))
    results.extend(context_rules(values, ctx, rs))
    rejected = np.zeros(values.shape, dtype=bool)
    suspect = np.zeros(values.shape, dtype=bool)
    findings: list[Finding] = []
    for action, res in results:
        if action == "reject":
            rejected |= res.mask
        elif action in ("flag", "exception"):
            suspect |= res.mask
        for f in res.findings:  # each rule's findings are fresh objects: set the action in place
            f.action = action
        findings.extend(res.findings)
    missing = np.isnan(values)
    return Evaluation(findings, rejected & ~missing, suspect & ~missing & ~rejected)


def context_rules(values: FloatArray, ctx: RuleContext, rs: RuleSet) -> list[tuple[str, RuleResult]]:
    """Run the enabled context rules over ``values``; ``(action, result)`` per rule."""
    cfg = rs.rules
    out: list[tuple[str, RuleResult]] = []
    n = values.shape[1]
    spd = 86_400 // ctx.interval_s
    hist = ctx.history
    runs = runnable_context_rules(n, ctx, rs)
    if "sum_check" in runs and ctx.day_advance is not None:
        sc = cfg.sum_check
        out.append(
            (
                sc.action,
                sum_check(
                    values,
                    ctx.day_advance,
                    slots_per_day=spd,
                    tolerance=sc.tolerance,
                    tolerance_rel=sc.tolerance_rel,
                ),
            )
        )
    if "high_low_usage" in runs and hist is not None:
        hl = cfg.high_low_usage
        high, low = high_low_usage_check(
            values,
            hist,
            slots_per_day=spd,
            high_factor=hl.high_factor,
            low_factor=hl.low_factor,
            min_history_days=hl.min_history_days,
            outage=ctx.outage,
        )
        out += [(hl.action, high), (hl.action, low)]
    if "dynamic_comparison" in runs and hist is not None:
        dc = cfg.dynamic_comparison
        res = dynamic_comparison_check(
            values,
            hist,
            slots_per_day=spd,
            z=dc.z,
            floor_per_hour=dc.floor_per_hour,
            interval_s=ctx.interval_s,
            min_history_days=dc.min_history_days,
            outage=ctx.outage,
        )
        out.append((dc.action, res))
    if "metadata" in runs and ctx.metadata is not None:
        md = cfg.metadata
        interval_s, expected, units, mults = ctx.metadata
        for res in metadata_check(
            n,
            interval_s=interval_s,
            expected_interval_s=expected,
            units=units,
            multipliers=mults,
            allowed_multipliers=md.allowed_multipliers or None,
        ):
            out.append((md.action, res))
    if "inactive_measurement" in runs and ctx.active is not None:
        out.append((cfg.inactive_measurement.action, inactive_measurement_check(values, ctx.active)))
    if "duplicate_imd" in runs and ctx.earlier_raw is not None:
        out.append((cfg.duplicate_imd.action, duplicate_imd_check(values, ctx.earlier_raw)))
    if "replacement" in runs and ctx.prev_flags is not None:
        replaced, kept = replacement_check(
            values,
            ctx.prev_flags,
            estimated_bit=int(Quality.ESTIMATED),
            edited_bit=int(Quality.EDITED),
            rejected_bit=int(Quality.REJECTED),
        )
        out.append(("info", replaced))
        if "keep_edits" in runs:
            out.append(("info", kept))
    return out
