"""Which context rules of a rule set run over a window: enabled, and with their context present.

The rule functions of :mod:`meter2cash.mdm.vee.evaluate` and the compiled kernel of
:mod:`meter2cash.mdm.vee.compiled.fused` both choose the rules here, so they run the same ones.
"""

from __future__ import annotations

from meter2cash.mdm.vee.ruleset.schema import RuleSet
from meter2cash.mdm.vee.types import RuleContext


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
