"""VEE kernels: the default rule set plus estimation over synthetic 15-minute channel-days.

Usage: python benchmarks/bench_vee.py [--quick] [--channel-days N] [--repeats R]

No database: the arrays are built in memory in chunks of (channels, days x 96) like the service
reads them. The baseline is a plain NumPy pass over the same arrays (``np.isnan``, ``np.nansum``
and one comparison per element), measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
from rich.console import Console
from rich.table import Table

from meter2cash.mdm.vee.config import RuleSet
from meter2cash.mdm.vee.estimation import day_types_for, estimate, quality_flags
from meter2cash.mdm.vee.rules import RuleContext, evaluate

SPD = 96
DAYS = 10
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


def vee_pass(chunks: list[np.ndarray], rule_set: RuleSet, day_types: np.ndarray) -> int:
    estimated = 0
    for raw in chunks:
        ev = evaluate(raw, RuleContext(900), rule_set)
        est = estimate(np.where(ev.rejected, np.nan, raw), slots_per_day=SPD, day_types=day_types)
        quality_flags(est.values, ev.rejected, ev.suspect, est.method)
        estimated += int((est.method > 0).sum())
    return estimated


def numpy_pass(chunks: list[np.ndarray]) -> int:
    hits = 0
    for raw in chunks:
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
    ap.add_argument("--channel-days", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    channel_days = 10_000 if args.quick else args.channel_days
    rng = np.random.default_rng(7)
    n_chunks = max(1, channel_days // (CHANNELS_PER_CHUNK * DAYS))
    chunks = [synthetic_chunk(rng, CHANNELS_PER_CHUNK, DAYS) for _ in range(n_chunks)]
    values = sum(c.size for c in chunks)
    from datetime import date, timedelta

    day_types = day_types_for([date(2026, 3, 2) + timedelta(days=i) for i in range(DAYS)])
    rule_set = RuleSet()
    estimated = vee_pass(chunks[:1], rule_set, day_types)  # warm-up
    t_vee = median_time(lambda: vee_pass(chunks, rule_set, day_types), args.repeats)
    t_np = median_time(lambda: numpy_pass(chunks), args.repeats)

    table = Table(title=f"VEE kernels, {values // SPD:,} channel-days x {SPD} (medians of {args.repeats})")
    for col in ("pass", "seconds", "values/s", "channel-days/s"):
        table.add_column(col, justify="right" if col != "pass" else "left")
    for name, t in (("rule set + estimation", t_vee), ("plain NumPy baseline", t_np)):
        table.add_row(name, f"{t:.3f}", f"{values / t:,.0f}", f"{values / SPD / t:,.0f}")
    table.add_row("ratio (VEE / baseline)", f"{t_vee / t_np:.1f}x", "", "")
    console = Console()
    console.print(table)
    console.print(f"first chunk: {estimated:,} intervals estimated of {chunks[0].size:,}")


if __name__ == "__main__":
    main()
