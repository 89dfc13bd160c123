"""Stored learned estimators: train per customer class, evaluate on held-out gaps, version, load.

A :class:`VeeModel` row holds one trained :class:`LearnedModel` (its coefficients as ``.npz``) for
a *scope* (``class:residential``, ``class:commercial``, ``class:none`` for channels without a
customer class) and an interval length, with the history it learned from and its error on
held-out data. The newest version of a scope is the active one; storing a new version deactivates
the previous ones.

:func:`train_models` (``m2c vee train``) trains on validated history from the store. A VEE run
asks :func:`model_for_run` for the active model of a chunk's scope and trains one on the chunk's
own data (and stores it) only when there is none or it is older than the rule set's
``estimation.learned_max_age_days``; when another run stored a model of the scope meanwhile, the
run uses that one. Functions take a Session and never commit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from meter2cash.audit.models import AuditEntry
from meter2cash.core.errors import InvalidInput
from meter2cash.core.quality import Quality
from meter2cash.core.timeutil import day_start, slots_per_day, utcnow
from meter2cash.mdm.models import Channel, ReadingType
from meter2cash.mdm.store import MeasurementStore
from meter2cash.mdm.vee.estimation import day_types_for, like_day_profile
from meter2cash.mdm.vee.learned import MODEL_KIND, LearnedModel, synthetic_gaps, train
from meter2cash.mdm.vee.models import VeeModel
from meter2cash.mdm.vee.ruleset.store import CustomerClasses, channel_classes
from meter2cash.mdm.vee.types import FloatArray

#: Share of the valid intervals hidden as synthetic gaps to measure a model's error.
HOLDOUT_SHARE = 0.1
#: At most this many channels of a class are read for training (a seeded random choice).
MAX_TRAIN_CHANNELS = 500
#: Held-out gaps are hidden in at most this many channels (the error is measured on them).
MAX_EVAL_CHANNELS = 200
#: Training needs at least this many training intervals (about 100 channel-days at 15 min).
MIN_SAMPLES = 2000
_NOT_ACTUAL = int(Quality.MISSING | Quality.REJECTED | Quality.ESTIMATED)
_IN = 1000


def scope_of(customer_class: str | None) -> str:
    """The model scope of a customer class (``class:none`` without one)."""
    return f"class:{customer_class or 'none'}"


@dataclass(frozen=True, slots=True)
class ModelUse:
    """Which stored model a VEE chunk used, and whether the run trained it."""

    scope: str
    interval_s: int
    version: int
    trained: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "interval_s": self.interval_s,
            "version": self.version,
            "trained": self.trained,
        }


def fit_and_evaluate(
    values: FloatArray,
    *,
    slots_per_day: int,
    day_types: npt.NDArray[np.integer],
    seed: int = 2026,
    holdout: float = HOLDOUT_SHARE,
    min_samples: int = MIN_SAMPLES,
    min_like_days: int = 1,
    rounds: int = 3,
) -> tuple[LearnedModel | None, dict[str, Any]]:
    """Hide ``holdout`` of the valid intervals of up to :data:`MAX_EVAL_CHANNELS` channels (a seeded
    choice) as synthetic gaps, train on the rest, and measure the mean absolute error of the model
    and of the like-day profile on the hidden intervals.

    Returns ``(model, metrics)``; ``model`` is ``None`` with too little training data.
    ``metrics``: ``holdout_intervals``, ``mae_learned``, ``mae_like_day`` (over the hidden
    intervals like-day can fill; the learned MAE over the same ones is ``mae_learned_same``),
    ``like_day_intervals``, ``holdout_share``, ``seed``.
    """
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    rng = np.random.default_rng(seed)
    valid = ~np.isnan(values)
    metrics: dict[str, Any] = {"holdout_share": holdout, "seed": seed, "holdout_intervals": 0}
    if valid.sum() < min_samples:
        return None, metrics
    hide = None
    if holdout > 0:
        n = values.shape[0]
        rows = np.sort(rng.choice(n, min(n, MAX_EVAL_CHANNELS), replace=False))
        hide = np.zeros(values.shape, dtype=bool)
        hide[rows] = synthetic_gaps(valid[rows], rng, share=holdout, max_len=7 * slots_per_day)
    seen = values if hide is None else np.where(hide, np.nan, values)
    model = train(
        seen,
        slots_per_day=slots_per_day,
        day_types=day_types,
        seed=seed,
        rounds=rounds,
        min_samples=min_samples,
    )
    if model is None or hide is None or not hide.any():
        return model, metrics
    rows = np.flatnonzero(hide.any(axis=1))
    seen, hide, values = seen[rows], hide[rows], values[rows]
    truth = values[hide]
    pred = model.predict(seen, hide, slots_per_day=slots_per_day, day_types=day_types)[hide]
    like, filled = like_day_profile(
        seen, slots_per_day=slots_per_day, day_types=day_types, target=hide, min_days=min_like_days
    )
    both = filled[hide]
    metrics.update(
        holdout_intervals=int(hide.sum()),
        mae_learned=round(float(np.mean(np.abs(pred - truth))), 6),
        like_day_intervals=int(both.sum()),
    )
    if both.any():
        mae_like = float(np.mean(np.abs(like[hide][both] - truth[both])))
        mae_same = float(np.mean(np.abs(pred[both] - truth[both])))
        metrics.update(
            mae_like_day=round(mae_like, 6),
            mae_learned_same=round(mae_same, 6),
            gain_pct=round(100.0 * (1 - mae_same / mae_like), 2) if mae_like > 0 else None,
        )
    return model, metrics


def active_model(session: Session, scope: str, interval_s: int) -> VeeModel | None:
    """The active model of ``scope`` at ``interval_s`` (the newest version), or ``None``."""
    return session.scalar(
        select(VeeModel)
        .where(VeeModel.scope == scope, VeeModel.interval_s == interval_s, VeeModel.active.is_(True))
        .order_by(VeeModel.version.desc())
        .limit(1)
    )


def store_model(
    session: Session,
    scope: str,
    interval_s: int,
    model: LearnedModel,
    *,
    history_from: date | None,
    history_to: date | None,
    channels: int,
    metrics: dict[str, Any],
    actor: str = "vee",
) -> VeeModel:
    """Store ``model`` as the next version of ``scope`` and make it the only active one."""
    latest = session.scalar(
        select(func.max(VeeModel.version)).where(VeeModel.scope == scope, VeeModel.interval_s == interval_s)
    )
    session.execute(
        update(VeeModel)
        .where(VeeModel.scope == scope, VeeModel.interval_s == interval_s, VeeModel.active.is_(True))
        .values(active=False)
    )
    row = VeeModel(
        scope=scope,
        interval_s=interval_s,
        version=int(latest or 0) + 1,
        kind=MODEL_KIND,
        trained_at=utcnow(),
        history_from=history_from,
        history_to=history_to,
        channels=channels,
        samples=model.samples,
        params=model.to_npz(),
        metrics=metrics,
        active=True,
    )
    session.add(row)
    session.flush()
    session.add(
        AuditEntry(
            actor=actor,
            action="vee.model_trained",
            entity="vee_model",
            entity_id=f"{scope}@{interval_s}:{row.version}",
            before=None,
            after={"version": row.version, "samples": row.samples, "channels": channels, "metrics": metrics},
        )
    )
    return row


def load(row: VeeModel) -> LearnedModel | None:
    """The model of a stored row (``None`` if it was written in a format this code cannot use)."""
    try:
        return LearnedModel.from_npz(row.params)
    except (ValueError, KeyError, OSError):
        return None


def model_for_run(
    session: Session,
    scope: str,
    interval_s: int,
    series: FloatArray,
    *,
    slots_per_day: int,
    day_types: npt.NDArray[np.integer],
    history_from: date,
    history_to: date,
    max_age_days: float,
    min_samples: int = MIN_SAMPLES,
    now: datetime | None = None,
) -> tuple[LearnedModel | None, ModelUse | None]:
    """The model a VEE chunk estimates with: the active stored one of ``scope`` if it is younger
    than ``max_age_days``, otherwise one trained on ``series`` (the chunk's valid values) and
    stored as a new version. ``(None, None)`` when there is no usable model and too little data."""
    row = active_model(session, scope, interval_s)
    now = now or utcnow()
    if row is not None and now - row.trained_at <= timedelta(days=max_age_days):
        model = load(row)
        if model is not None:
            return model, ModelUse(scope, interval_s, row.version, trained=False)
    model, metrics = fit_and_evaluate(
        series, slots_per_day=slots_per_day, day_types=day_types, min_samples=min_samples, rounds=2
    )
    if model is None:
        if row is not None:  # too old, but better than nothing when the chunk cannot train
            old = load(row)
            if old is not None:
                return old, ModelUse(scope, interval_s, row.version, trained=False)
        return None, None
    channels = int((~np.isnan(series)).any(axis=1).sum())
    try:
        with session.begin_nested():
            stored = store_model(
                session,
                scope,
                interval_s,
                model,
                history_from=history_from,
                history_to=history_to,
                channels=channels,
                metrics={**metrics, "source": "vee run"},
            )
    except IntegrityError:
        # another run stored this version of the scope meanwhile: use that one
        other = active_model(session, scope, interval_s)
        loaded = load(other) if other is not None else None
        if other is None or loaded is None:
            raise
        return loaded, ModelUse(scope, interval_s, other.version, trained=False)
    return model, ModelUse(scope, interval_s, stored.version, trained=True)


def _class_channels(
    session: Session, interval_s: int, customer_classes: CustomerClasses | None
) -> dict[str, list[int]]:
    """Delta interval channels of ``interval_s`` by model scope."""
    ids = list(
        session.scalars(
            select(Channel.id)
            .join(ReadingType, ReadingType.id == Channel.reading_type_id)
            .where(ReadingType.interval_s == interval_s, ReadingType.accumulation == "delta")
            .order_by(Channel.id)
        )
    )
    out: dict[str, list[int]] = defaultdict(list)
    for cid, (_, cls) in channel_classes(session, ids, customer_classes).items():
        out[scope_of(cls)].append(cid)
    return out


def train_models(
    session: Session,
    *,
    start: date,
    end: date,
    classes: Sequence[str] | None = None,
    interval_s: int = 900,
    seed: int = 2026,
    holdout: float = HOLDOUT_SHARE,
    tz: ZoneInfo | str = "UTC",
    holiday_country: str | None = "IN",
    max_channels: int = MAX_TRAIN_CHANNELS,
    min_samples: int = MIN_SAMPLES,
    actor: str = "vee",
    customer_classes: CustomerClasses | None = None,
) -> list[dict[str, Any]]:
    """Train and store one model per customer class on the validated actual values of the UTC
    days ``start..end`` (intervals missing, rejected or estimated are not used).

    A channel's class comes from ``customer_classes`` (the CIS's answer, see
    :func:`.ruleset.store.channel_classes`; without it every channel is of class ``none``).
    ``classes`` limits the classes (``none`` = channels without a customer class). A class with
    too little data gets no new model; its entry says so (``"stored": false``). Returns one dict
    per class: scope, version, channels, samples and the held-out metrics.
    """
    if end < start:
        raise InvalidInput("the training window ends before it starts", code="vee.train_window_invalid")
    spd = slots_per_day(interval_s)
    days = [start + timedelta(days=k) for k in range((end - start).days + 1)]
    types = np.asarray(day_types_for(days, tz, holiday_country=holiday_country), dtype=np.int64)
    by_scope = _class_channels(session, interval_s, customer_classes)
    wanted = None if not classes else {scope_of(None if c == "none" else c) for c in classes}
    store = MeasurementStore(session)
    out: list[dict[str, Any]] = []
    for scope in sorted(by_scope if wanted is None else wanted):
        ids = by_scope.get(scope, [])
        if len(ids) > max_channels:
            rng = np.random.default_rng(seed)
            ids = sorted(rng.choice(ids, max_channels, replace=False).tolist())
        entry: dict[str, Any] = {"scope": scope, "interval_s": interval_s, "stored": False, "channels": 0}
        if ids:
            parts = []
            for i in range(0, len(ids), _IN):
                w = store.read_window(
                    ids[i : i + _IN],
                    day_start(start),
                    day_start(end + timedelta(days=1)),
                    interval_s,
                    include_raw=False,
                )
                parts.append(np.where((w.flags & _NOT_ACTUAL) == 0, w.values, np.nan))
            values = np.concatenate(parts)
            values = values[(~np.isnan(values)).any(axis=1)]
            entry["channels"] = int(values.shape[0])
            model, metrics = fit_and_evaluate(
                values,
                slots_per_day=spd,
                day_types=types,
                seed=seed,
                holdout=holdout,
                min_samples=min_samples,
            )
            entry["metrics"] = metrics
            if model is not None:
                row = store_model(
                    session,
                    scope,
                    interval_s,
                    model,
                    history_from=start,
                    history_to=end,
                    channels=entry["channels"],
                    metrics={**metrics, "source": "training"},
                    actor=actor,
                )
                entry.update(stored=True, version=row.version, samples=row.samples)
        out.append(entry)
    return out


def list_models(session: Session, *, active_only: bool = False) -> list[dict[str, Any]]:
    """Stored models, newest first within each scope."""
    stmt = select(VeeModel).order_by(VeeModel.scope, VeeModel.interval_s, VeeModel.version.desc())
    if active_only:
        stmt = stmt.where(VeeModel.active.is_(True))
    return [
        {
            "id": m.id,
            "scope": m.scope,
            "interval_s": m.interval_s,
            "version": m.version,
            "kind": m.kind,
            "active": m.active,
            "trained_at": m.trained_at.isoformat(),
            "history_from": m.history_from.isoformat() if m.history_from else None,
            "history_to": m.history_to.isoformat() if m.history_to else None,
            "channels": m.channels,
            "samples": m.samples,
            "metrics": m.metrics,
        }
        for m in session.scalars(stmt)
    ]
