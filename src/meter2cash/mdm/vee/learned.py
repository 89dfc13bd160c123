"""The learned estimator: a robust linear model trained on a channel's (or a class's) own history.

NumPy only. For every interval to estimate it builds features from what an MDM knows around a
gap: the values just before and after it and how far they are, the linear interpolation between
them, like-day profiles over recent weeks and over the whole history, the same slot on the days
before and after, and the channel's level around the gap. Each feature is divided by the
channel's mean level so one model serves channels of any size.

Training hides synthetic gaps (1 interval to 7 days, log-uniform lengths, seeded) in the valid
data only, computes the features exactly as for a real gap, and fits the coefficients by
iteratively reweighted least squares for the absolute error (with a small ridge term). Nothing
inside a gap to be estimated is ever used for training.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from meter2cash.mdm.vee.estimation import profile_of
from meter2cash.mdm.vee.types import BoolArray, FloatArray

N_FEATURES = 20
#: Stored models carry this kind and format; a model of another format is not loaded.
MODEL_KIND = "robust_linear"
MODEL_FORMAT = 1


def _edges(values: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Per interval: the last valid value before, the first valid after, and their distances."""
    n_rows, n = values.shape
    valid = ~np.isnan(values)
    idx = np.arange(n)
    last = np.where(valid, idx, -1)
    np.maximum.accumulate(last, axis=1, out=last)
    nxt = np.where(valid, idx, n)
    nxt = np.minimum.accumulate(nxt[:, ::-1], axis=1)[:, ::-1]
    rows = np.arange(n_rows)[:, None]
    before = np.where(last >= 0, values[rows, np.clip(last, 0, n - 1)], np.nan)
    after = np.where(nxt < n, values[rows, np.clip(nxt, 0, n - 1)], np.nan)
    d_before = np.where(last >= 0, idx - last, np.inf).astype(np.float64)
    d_after = np.where(nxt < n, nxt - idx, np.inf).astype(np.float64)
    return before, after, d_before, d_after


def _shift(a: FloatArray, k: int) -> FloatArray:
    out = np.full_like(a, np.nan)
    if k > 0:
        out[:, k:] = a[:, :-k]
    elif k < 0:
        out[:, :k] = a[:, -k:]
    else:
        out[:] = a
    return out


def _rolling_mean(values: FloatArray, width: int) -> tuple[FloatArray, FloatArray]:
    """Mean of the valid values in the ``width`` intervals ending at / starting at each interval."""
    valid = ~np.isnan(values)
    cs = np.concatenate(
        (np.zeros((values.shape[0], 1)), np.cumsum(np.where(valid, values, 0.0), axis=1)), axis=1
    )
    cc = np.concatenate((np.zeros((values.shape[0], 1)), np.cumsum(valid, axis=1)), axis=1)
    n = values.shape[1]
    i = np.arange(n)
    lo = np.clip(i + 1 - width, 0, n)
    hi = np.clip(i + width, 0, n)
    back = (cs[:, i + 1] - cs[:, lo]) / np.maximum(cc[:, i + 1] - cc[:, lo], 1)
    fwd = (cs[:, hi] - cs[:, i]) / np.maximum(cc[:, hi] - cc[:, i], 1)
    back[(cc[:, i + 1] - cc[:, lo]) == 0] = np.nan
    fwd[(cc[:, hi] - cc[:, i]) == 0] = np.nan
    return back, fwd


