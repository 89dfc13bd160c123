"""Estimation accuracy on real households: MAE/MAPE per method and gap length, learned vs classical.

Usage: python benchmarks/bench_vee_accuracy.py [--quick] [--gaps N] [--repeats R] [--data DIR]

Hides seeded random gaps (1 interval to 7 days) in the London (LCL MAC000060) and ten Australian
(SGSC) households of ../shared/data/loadprofiles, estimates them with every method (the learned
one trained per household on the data outside the hidden gaps) and prints the table, plus the time
of a run against a baseline measured in the same run (linear interpolation alone).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from rich.console import Console

from meter2cash.cli.vee import accuracy_table
from meter2cash.mdm.vee.estimation import linear_interpolation
from meter2cash.mdm.vee.research.accuracy import load_london, load_sgsc, run_accuracy

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="20 gaps per household, one repeat")
    ap.add_argument("--gaps", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data" / "loadprofiles")
    args = ap.parse_args()
    gaps, repeats = (20, 1) if args.quick else (args.gaps, args.repeats)
    series = (
        load_london(args.data / "lcl_MAC000060.csv") + load_sgsc(args.data / "sgsc_smart_meter10.csv.gz")[0]
    )
    times, rep = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        rep = run_accuracy(series, gaps_per_channel=gaps, seed=args.seed)
        times.append(time.perf_counter() - t0)
    base = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for s in series:
            linear_interpolation(
                np.where(np.isnan(s.values), np.nan, s.values)[None, :], max_interp_intervals=336
            )
        base.append(time.perf_counter() - t0)
    assert rep is not None
    console = Console()
    console.print(accuracy_table(rep))
    best = rep.best_classical()
    console.print(
        f"learned MAE {rep.overall('learned').mae:.4f} kWh vs best classical ({best}) "
        f"{rep.overall(best).mae:.4f} kWh: [bold]{rep.learned_gain():.1f}% lower[/bold]"
    )
    console.print(
        f"{len(series)} households, {sum(len(s.values) for s in series):,} intervals: "
        f"all methods incl. training {statistics.median(times):.2f} s (median of {repeats}); "
        f"baseline linear interpolation alone {statistics.median(base):.3f} s"
    )


if __name__ == "__main__":
    main()
