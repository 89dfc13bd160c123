"""Rating throughput: the vectorised exact kernel vs a plain NumPy float pass and rate_one in a loop.

Rates N monthly bills (default 200,000) of the commercial TOU + slab + demand tariff
(examples/tariffs/com-tou.toml). Run: ``python benchmarks/bench_rating.py [--quick] [--n N]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from meter2cash.cis.rating import RatingInput, rate_arrays, rate_one
from meter2cash.cis.tariffs import load_tariff_file

TARIFF = Path(__file__).resolve().parents[1] / "examples" / "tariffs" / "com-tou.toml"


def median_time(fn: Callable[[], object], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--quick", action="store_true", help="20,000 bills")
    ap.add_argument("--sample", type=int, default=2_000, help="bills rated one by one with rate_one")
    args = ap.parse_args()
    n = 20_000 if args.quick else args.n
    version = load_tariff_file(TARIFF).versions[0]
    rng = np.random.default_rng(1)
    kwh = rng.gamma(2.0, 300.0, size=(n, 3)).round(3)
    demand = rng.uniform(2, 40, n).round(3)
    inp = RatingInput.from_kwh(kwh, demand, np.full(n, 20.0), 31, rng.integers(1, 32, n))

    def baseline() -> np.ndarray:
        """Plain float NumPy pass over the same arrays: same formula, no exact rounding, no objects."""
        total = kwh.sum(axis=1)
        energy = np.minimum(total, 500) * 7.0 + np.maximum(total - 500, 0) * 8.25
        tou = kwh[:, 1] * 1.5 - kwh[:, 2] * 0.75
        fixed = 150.0 * inp.days_active / 31
        dem = demand * 250.0
        return (energy + tou + fixed + dem) * 1.06 + (energy + tou) * 0.005

    kernel = median_time(lambda: rate_arrays(version, inp))
    full = median_time(lambda: rate_arrays(version, inp).bills())
    base = median_time(baseline)
    sample = min(args.sample, n)
    dets = [
        {"kwh_by_period": dict(zip(version.period_names, map(float, kwh[i]), strict=True)),
         "max_demand_kw": float(demand[i]), "sanctioned_load_kw": 20, "days_in_period": 31,
         "days_active": int(inp.days_active[i])}
        for i in range(sample)
    ]  # fmt: skip
    loop = median_time(lambda: [rate_one(version, d) for d in dets]) * n / sample
    # Same money as one bill at a time:
    assert rate_arrays(version, inp).bill(0) == rate_one(version, dets[0])

    table = Table(title=f"Rating {n:,} monthly bills, {version.code} (median of 3)")
    for col in ("method", "seconds", "bills/s", "vs kernel"):
        table.add_column(col, justify="left" if col == "method" else "right")
    rows = [
        ("plain NumPy float pass (baseline, no exact money)", base),
        ("vectorised exact kernel (int64 arrays)", kernel),
        ("kernel + Decimal RatedBill objects", full),
        (f"rate_one in a Python loop (extrapolated from {sample:,})", loop),
    ]
    for name, secs in rows:
        table.add_row(name, f"{secs:.3f}", f"{n / secs:,.0f}", f"{secs / kernel:.2f}×")
    Console().print(table)
    Console().print(
        f"kernel is {loop / kernel:,.0f}× faster than rate_one per bill and "
        f"{kernel / base:.1f}× slower than the float baseline"
    )


if __name__ == "__main__":
    main()
