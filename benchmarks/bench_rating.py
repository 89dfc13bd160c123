"""Rating throughput: the vectorised exact kernel vs a plain NumPy float pass and rate_one in a loop,
bill lines written straight from the arrays (end to end), and the speed per bill against NREL SAM.

Rates N monthly bills (default 200,000) of the commercial TOU + slab + demand tariff
(examples/tariffs/com-tou.toml). The SAM comparison rates the same tariff (without the holiday
calendar, which SAM lacks) on hourly loads for a year: ours from hourly data through
determinants and the kernel, SAM's ``Utilityrate5`` one load (12 bills) per execute.
Run: ``python benchmarks/bench_rating.py [--quick] [--n N]``.
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

from meter2cash.cis.rating.lines import line_rows
from meter2cash.cis.rating.rate import rate_arrays, rate_one
from meter2cash.cis.rating.types import RatingInput
from meter2cash.cis.tariffs.loader import load_tariff_file

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
    ids = np.arange(1, n + 1)
    rows_fast = median_time(lambda: line_rows(rate_arrays(version, inp), ids, stored=True))
    rows_dec = median_time(lambda: line_rows(rate_arrays(version, inp), ids))
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
        ("kernel + bill-line rows from the arrays, stored integers (end to end)", rows_fast),
        ("kernel + bill-line rows from the arrays, Decimal amounts", rows_dec),
        ("kernel + Decimal RatedBill objects", full),
        (f"rate_one in a Python loop (extrapolated from {sample:,})", loop),
    ]
    for name, secs in rows:
        table.add_row(name, f"{secs:.3f}", f"{n / secs:,.0f}", f"{secs / kernel:.2f}×")
    Console().print(table)
    Console().print(
        f"kernel is {loop / kernel:,.0f}× faster than rate_one per bill and "
        f"{kernel / base:.1f}× slower than the float baseline; end to end {n / rows_fast:,.0f} bills/s "
        "(target ≥ 100,000)"
    )
    compare_with_sam(version, 20 if args.quick else 100)


def compare_with_sam(version: object, loads: int) -> None:
    """Seconds per monthly bill, ours vs SAM, on the same tariff and hourly loads (one run)."""
    import sys

    try:
        import PySAM.Utilityrate5  # noqa: F401
    except ImportError:
        Console().print("nrel-pysam is not installed: no comparison with SAM")
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "differential"))
    from sam import HOURS, our_monthly_bills, sam_monthly_bills

    assert hasattr(version, "tou")
    v = version.model_copy(update={"tou": version.tou.model_copy(update={"holidays": None})})  # type: ignore[attr-defined]
    rng = np.random.default_rng(5)
    load = np.round(rng.gamma(2.0, 20.0, (loads, HOURS)), 3)
    ours = median_time(lambda: our_monthly_bills(v, load))
    sam_n = max(loads // 5, 2)
    sam = median_time(lambda: [sam_monthly_bills(v, load[i]) for i in range(sam_n)])
    ours_per, sam_per = ours / (loads * 12), sam / (sam_n * 12)
    table = Table(title=f"Per monthly bill on {v.code}, hourly load for a year (median of 3)")
    for col in ("engine", "bills", "µs per bill"):
        table.add_column(col, justify="left" if col == "engine" else "right")
    table.add_row(
        "meter2cash: determinants + exact kernel, loads as arrays",
        f"{loads * 12:,}",
        f"{ours_per * 1e6:,.1f}",
    )
    table.add_row(
        "NREL SAM Utilityrate5 (PySAM), one load per execute", f"{sam_n * 12:,}", f"{sam_per * 1e6:,.1f}"
    )
    Console().print(table)
    Console().print(
        f"meter2cash is {sam_per / ours_per:,.1f}× faster per bill than SAM on the same tariff and loads"
    )


if __name__ == "__main__":
    main()
