"""Bill determinants: energy by TOU period, maximum demand and data quality, for many meters.

:func:`bill_determinants` is a pure kernel over ``(meters, intervals)`` arrays;
:func:`service_point_determinants` reads a service point's kWh channel from the measurement store
and calls it (takes a Session, never commits).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.orm import Session

from meter2cash.core.errors import NotFound
from meter2cash.core.quality import Quality
from meter2cash.core.timeutil import local_frame
from meter2cash.mdm.models import Channel, Installation, ReadingType
from meter2cash.mdm.store import MeasurementStore
from meter2cash.mdm.tou import tou_period_index

if TYPE_CHECKING:
    from meter2cash.cis.tariffs.model import TariffVersionDef

F64 = npt.NDArray[np.float64]


@dataclass(slots=True)
class Determinants:
    """Bill determinants of ``n`` meters over one period with ``P`` TOU periods.

    kwh_total (n,) [kWh]; kwh_by_period (n, P) [kWh]; max_demand_kw (n,) [kW];
    max_demand_kw_by_period (n, P) [kW]; estimated_share and missing_share (n,) [0..1] of the
    period's intervals.
    """

    kwh_total: F64
    kwh_by_period: F64
    max_demand_kw: F64
    max_demand_kw_by_period: F64
    estimated_share: F64
    missing_share: F64

    def as_dict(self, i: int, period_names: list[str]) -> dict[str, Any]:
        """The determinants of meter ``i`` as a JSON-serialisable dict (kWh and kW to 3 decimals)."""
        return {
            "kwh_total": round(float(self.kwh_total[i]), 3),
            "kwh_by_period": {
                n: round(float(v), 3) for n, v in zip(period_names, self.kwh_by_period[i], strict=True)
            },
            "max_demand_kw": round(float(self.max_demand_kw[i]), 3),
            "max_demand_kw_by_period": {
                n: round(float(v), 3)
                for n, v in zip(period_names, self.max_demand_kw_by_period[i], strict=True)
            },
            "estimated_share": round(float(self.estimated_share[i]), 4),
            "missing_share": round(float(self.missing_share[i]), 4),
        }


def bill_determinants(
    values: F64,
    flags: npt.NDArray[np.uint16],
    period_index: npt.NDArray[np.int8],
    n_periods: int,
    interval_s: int,
    demand_interval_s: int | None = None,
) -> Determinants:
    """Compute bill determinants from interval energy.

    Parameters
    ----------
    values : (n, T) float64
        Energy per interval [kWh]; NaN where missing (counted as 0 kWh, reported in missing_share).
    flags : (n, T) uint16
        Quality flags (:class:`~meter2cash.core.quality.Quality`).
    period_index : (T,) int8
        TOU period of every interval (see :func:`meter2cash.mdm.tou.tou_period_index`).
    n_periods : int
        Number of TOU periods ``P``.
    interval_s : int
        Interval length of ``values`` [s].
    demand_interval_s : int, optional
        Demand integration period [s] (a multiple of ``interval_s``; default ``interval_s``).
        Demand of a block = kWh in the block × 3600 / demand_interval_s; a block belongs to the
        TOU period of its first interval.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError("values must be 2-D (meters, intervals)")
    n, t = values.shape
    flags = np.asarray(flags)
    pidx = np.asarray(period_index, dtype=np.int8)
    if flags.shape != values.shape or pidx.shape != (t,):
        raise ValueError(f"shapes differ: values {values.shape}, flags {flags.shape}, periods {pidx.shape}")
    nan = np.isnan(values)
    filled = np.where(nan, 0.0, values)
    onehot = np.zeros((t, n_periods))
    inside = np.flatnonzero((pidx >= 0) & (pidx < n_periods))
    onehot[inside, pidx[inside]] = 1.0
    kwh_by_period = filled @ onehot  # one pass over the intervals for every period at once
    step = (demand_interval_s or interval_s) // interval_s
    if step < 1 or (demand_interval_s or interval_s) % interval_s:
        raise ValueError(f"demand interval {demand_interval_s} s is not a multiple of {interval_s} s")
    blocks = -(-t // step) if t else 0
    if t % step:  # a last, shorter block: pad with zeros
        filled = np.concatenate((filled, np.zeros((n, blocks * step - t))), axis=1)
    block_kwh = filled[:, 0::step].copy() if step > 1 else filled
    for k in range(1, step):  # strided adds: NumPy reduces a short last axis slowly
        block_kwh += filled[:, k::step]
    if step > 1:  # block_kwh is a new array: scale it in place
        block_kwh *= 3600.0 / (interval_s * step)
        demand = block_kwh
    else:
        demand = filled * (3600.0 / interval_s)
    filled = filled[:, :t]
    block_period = pidx[::step] if t else pidx
    md_by_period = np.zeros((n, n_periods))
    max_demand = np.zeros(n)
    if blocks:
        # maxima of the runs of consecutive blocks in one period (one pass, no copy), then of
        # each period's runs; the largest run maximum is the maximum demand
        starts = np.flatnonzero(np.r_[True, block_period[1:] != block_period[:-1]])
        run_max = np.maximum.reduceat(demand, starts, axis=1)
        run_period = block_period[starts]
        for p in range(n_periods):
            cols = run_period == p
            if cols.any():
                md_by_period[:, p] = run_max[:, cols].max(axis=1)
        max_demand = run_max.max(axis=1)
    denom = max(t, 1)
    missing = nan | ((flags & np.uint16(Quality.MISSING)) != 0)  # a uint16 mask, not IntFlag
    return Determinants(
        kwh_total=filled.sum(axis=1),
        kwh_by_period=kwh_by_period,
        max_demand_kw=max_demand,
        max_demand_kw_by_period=md_by_period,
        estimated_share=np.count_nonzero(flags & np.uint16(Quality.ESTIMATED), axis=1) / denom,
        missing_share=np.count_nonzero(missing, axis=1) / denom,
    )


def daily_kwh(values: F64, epoch_s: npt.NDArray[np.int64], tz: ZoneInfo | str) -> tuple[list[str], F64]:
    """Energy per local calendar day: (ISO dates, (n, days) [kWh]); NaN counts as 0."""
    frame = local_frame(epoch_s, tz)
    codes, uniques = np.unique(frame["date"].to_numpy("datetime64[D]"), return_inverse=True)
    onehot = np.zeros((len(epoch_s), len(codes)))
    onehot[np.arange(len(epoch_s)), uniques] = 1.0
    filled = np.where(np.isnan(values), 0.0, values)
    return [str(d) for d in codes], filled @ onehot


def kwh_import_channel(
    session: Session, service_point_id: int, start: datetime, end: datetime
) -> tuple[int, int]:
    """``(channel_id, interval_s)`` of the kWh import interval channel of the meter installed at a
    service point during ``[start, end)`` (the latest installation); ``billing.no_meter`` if none."""
    row = session.execute(
        select(Channel.id, ReadingType.interval_s)
        .join(ReadingType, Channel.reading_type_id == ReadingType.id)
        .join(Installation, Installation.meter_id == Channel.meter_id)
        .where(
            Installation.service_point_id == service_point_id,
            Installation.installed_at < end,
            (Installation.removed_at.is_(None)) | (Installation.removed_at > start),
            ReadingType.unit == "kWh",
            ReadingType.direction == "import",
            ReadingType.interval_s.is_not(None),
            Channel.active.is_(True),
        )
        .order_by(Installation.installed_at.desc(), ReadingType.interval_s)
        .limit(1)
    ).first()
    if row is None or row[1] is None:
        raise NotFound(
            f"no kWh interval channel at service point {service_point_id}", code="billing.no_meter"
        )
    return int(row[0]), int(row[1])


def companion_channels(session: Session, kwh_channel_id: int, interval_s: int) -> dict[str, int]:
    """The kVAh import (``kvah``) and kWh export (``export``) interval channels of the same meter
    at the same interval length, where they exist."""
    meter_id = select(Channel.meter_id).where(Channel.id == kwh_channel_id).scalar_subquery()
    rows = session.execute(
        select(Channel.id, ReadingType.unit, ReadingType.direction)
        .join(ReadingType, Channel.reading_type_id == ReadingType.id)
        .where(Channel.meter_id == meter_id, ReadingType.interval_s == interval_s, Channel.active.is_(True))
        .order_by(Channel.id)
    ).all()
    out: dict[str, int] = {}
    for cid, unit, direction in rows:
        if unit == "kVAh" and direction == "import":
            out.setdefault("kvah", int(cid))
        elif unit == "kWh" and direction == "export":
            out.setdefault("export", int(cid))
    return out


def service_point_determinants(
    session: Session,
    service_point_id: int,
    start: datetime,
    end: datetime,
    version: TariffVersionDef,
    tz: ZoneInfo | str,
) -> dict[str, Any]:
    """Determinants of one service point over ``[start, end)`` for a tariff version, as a dict;
    with ``kvah_total`` and ``kwh_export`` [kWh] when the meter has those channels."""
    channel_id, interval_s = kwh_import_channel(session, service_point_id, start, end)
    store = MeasurementStore(session)
    window = store.read_window([channel_id], start, end, interval_s, include_raw=False)
    pidx = tou_period_index(window.starts(), version.tou, tz)
    names = version.period_names
    demand_s = version.demand.interval_s if version.demand else interval_s
    det = bill_determinants(
        window.values, window.flags, pidx, len(names), interval_s, max(demand_s, interval_s)
    )
    out = {"channel_id": channel_id, "interval_s": interval_s, **det.as_dict(0, names)}
    others = companion_channels(session, channel_id, interval_s)
    if others:
        w = store.read_window(list(others.values()), start, end, interval_s, include_raw=False)
        for name, cid in others.items():
            key = "kvah_total" if name == "kvah" else "kwh_export"
            out[key] = round(float(np.nansum(w.values[w.row(cid)])), 3)
    return out
