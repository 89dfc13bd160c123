"""Estimation accuracy on real load profiles: hide gaps, estimate them, compare with the truth.

Loaders put real household data on a UTC grid of interval starts (NaN where nothing was
received): :func:`load_london` (Low Carbon London, half-hourly, local UK time stored as written)
and :func:`load_sgsc` (Smart Grid Smart City, ten Australian households, local Sydney time).
:func:`run_accuracy` hides seeded random gaps of 1 interval to 7 days in the received data,
estimates them with every method and reports the mean absolute error (MAE) and the mean absolute
percentage error (MAPE, over intervals whose true value is not zero) per method and gap length.
The learned estimator is trained per channel on the data outside the hidden gaps only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from meter2cash.mdm.vee.estimation import (
    average_daily_use,
    day_types_for,
    like_day_profile,
    linear_interpolation,
)
from meter2cash.mdm.vee.learned import train
from meter2cash.mdm.vee.types import FloatArray, find_runs

#: Gap-length bands [hours] of the report: (label, shortest, longest).
BANDS: tuple[tuple[str, float, float], ...] = (
    ("≤ 1 h", 0.0, 1.0),
    ("1–6 h", 1.0, 6.0),
    ("6–24 h", 6.0, 24.0),
    ("1–3 d", 24.0, 72.0),
    ("3–7 d", 72.0, 168.0),
)
METHODS = ("linear_interpolation", "like_day_profile", "average_daily_use", "learned")
CLASSICAL = ("linear_interpolation", "like_day_profile", "average_daily_use")


@dataclass(slots=True)
class Series:
    """One channel on a whole-day UTC grid: ``values`` [kWh per interval], NaN = not received."""

    name: str
    start: pd.Timestamp
    interval_s: int
    values: FloatArray
    country: str | None = None
    tz: str = "UTC"


def _to_grid(name: str, ts_utc: pd.Series, kwh: pd.Series, interval_s: int, country: str, tz: str) -> Series:
    step = pd.Timedelta(seconds=interval_s)
    first = ts_utc.min().floor("D")
    last = ts_utc.max().floor("D") + pd.Timedelta(days=1)
    n = int((last - first) / step)
    values = np.full(n, np.nan)
    idx = ((ts_utc - first) / step).to_numpy().astype(np.int64)
    values[idx] = kwh.to_numpy(dtype=np.float64)
    # whole days before the first and after the last reading are not "missing" data
    return Series(name, first, interval_s, values, country, tz)


def load_london(path: str | Path) -> list[Series]:
    """LCL file: a header row then ``timestamp,kwh`` rows (UK local time as written; Greenwich
    mean time and summer time are not told apart in this data, so the stamps are taken as UTC)."""
    df = pd.read_csv(path, header=0, names=["ts", "kwh"], parse_dates=["ts"])
    ts = df.ts.dt.tz_localize("UTC")
    return [_to_grid(Path(path).stem, ts, df.kwh, 1800, "GB", "Europe/London")]


def load_sgsc(path: str | Path) -> tuple[list[Series], int]:
    """SGSC file: ``customer_id, reading_datetime, general_supply_kwh`` in local Sydney time.

    A local time that does not exist (spring forward) or exists twice (fall back) cannot be
    placed on the UTC grid without guessing; such rows are left out and counted. Returns the
    series (one per customer) and the number of rows left out.
    """
    df = pd.read_csv(path, parse_dates=["reading_datetime"])
    local = df.reading_datetime.dt.tz_localize("Australia/Sydney", ambiguous="NaT", nonexistent="NaT")
    ok = local.notna()
    df = df[ok].assign(ts=local[ok].dt.tz_convert("UTC"))
    out = [
        _to_grid(str(cid), g.ts, g.general_supply_kwh, 1800, "AU", "Australia/Sydney")
        for cid, g in df.groupby("customer_id", sort=True)
    ]
    return out, int((~ok).sum())


def received_span(values: FloatArray) -> tuple[int, int]:
    """First and one-past-last received interval."""
    got = np.flatnonzero(~np.isnan(values))
    return int(got[0]), int(got[-1]) + 1


def hide_gaps(
    values: FloatArray, rng: np.random.Generator, *, count: int, max_len: int
) -> list[tuple[int, int]]:
    """``count`` non-overlapping gaps ``(first, length)`` of log-uniform length 1..``max_len``
    placed where every interval (and one on each side) was received."""
    lo, hi = received_span(values)
    taken = np.isnan(values).copy()
    gaps: list[tuple[int, int]] = []
    tries = 0
    while len(gaps) < count and tries < count * 50:
        tries += 1
        length = int(np.exp(rng.uniform(0, np.log(max_len + 1)))) if max_len > 1 else 1
        length = min(max(length, 1), max_len)
        s = int(rng.integers(lo + 1, max(hi - length - 1, lo + 2)))
        if taken[s - 1 : s + length + 1].any():
            continue
        taken[s - 1 : s + length + 1] = True
        gaps.append((s, length))
    return sorted(gaps)


@dataclass(slots=True)
class Errors:
    """Sums for MAE/MAPE of one method in one band."""

    abs_err: float = 0.0
    n: int = 0
    ape: float = 0.0
    n_pct: int = 0

    def add(self, est: FloatArray, truth: FloatArray) -> None:
        err = np.abs(est - truth)
        self.abs_err += float(err.sum())
        self.n += len(err)
        nz = truth != 0
        self.ape += float((err[nz] / np.abs(truth[nz])).sum())
        self.n_pct += int(nz.sum())

    @property
    def mae(self) -> float:
        return self.abs_err / self.n if self.n else float("nan")

    @property
    def mape(self) -> float:
        return 100.0 * self.ape / self.n_pct if self.n_pct else float("nan")


@dataclass(slots=True)
class AccuracyReport:
    """MAE/MAPE per band and method, plus the overall figures and how much the learned one wins."""

    errors: dict[str, dict[str, Errors]] = field(default_factory=dict)
    gaps: dict[str, int] = field(default_factory=dict)
    channels: int = 0

    def overall(self, method: str) -> Errors:
        out = Errors()
        for band in self.errors.values():
            e = band[method]
            out.abs_err += e.abs_err
            out.n += e.n
            out.ape += e.ape
            out.n_pct += e.n_pct
        return out

    def best_classical(self) -> str:
        return min(CLASSICAL, key=lambda m: self.overall(m).mae)

    def learned_gain(self) -> float:
        """How much lower the learned estimator's overall MAE is than the best classical one [%]."""
        best = self.overall(self.best_classical()).mae
        return 100.0 * (best - self.overall("learned").mae) / best


