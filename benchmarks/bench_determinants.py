"""Bill determinants of a bill-run chunk: window_determinants (one compiled walk over the read
window) against the NumPy composition it replaces (rows taken from the window, gaps of the active
days estimated, bill_determinants, daily_kwh).

A chunk of N agreements (default 1000) on N channels of 15-minute data over a 31-day window
(2976 intervals, 32 local days in Asia/Kolkata), 3 TOU periods, about 0.1 % of the intervals
missing; every agreement active all month, and again with a tenth of them starting mid-month.
Times are medians of 7 (the two taken in turn) after a warm-up call; the compile time is that of
the kernel alone (Numba's cache bypassed), the load time that of importing Numba and loading the
cached kernels.
Run: ``python benchmarks/bench_determinants.py [--quick] [--n N] [--demand-s S]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

import numpy as np
from rich.console import Console
from rich.table import Table

from meter2cash.core.quality import FLAG_DTYPE, Quality
from meter2cash.core.timeutil import local_frame
from meter2cash.mdm.determinants import bill_determinants, daily_kwh, fill_missing, window_determinants

TZ = "Asia/Kolkata"
INTERVAL_S = 900
N_PERIODS = 3


def median_times(fns: list[Callable[[], object]], repeats: int = 7) -> list[tuple[float, float]]:
    """(median, fastest) seconds of each function, the calls taken in turn (so that both see the
    same load of a shared machine), after a warm-up call of each (compile or load, touch arrays)."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, times, strict=True):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return [(statistics.median(ts), min(ts)) for ts in times]


def load_and_compile_s() -> tuple[float, float]:
    """(seconds to import Numba and load the cached kernel, seconds to compile it afresh), in a
    fresh interpreter."""
    code = """
import time
from meter2cash.mdm import determinants as d
t0 = time.perf_counter()
d._compiled_window_kernel()
t1 = time.perf_counter()
import numba
numba.njit(d._WINDOW_SIGNATURE, cache=False, nogil=True, error_model="numpy")(d._window_rows)
print(t1 - t0, time.perf_counter() - t1)
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    load, compile_ = out.stdout.split()
    return float(load), float(compile_)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=1000, help="agreements (= channels) in the chunk")
    ap.add_argument("--quick", action="store_true", help="200 agreements")
    ap.add_argument("--demand-s", type=int, default=INTERVAL_S, help="demand integration period [s]")
    args = ap.parse_args()
    n = 200 if args.quick else args.n
    rng = np.random.default_rng(7)
    start = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
    t = 31 * 86_400 // INTERVAL_S
    starts = start + INTERVAL_S * np.arange(t, dtype=np.int64)
    frame = local_frame(starts, TZ)
    hour = frame["minute_of_day"].to_numpy() // 60
    pidx = np.where((hour >= 17) & (hour < 22), 2, np.where((hour >= 6) & (hour < 17), 1, 0)).astype(np.int8)
    local = frame["date"].to_numpy().astype("datetime64[D]")
    day = (local - local[0]).astype(np.int64)
    n_days = int(day[-1]) + 1

    values = rng.gamma(2.0, 0.15, size=(n, t))
    values[rng.random((n, t)) < 0.001] = np.nan
    flags = np.where(np.isnan(values), FLAG_DTYPE(Quality.MISSING), FLAG_DTYPE(0)).astype(FLAG_DTYPE)
    rows = rng.permutation(n).astype(np.int64)
    cols = np.arange(t)
    full = (np.zeros(n, np.int64), np.full(n, t, np.int64))
    late = full[0].copy()
    late[: n // 10] = np.searchsorted(day, rng.integers(1, n_days, n // 10))  # moved in mid-month
    cases = {"all active": full, "10 % mid-month": (late, full[1])}

    def reference(lo: np.ndarray, hi: np.ndarray) -> object:
        active = (cols[None, :] >= lo[:, None]) & (cols[None, :] < hi[:, None])
        raw, raw_flags = values[rows], flags[rows]
        valid = np.count_nonzero(active & ~np.isnan(raw), axis=1)
        filled, filled_flags = fill_missing(raw, raw_flags, active)
        det = bill_determinants(filled, filled_flags, pidx, N_PERIODS, INTERVAL_S, args.demand_s)
        _, daily = daily_kwh(np.where(active, filled, np.nan), starts, TZ)
        return det, daily, valid

    def kernel(lo: np.ndarray, hi: np.ndarray) -> object:
        return window_determinants(
            values, flags, rows, lo, hi, pidx, N_PERIODS, day, n_days, INTERVAL_S, args.demand_s
        )

    table = Table(title=f"{n} agreements × {t} intervals, {n_days} local days, demand {args.demand_s} s")
    for col in ("case", "NumPy (ms)", "kernel (ms)", "speed-up", "fastest: NumPy / kernel (ms)"):
        table.add_column(col, justify="right")
    for name, (lo, hi) in cases.items():
        ref, ker = median_times([partial(reference, lo, hi), partial(kernel, lo, hi)])
        fast = f"{ref[1] * 1e3:.1f} / {ker[1] * 1e3:.1f}"
        table.add_row(name, f"{ref[0] * 1e3:.1f}", f"{ker[0] * 1e3:.1f}", f"{ref[0] / ker[0]:.1f}×", fast)
    console = Console()
    console.print(table)
    load, compile_ = load_and_compile_s()
    console.print(f"import Numba and load the cached kernels: {load:.2f} s")
    console.print(f"compile window_determinants' kernel afresh: {compile_:.2f} s")


if __name__ == "__main__":
    main()