def features(
    values: FloatArray, target: BoolArray, *, slots_per_day: int, day_types: npt.NDArray[np.integer]
) -> tuple[FloatArray, npt.NDArray[np.intp], npt.NDArray[np.intp], FloatArray]:
    """Feature rows for the ``target`` intervals of ``values`` (NaN = unknown, including targets).

    Returns ``(X, rows, cols, level)``: ``X`` is ``(m, N_FEATURES)``, scaled by each channel's
    ``level`` (its mean valid value), and ``rows``/``cols`` locate each feature row.
    """
    values = np.atleast_2d(values)
    spd = slots_per_day
    valid = ~np.isnan(values)
    got = valid.sum(axis=1)
    level = np.where(valid, values, 0.0).sum(axis=1) / np.maximum(got, 1)
    level = np.where((got > 0) & (level > 0), level, 1.0)
    scaled = values / level[:, None]
    before, after, db, da = _edges(scaled)
    prof_all = profile_of(scaled, slots_per_day=spd, day_types=day_types)
    prof_recent = profile_of(scaled, slots_per_day=spd, day_types=day_types, window_days=28)
    prof_week = profile_of(
        scaled, slots_per_day=spd, day_types=np.zeros(len(day_types), dtype=np.int64), window_days=7
    )
    prev_day, next_day = _shift(scaled, spd), _shift(scaled, -spd)
    lvl_back, lvl_fwd = _rolling_mean(scaled, spd)
    rows, cols = np.nonzero(target)

    def at(a: FloatArray) -> FloatArray:
        return a[rows, cols]

    p_all, p_rec, p_week = at(prof_all), at(prof_recent), at(prof_week)
    p = np.where(np.isnan(p_rec), np.where(np.isnan(p_all), 1.0, p_all), p_rec)
    p_rec = p  # no like-day within 28 days: the whole window's profile, else the mean level
    p_all = np.where(np.isnan(p_all), p, p_all)
    p_week = np.where(np.isnan(p_week), p, p_week)
    b, a, dbt, dat = at(before), at(after), at(db), at(da)
    b = np.where(np.isnan(b), p, b)
    a = np.where(np.isnan(a), p, a)
    span = np.where(np.isfinite(dbt) & np.isfinite(dat), dbt + dat, np.inf)
    both = np.isfinite(span)
    frac = np.divide(dbt, span, out=np.zeros_like(dbt), where=both)
    lin = np.where(both, b + (a - b) * frac, np.where(np.isfinite(dbt), b, a))
    wb1, wa1 = np.exp(-dbt / 2.0), np.exp(-dat / 2.0)
    wb2, wa2 = np.exp(-dbt / (spd / 4)), np.exp(-dat / (spd / 4))
    near = np.maximum(wb2, wa2)
    # the level just before the gap (ending at its last valid value) and just after it
    last_valid = np.clip(cols - np.where(np.isfinite(dbt), dbt, 0).astype(np.intp), 0, values.shape[1] - 1)
    next_valid = np.clip(cols + np.where(np.isfinite(dat), dat, 0).astype(np.intp), 0, values.shape[1] - 1)
    lb = lvl_back[rows, last_valid]
    la = lvl_fwd[rows, next_valid]
    lb = np.where(np.isfinite(dbt) & ~np.isnan(lb), lb, 1.0)
    la = np.where(np.isfinite(dat) & ~np.isnan(la), la, 1.0)
    local = 0.5 * (lb + la)
    pd_, nd_ = at(prev_day), at(next_day)
    X = np.column_stack(
        [
            np.ones_like(p),
            p_rec,
            p_all,
            p_week,
            p_rec * local,
            lin * near,
            wb1 * (b - p_rec),
            wa1 * (a - p_rec),
            wb2 * (b - p_rec),
            wa2 * (a - p_rec),
            np.where(np.isnan(pd_), p_rec, pd_),
            np.where(np.isnan(nd_), p_rec, nd_),
            np.isnan(pd_) & np.isnan(nd_),
            lb,
            la,
            near,
            p_rec * near,
            lin * np.maximum(wb1, wa1),
            p_rec * np.maximum(wb1, wa1),
            np.maximum(wb1, wa1),
        ]
    ).astype(np.float64)
    return X, rows, cols, level


@dataclass(frozen=True, slots=True)
class LearnedModel:
    """Coefficients of the robust linear model (features as in :func:`features`)."""

    coef: FloatArray
    samples: int

    def predict(
        self, values: FloatArray, target: BoolArray, *, slots_per_day: int, day_types: npt.NDArray[np.integer]
    ) -> FloatArray:
        """Predictions for the ``target`` intervals (NaN elsewhere) [unit per interval, >= 0].

        What ``values`` holds at the targets is never read: they are the intervals to predict.
        """
        target = np.atleast_2d(target)
        values = np.where(target, np.nan, np.atleast_2d(values))
        out = np.full(values.shape, np.nan)
        need = np.flatnonzero(target.any(axis=1))  # features only for channels with something to fill
        if len(need) == 0:
            return out
        X, rows, cols, level = features(
            values[need], target[need], slots_per_day=slots_per_day, day_types=day_types
        )
        out[need[rows], cols] = np.maximum(X @ self.coef, 0.0) * level[rows]
        return out

    def to_npz(self) -> bytes:
        """The model as an ``.npz`` archive (``coef``, ``samples``, ``n_features``, ``format``)."""
        buf = io.BytesIO()
        np.savez(
            buf,
            coef=np.asarray(self.coef, dtype=np.float64),
            samples=np.int64(self.samples),
            n_features=np.int64(N_FEATURES),
            format=np.int64(MODEL_FORMAT),
        )
        return buf.getvalue()

    @classmethod
    def from_npz(cls, data: bytes) -> LearnedModel:
        """Read a model written by :meth:`to_npz`; ``ValueError`` if it does not fit this code's
        features (another format or number of features)."""
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            fmt, n_feat = int(z["format"]), int(z["n_features"])
            coef = np.asarray(z["coef"], dtype=np.float64)
            samples = int(z["samples"])
        if fmt != MODEL_FORMAT or n_feat != N_FEATURES or coef.shape != (N_FEATURES,):
            raise ValueError(f"stored model format {fmt} with {n_feat} features does not fit")
        return cls(coef, samples)