def estimate_all(series: Series, hidden: FloatArray, seed: int) -> dict[str, FloatArray]:
    """Every method's estimate of the NaN intervals of ``hidden`` (linear for any length)."""
    spd = 86_400 // series.interval_s
    days = [(series.start + pd.Timedelta(days=k)).date() for k in range(len(hidden) // spd)]
    types = day_types_for(days, series.tz, holiday_country=series.country)
    v = hidden[None, :]
    lin, _ = linear_interpolation(v, max_interp_intervals=len(hidden))
    prof, _ = like_day_profile(v, slots_per_day=spd, day_types=types, window_days=28)
    avg, _ = average_daily_use(v, slots_per_day=spd)
    model = train(v, slots_per_day=spd, day_types=types, seed=seed)
    if model is None:
        raise ValueError(f"{series.name}: not enough history to train the learned estimator")
    learned = model.predict(v, np.isnan(v), slots_per_day=spd, day_types=types)
    fallback = np.where(np.isnan(prof), avg, prof)  # a method with nothing to go on falls back
    return {
        "linear_interpolation": np.where(np.isnan(lin), fallback, lin)[0],
        "like_day_profile": np.where(np.isnan(prof), avg, prof)[0],
        "average_daily_use": avg[0],
        "learned": learned[0],
    }


def run_accuracy(
    series_list: list[Series], *, gaps_per_channel: int = 60, max_days: float = 7.0, seed: int = 2026
) -> AccuracyReport:
    """Hide gaps in every series, estimate them with every method, collect errors per band."""
    rng = np.random.default_rng(seed)
    rep = AccuracyReport(
        errors={b[0]: {m: Errors() for m in METHODS} for b in BANDS}, gaps={b[0]: 0 for b in BANDS}
    )
    for k, s in enumerate(series_list):
        spd = 86_400 // s.interval_s
        gaps = hide_gaps(s.values, rng, count=gaps_per_channel, max_len=int(max_days * spd))
        hidden = s.values.copy()
        for first, length in gaps:
            hidden[first : first + length] = np.nan
        est = estimate_all(s, hidden, seed + k)
        rep.channels += 1
        for first, length in gaps:
            hours = length * s.interval_s / 3600
            band = next(b[0] for b in BANDS if b[1] < hours <= b[2] or (b[1] == 0 and hours <= b[2]))
            rep.gaps[band] += 1
            truth = s.values[first : first + length]
            for m in METHODS:
                rep.errors[band][m].add(est[m][first : first + length], truth)
    return rep


def real_gaps(series: Series) -> list[tuple[int, int]]:
    """The gaps already in the data (between the first and last reading): ``(first, length)``."""
    lo, hi = received_span(series.values)
    _, cols, lengths = find_runs(np.isnan(series.values[lo:hi])[None, :])
    return [(int(c) + lo, int(n)) for c, n in zip(cols, lengths, strict=True)]
