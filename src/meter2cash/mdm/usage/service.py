"""Determinants of one service point read from the measurement store."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from meter2cash.core.errors import NotFound
from meter2cash.mdm.models import Channel, Installation, ReadingType
from meter2cash.mdm.store import MeasurementStore
from meter2cash.mdm.tou import tou_period_index

if TYPE_CHECKING:
    from meter2cash.cis.tariffs.definitions import TariffVersionDef
# The kernel compiles (or loads from Numba's cache) on the first call of window_determinants:
# importing this module must not load Numba. It sums in NumPy's pairwise order through the VEE
# kernels' ``pairwise_sum``, bound as a global of this module when the kernel is first built.
if TYPE_CHECKING:
    pass
from meter2cash.mdm.determinants import bill_determinants


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