def synthetic_gaps(valid: BoolArray, rng: np.random.Generator, *, share: float, max_len: int) -> BoolArray:
    """A mask of random gaps (log-uniform lengths 1..``max_len``) inside the ``valid`` intervals,
    covering about ``share`` of them."""
    n_rows, n = valid.shape
    mask = np.zeros(valid.shape, dtype=bool)
    want = int(share * valid.sum())
    mean_len = (max_len - 1) / np.log(max_len) if max_len > 1 else 1
    k = max(1, int(want / mean_len))
    lengths = np.exp(rng.uniform(0, np.log(max_len + 1), size=k)).astype(np.int64).clip(1, max_len)
    rows = rng.integers(0, n_rows, size=k)
    starts = rng.integers(0, max(n - 1, 1), size=k)
    for r, s, ln in zip(rows.tolist(), starts.tolist(), lengths.tolist(), strict=True):
        mask[r, s : s + ln] = True
    return mask & valid


def train(
    values: FloatArray,
    *,
    slots_per_day: int,
    day_types: npt.NDArray[np.integer],
    seed: int = 0,
    rounds: int = 3,
    share: float = 0.1,
    max_gap_days: float = 7.0,
    ridge: float = 1e-3,
    iterations: int = 12,
    min_samples: int = 200,
    max_rows: int = 200,
    max_samples: int = 50_000,
) -> LearnedModel | None:
    """Fit a :class:`LearnedModel` on the valid values of ``values`` (NaN = unknown).

    ``rounds`` times, synthetic gaps covering ``share`` of the valid intervals are hidden and the
    features of those intervals computed; the coefficients minimise the mean absolute error
    (IRLS). Training uses at most ``max_rows`` channels and ``max_samples`` intervals (a seeded
    random choice), which bounds its cost for a chunk of a whole fleet. Returns ``None`` when there
    are fewer than ``min_samples`` training intervals.
    """
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    rng = np.random.default_rng(seed)
    if values.shape[0] > max_rows:
        values = values[np.sort(rng.choice(values.shape[0], max_rows, replace=False))]
    valid = ~np.isnan(values)
    xs, ys = [], []
    for _ in range(rounds):
        hide = synthetic_gaps(valid, rng, share=share, max_len=int(max_gap_days * slots_per_day))
        X, rows, cols, level = features(
            np.where(hide, np.nan, values), hide, slots_per_day=slots_per_day, day_types=day_types
        )
        xs.append(X)
        ys.append(values[rows, cols] / level[rows])
    X = np.concatenate(xs)
    y = np.concatenate(ys)
    finite = np.isfinite(X).all(axis=1) & np.isfinite(y)
    X, y = X[finite], y[finite]
    if len(y) < min_samples:
        return None
    if len(y) > max_samples:
        keep = rng.choice(len(y), max_samples, replace=False)
        X, y = X[keep], y[keep]
    coef = fit_l1(X, y, ridge=ridge, iterations=iterations)
    if not np.isfinite(coef).all():
        return None
    return LearnedModel(coef, len(y))


def fit_l1(X: FloatArray, y: FloatArray, *, ridge: float = 1e-3, iterations: int = 12) -> FloatArray:
    """Least absolute deviations with a ridge term, by iteratively reweighted least squares."""
    k = X.shape[1]
    w = np.ones(len(y))
    coef = np.zeros(k)
    for _ in range(iterations):
        Xw = X * w[:, None]
        gram = X.T @ Xw
        reg = ridge * np.diag(np.diag(gram) + 1e-9)  # relative ridge: scale-free
        coef = np.asarray(np.linalg.solve(gram + reg, Xw.T @ y), dtype=np.float64)
        w = 1.0 / np.maximum(np.abs(y - X @ coef), 1e-3)
    return coef
