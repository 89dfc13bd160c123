"""The context rules of a rule set: the checks of :mod:`.checks` that need more than the values.

:func:`context_rules` is called by :func:`meter2cash.mdm.vee.rules.evaluate`; each rule runs only
when it is enabled and its context (history, outage windows, installations, earlier receipts,
register advances, channel metadata) is present in the :class:`~.rules.RuleContext`.
"""

from __future__ import annotations

import numpy as np

from meter2cash.core.quality import Quality
from meter2cash.mdm.vee import checks
from meter2cash.mdm.vee.config import RuleSet
from meter2cash.mdm.vee.rules import FloatArray, RuleContext, RuleResult


def runnable_context_rules(n: int, ctx: RuleContext, rs: RuleSet) -> frozenset[str]:
    """The context rules (names as in the rule set, plus ``keep_edits``) that run over a window of
    ``n`` intervals: enabled, with their context present, on whole days where they need them."""
    cfg = rs.rules
    spd = 86_400 // ctx.interval_s
    whole_days = n % spd == 0
    hist = ctx.history
    history_days = hist is not None and whole_days and hist.shape[1] % spd == 0
    present = {
        "sum_check": ctx.day_advance is not None and whole_days,
        "high_low_usage": history_days,
        "dynamic_comparison": history_days,
        "metadata": ctx.metadata is not None,
        "inactive_measurement": ctx.active is not None,
        "duplicate_imd": ctx.earlier_raw is not None,
        "replacement": ctx.prev_flags is not None,
    }
    out = {name for name, ok in present.items() if ok and getattr(cfg, name).enabled}
    if "replacement" in out and cfg.replacement.keep_edits:
        out.add("keep_edits")
    return frozenset(out)


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
                checks.sum_check(
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
        high, low = checks.high_low_usage_check(
            values,
            hist,
            slots_per_day=spd,
            high_factor=hl.high_factor,
            low_factor=hl.low_factor,
            min_history_days=hl.min_history_days,
        )
        out += [(hl.action, high), (hl.action, low)]
    if "dynamic_comparison" in runs and hist is not None:
        dc = cfg.dynamic_comparison
        res = checks.dynamic_comparison_check(
            values,
            hist,
            slots_per_day=spd,
            z=dc.z,
            floor_per_hour=dc.floor_per_hour,
            interval_s=ctx.interval_s,
            min_history_days=dc.min_history_days,
        )
        out.append((dc.action, res))
    if "metadata" in runs and ctx.metadata is not None:
        md = cfg.metadata
        interval_s, expected, units, mults = ctx.metadata
        for res in checks.metadata_check(
            n,
            interval_s=interval_s,
            expected_interval_s=expected,
            units=units,
            multipliers=mults,
            allowed_multipliers=md.allowed_multipliers or None,
        ):
            out.append((md.action, res))
    if "inactive_measurement" in runs and ctx.active is not None:
        out.append((cfg.inactive_measurement.action, checks.inactive_measurement_check(values, ctx.active)))
    if "duplicate_imd" in runs and ctx.earlier_raw is not None:
        out.append((cfg.duplicate_imd.action, checks.duplicate_imd_check(values, ctx.earlier_raw)))
    if "replacement" in runs and ctx.prev_flags is not None:
        replaced, kept = checks.replacement_check(
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


def outage_rows(
    events: dict[int, list[tuple[int, str]]], rows: list[int], *, t0: int, n: int, interval_s: int, since: int
) -> np.ndarray:
    """Outage masks ``(len(rows), n)`` from power-failure events per row key (epoch s, code)."""
    mask = np.zeros((len(rows), n), dtype=bool)
    until = t0 + n * interval_s
    for r, key in enumerate(rows):
        evs = sorted(events.get(key, []))
        if not evs:
            continue
        starts, ends = checks.outage_windows(
            np.array([t for t, _ in evs], dtype=np.int64), [c for _, c in evs], since=since, until=until
        )
        mask[r] = checks.window_mask(starts, ends, t0=t0, n=n, interval_s=interval_s)
    return mask
