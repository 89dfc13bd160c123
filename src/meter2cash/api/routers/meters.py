"""``/meters``: devices, their channels, installations, lifecycle and interval data."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Query
from sqlalchemy import select

from meter2cash.api.deps import SessionDep
from meter2cash.api.errors import get_by_key, not_found, responses
from meter2cash.api.limits import LimitedRoute
from meter2cash.api.routers.common import DcuFilter, Limit, MeterSerial, Offset, StatusFilter, length, page
from meter2cash.api.schemas import (
    ChannelOut,
    InstallationOut,
    MeterDetail,
    MeterOut,
    Page,
    Readings,
    StatusChangeOut,
)
from meter2cash.cis.parties.models import ServicePoint
from meter2cash.core.errors import InvalidInput
from meter2cash.core.quality import describe
from meter2cash.core.timeutil import check_date
from meter2cash.mdm.models import DCU, Channel, Installation, Meter, MeterStatusChange, ReadingType
from meter2cash.mdm.store import MeasurementStore

router = APIRouter(tags=["meters"], route_class=LimitedRoute)

MAX_WINDOW = timedelta(days=366)


def _meter_out(m: Meter, dcu: str | None) -> MeterOut:
    return MeterOut(
        serial=m.serial, manufacturer=m.manufacturer, model=m.model, phase=m.phase, status=m.status, dcu=dcu
    )


def _meter(session: SessionDep, serial: str) -> Meter:
    meter: Meter = get_by_key(session, Meter.serial, serial, "meter")
    return meter


@router.get("/meters", response_model=Page[MeterOut])
def list_meters(
    session: SessionDep,
    limit: Limit = 50,
    offset: Offset = 0,
    status: StatusFilter = None,
    dcu: DcuFilter = None,
) -> Page[MeterOut]:
    """Meters by serial, optionally filtered by lifecycle status or DCU."""
    stmt = select(Meter, DCU.code).outerjoin(DCU, DCU.id == Meter.dcu_id).order_by(Meter.serial)
    if status:
        stmt = stmt.where(Meter.status == status)
    if dcu:
        stmt = stmt.where(DCU.code == dcu)
    rows, total = page(session, stmt, limit, offset)
    return Page[MeterOut](items=[_meter_out(m, d) for m, d in rows], total=total, limit=limit, offset=offset)


@router.get("/meters/{serial}", response_model=MeterDetail, responses=responses(404))
def get_meter(serial: MeterSerial, session: SessionDep) -> MeterDetail:
    """One meter: channels, installation history and status history (error ``meter.not_found``)."""
    m = _meter(session, serial)
    dcu = session.scalar(select(DCU.code).where(DCU.id == m.dcu_id)) if m.dcu_id else None
    channels = session.execute(
        select(Channel, ReadingType)
        .join(ReadingType, ReadingType.id == Channel.reading_type_id)
        .where(Channel.meter_id == m.id)
        .order_by(Channel.id)
    )
    installs = session.execute(
        select(Installation, ServicePoint.code)
        .join(ServicePoint, ServicePoint.id == Installation.service_point_id)
        .where(Installation.meter_id == m.id)
        .order_by(Installation.installed_at)
    )
    history = session.scalars(
        select(MeterStatusChange)
        .where(MeterStatusChange.meter_id == m.id)
        .order_by(MeterStatusChange.at, MeterStatusChange.id)
    )
    return MeterDetail(
        **_meter_out(m, dcu).model_dump(),
        channels=[
            ChannelOut(
                reading_type=rt.code,
                name=rt.name,
                unit=rt.unit,
                obis=rt.obis,
                interval_s=rt.interval_s,
                multiplier=ch.multiplier,
                active=ch.active,
            )
            for ch, rt in channels
        ],
        installations=[
            InstallationOut(
                service_point=sp,
                installed_at=i.installed_at,
                removed_at=i.removed_at,
                install_read_kwh=i.install_read_kwh,
                removal_read_kwh=i.removal_read_kwh,
            )
            for i, sp in installs
        ],
        status_history=[
            StatusChangeOut(from_status=h.from_status, to_status=h.to_status, at=h.at, reason=h.reason)
            for h in history
        ],
    )


def _aware(name: str, ts: datetime) -> datetime:
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise InvalidInput(
            f"{name} {ts.isoformat()} has no time zone; give an offset such as +05:30 or Z",
            code="readings.naive_timestamp",
            parameter=name,
        )
    return ts


@router.get("/meters/{serial}/readings", response_model=Readings, responses=responses(404))
def meter_readings(
    serial: MeterSerial,
    session: SessionDep,
    channel: Annotated[
        str,
        Query(
            min_length=1,
            max_length=length(ReadingType.code),
            description="reading-type code, e.g. kwh_import_15m",
        ),
    ],
    start: Annotated[datetime, Query(description="window start, ISO 8601 with offset")],
    end: Annotated[datetime, Query(description="window end (exclusive), ISO 8601 with offset")],
) -> Readings:
    """Interval values of one channel over ``[start, end)`` with their quality flags.

    Errors: ``meter.not_found``, ``channel.not_found``, ``readings.naive_timestamp``,
    ``readings.invalid_window``, ``readings.window_too_large`` (over 366 days),
    ``readings.not_interval_channel``, ``readings.misaligned_window``.
    """
    start, end = _aware("start", start), _aware("end", end)
    for name, ts in (("start", start), ("end", end)):
        check_date(ts.date(), name, code="readings.invalid_window")
    if end <= start:
        raise InvalidInput("end must be after start", code="readings.invalid_window")
    if end - start > MAX_WINDOW:
        raise InvalidInput(
            f"a window of {(end - start).days} days is too large; ask for at most 366 days",
            code="readings.window_too_large",
            max_days=366,
        )
    m = _meter(session, serial)
    found = session.execute(
        select(Channel.id, ReadingType)
        .join(ReadingType, ReadingType.id == Channel.reading_type_id)
        .where(Channel.meter_id == m.id, ReadingType.code == channel)
    ).first()
    if found is None:
        raise not_found("channel", f"{serial}/{channel}")
    channel_id, rt = found
    if not rt.interval_s:
        raise InvalidInput(
            f"{channel} is a register channel, not interval data", code="readings.not_interval_channel"
        )
    try:
        window = MeasurementStore(session).read_window([channel_id], start, end, rt.interval_s)
    except ValueError as exc:
        raise InvalidInput(str(exc), code="readings.misaligned_window", interval_s=rt.interval_s) from exc
    starts = np.datetime_as_string(window.starts().astype("datetime64[s]"), unit="s")
    values: list[str | None] = [
        None if np.isnan(v) else np.format_float_positional(v, trim="-") for v in window.values[0]
    ]
    flags: list[int] = window.flags[0].astype(np.int64).tolist()
    names = {f: describe(f) for f in set(flags)}
    return Readings(
        meter=serial,
        channel=channel,
        unit=rt.unit,
        interval_s=rt.interval_s,
        start=start,
        end=end,
        starts=[f"{s}Z" for s in starts],
        values=values,
        flags=flags,
        quality=[names[f] for f in flags],
    )
