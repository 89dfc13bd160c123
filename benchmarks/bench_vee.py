"""VEE kernels: the full rule set plus estimation over synthetic 15-minute channel-days.

Usage: python benchmarks/bench_vee.py [--quick] [--channel-days N] [--repeats R] [--learned]

No database: the arrays are built in memory in chunks of (1000 channels, 10 days x 96) like the
service reads them, each with 7 days of validated history and the context the service loads
(outage and installation masks, the first receipt of each day, the previous version's flags,
register advances per day, channel metadata), so every rule of the default rule set runs: the
five value rules, sum check, high/low usage, dynamic comparison, interval size / unit / multiplier,
inactive measurement, duplicate IMD and replacement; then estimation (outage zeros, linear,
like-day, average daily use, adjustment to the register advance) and the quality flags; and the
rule set alone (``evaluate``: findings and masks). The default size is 1,000,000 channel-days
(about 2.5 GB of arrays, all in memory). The baseline is a
plain NumPy pass over the same value arrays (``np.isnan``, ``np.nansum`` and one comparison per
element), measured in the same run. ``--learned`` adds a pass that also trains and applies the
learned estimator per chunk, as a VEE run does.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import date, timedelta

import numpy as np
from rich.console import Console
from rich.table import Table

from meter2cash.mdm.vee.estimation import day_types_for, estimate, quality_flags
from meter2cash.mdm.vee.evaluate import evaluate
from meter2cash.mdm.vee.learned import train
from meter2cash.mdm.vee.ruleset.schema import RuleSet
from meter2cash.mdm.vee.types import RuleContext

SPD = 96
DAYS = 10
HISTORY_DAYS = 7
CHANNELS_PER_CHUNK = 1000


def synthetic_chunk(rng: np.random.Generator, channels: int, days: int) -> np.ndarray:
    """Household-like load shapes with gaps, spikes, negatives, flat lines and zero runs [kWh]."""
    slot = np.arange(SPD)
    shape = 0.15 + 0.1 * np.sin((slot - 30) / SPD * 2 * np.pi) ** 2 + 0.2 * (np.abs(slot - 76) < 8)
    scale = rng.uniform(0.5, 3.0, size=(channels, 1))
    v = np.tile(shape, days)[None, :] * scale * rng.gamma(4.0, 0.25, size=(channels, days * SPD))
    n = v.shape[1]
    for length, share, fill in ((3, 0.3, np.nan), (40, 0.05, np.nan), (20, 0.02, 0.0), (24, 0.02, "stuck")):
        rows = rng.choice(channels, int(channels * share), replace=False)
        starts = rng.integers(0, n - length, size=len(rows))
        for r, s in zip(rows, starts, strict=True):
            v[r, s : s + length] = v[r, s] if fill == "stuck" else fill
    spikes = rng.choice(v.size, v.size // 5000, replace=False)
    v.flat[spikes] *= 40
    v.flat[rng.choice(v.size, v.size // 20000, replace=False)] = -0.3
    return v


Chunk = tuple[np.ndarray, RuleContext]


def make_chunk(rng: np.random.Generator) -> Chunk:
    """Values of the days to validate and the context a VEE run would load for them."""
    n = CHANNELS_PER_CHUNK
    both = synthetic_chunk(rng, n, DAYS + HISTORY_DAYS)
    hist, raw = both[:, : HISTORY_DAYS * SPD].copy(), both[:, HISTORY_DAYS * SPD :].copy()
    hist[(hist < 0) | (hist > 5)] = np.nan  # validated history: no negatives or spikes
    outage = np.zeros(raw.shape, dtype=bool)
    outage[rng.choice(n, n // 50, replace=False), 200:230] = True
    active = np.ones(raw.shape, dtype=bool)
    active[rng.choice(n, n // 200, replace=False), :96] = False
    earlier = raw.copy()
    earlier.flat[rng.choice(raw.size, raw.size // 10_000, replace=False)] += 0.1
    day_sum = np.nansum(raw.reshape(n, DAYS, SPD), axis=2)
    advance = day_sum * np.where(rng.random(day_sum.shape) < 0.01, 1.05, 1.0)  # 1% of days disagree
    ctx = RuleContext(
        900,
        history=hist,
        import_rows=np.ones(n, dtype=bool),
        outage=outage,
        active=active,
        earlier_raw=earlier,
        prev_flags=np.zeros(raw.shape, dtype=np.uint16),
        day_advance=advance,
        metadata=([900] * n, [900] * n, ["kWh"] * n, [1.0] * n),
    )
    return raw, ctx


def vee_pass(chunks: list[Chunk], rule_set: RuleSet, day_types: np.ndarray, learned: bool = False) -> int:
    estimated = 0
    n_hist = HISTORY_DAYS * SPD
    for raw, ctx in chunks:
        ev = evaluate(raw, ctx, rule_set)
        values = np.where(ev.rejected, np.nan, raw)
        prediction = None
        if learned:
            assert ctx.history is not None
            series = np.concatenate((ctx.history, values), axis=1)
            model = train(series, slots_per_day=SPD, day_types=day_types, rounds=2)
            if model is not None:
                target = np.zeros(series.shape, dtype=bool)
                target[:, n_hist:] = np.isnan(values)
                prediction = model.predict(series, target, slots_per_day=SPD, day_types=day_types)[:, n_hist:]
        est = estimate(
            values,
            slots_per_day=SPD,
            day_types=day_types[HISTORY_DAYS:],
            outage=ctx.outage,
            learned=prediction,
            day_advance=ctx.day_advance,
        )
        quality_flags(est.values, ev.rejected, ev.suspect, est.method)
        estimated += int((est.method > 0).sum())
    return estimated


def rules_pass(chunks: list[Chunk], rule_set: RuleSet) -> int:
    """The rule set alone (validation: findings and masks), as ``evaluate`` gives them."""
    return sum(len(evaluate(raw, ctx, rule_set).findings) for raw, ctx in chunks)


def numpy_pass(chunks: list[np.ndarray]) -> int:
    hits = 0
    for raw, _ in chunks:
        missing = np.isnan(raw)
        totals = np.nansum(raw, axis=1)
        high = raw > 1.0
        hits += int(missing.sum()) + int(high.sum()) + int(totals.size)
    return hits


def median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="10,000 channel-days")
    ap.add_argument("--channel-days", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--learned", action="store_true", help="also time a pass with the learned estimator")
    args = ap.parse_args()
    channel_days = 10_000 if args.quick else args.channel_days
    rng = np.random.default_rng(7)
    n_chunks = max(1, channel_days // (CHANNELS_PER_CHUNK * DAYS))
    chunks = [make_chunk(rng) for _ in range(n_chunks)]
    values = sum(c[0].size for c in chunks)
    days = [date(2026, 2, 23) + timedelta(days=i) for i in range(HISTORY_DAYS + DAYS)]
    day_types = day_types_for(days, holiday_country="IN")
    rule_set = RuleSet()
    estimated = vee_pass(chunks[:1], rule_set, day_types)  # warm-up
    numpy_pass(chunks[:1])
    # the three passes take turns, so that drift of the machine (other work, memory state)
    # touches each alike; medians per pass
    passes = {
        "vee": lambda: vee_pass(chunks, rule_set, day_types),
        "rules": lambda: rules_pass(chunks, rule_set),
        "numpy": lambda: numpy_pass(chunks),
    }
    times: dict[str, list[float]] = {k: [] for k in passes}
    for _ in range(args.repeats):
        for k, fn in passes.items():
            times[k].append(median_time(fn, 1))
    t_vee, t_rules, t_np = (statistics.median(times[k]) for k in ("vee", "rules", "numpy"))
    rows = [
        ("full rule set + estimation", t_vee),
        ("rules only (evaluate)", t_rules),
        ("plain NumPy baseline", t_np),
    ]
    if args.learned:
        rows.insert(
            1,
            (
                "... with the learned estimator",
                median_time(lambda: vee_pass(chunks, rule_set, day_types, learned=True), 1),
            ),
        )

    title = f"VEE kernels, {values // SPD:,} channel-days x {SPD} (medians of {args.repeats}, passes in turn)"
    table = Table(title=title)
    for col in ("pass", "seconds", "values/s", "channel-days/s", "speed vs baseline"):
        table.add_column(col, justify="right" if col != "pass" else "left")
    for name, t in rows:
        table.add_row(
            name, f"{t:.3f}", f"{values / t:,.0f}", f"{values / SPD / t:,.0f}", f"{100 * t_np / t:.1f}%"
        )
    console = Console()
    console.print(table)
    console.print(
        f"VEE runs at {100 * t_np / t_vee:.1f}% of the baseline's speed, the rules alone at "
        f"{100 * t_np / t_rules:.1f}% (target: 25%); "
        f"first chunk: {estimated:,} intervals estimated of {chunks[0][0].size:,}"
    )


if __name__ == "__main__":
    main()
