"""Which channels bill a service point: the one query of the meters installed there and their
billed channels.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    or_,
    select,
)
from sqlalchemy.orm import Session

from meter2cash.db_query import id_filters
from meter2cash.mdm.models import Channel, Installation, Meter, ReadingType


@dataclass(slots=True)
class MeterChannels:
    """The interval channels billed at a service point: kWh import (required), kVAh import and
    kWh export (optional, only at the kWh channel's interval length)."""

    kwh: int
    interval_s: int
    kvah: int | None = None
    export: int | None = None

    @property
    def ids(self) -> list[int]:
        return [c for c in (self.kwh, self.kvah, self.export) if c]


@dataclass(slots=True)
class MeterUse:
    """One installation of a meter at a service point: the meter's serial, its billed channels
    and the installation window ``[installed_at, removed_at)`` (UTC; ``removed_at`` ``None``
    while installed). A bill reads each meter's intervals inside its own window only."""

    serial: str
    channels: MeterChannels
    installed_at: datetime
    removed_at: datetime | None = None

    def covers(self, start: datetime, end: datetime) -> bool:
        """Installed over the whole of ``[start, end)``."""
        return self.installed_at <= start and (self.removed_at is None or self.removed_at >= end)


def service_point_meters(
    session: Session, sp_ids: Sequence[int], start: datetime, end: datetime
) -> dict[int, list[MeterUse]]:
    """Service point → the meters installed during ``[start, end)`` with their billed channels
    (the shortest kWh import interval of each meter), in installation order. Installations
    without a kWh import interval channel are left out."""
    inst, meter, chan, rt = (m.__table__.c for m in (Installation, Meter, Channel, ReadingType))
    stmt = (
        select(
            inst.id,
            inst.service_point_id,
            inst.installed_at,
            inst.removed_at,
            meter.serial,
            chan.id,
            rt.interval_s,
            rt.unit,
            rt.direction,
        )
        .join_from(Installation.__table__, Meter.__table__, meter.id == inst.meter_id)
        .join(Channel.__table__, chan.meter_id == inst.meter_id)
        .join(ReadingType.__table__, chan.reading_type_id == rt.id)
        .where(
            inst.installed_at < end,
            or_(inst.removed_at.is_(None), inst.removed_at > start),
            rt.unit.in_(("kWh", "kVAh")),
            rt.interval_s.is_not(None),
            chan.active.is_(True),
        )
    )
    # installation id → (service point, installed, removed, serial, [(interval, channel, unit, direction)])
    found: dict[int, tuple[int, datetime, datetime | None, str, list[tuple[int, int, str, str]]]] = {}
    for where in id_filters(session, inst.service_point_id, sp_ids):
        for inst_id, sp, installed, removed, serial, cid, interval, unit, direction in session.execute(
            stmt.where(where)
        ).all():
            if interval:
                rec = found.get(inst_id)
                if rec is None:
                    found[inst_id] = rec = (sp, installed, removed, serial, [])
                rec[4].append((interval, cid, unit, direction))
    out: dict[int, list[tuple[datetime, int, MeterUse]]] = defaultdict(list)
    for inst_id, (sp, installed, removed, serial, chans) in found.items():
        if len(chans) == 1:  # the usual meter: one kWh import channel
            interval, cid, unit, d = chans[0]
            if unit != "kWh" or d != "import":
                continue
            mc = MeterChannels(cid, interval)
        else:
            kwh = [(iv, cid) for iv, cid, unit, d in chans if unit == "kWh" and d == "import"]
            if not kwh:
                continue
            interval, cid = min(kwh)
            mc = MeterChannels(cid, interval)
            for iv, other, unit, d in sorted(chans, key=lambda c: c[1]):
                if iv != interval:
                    continue
                if unit == "kVAh" and d == "import" and mc.kvah is None:
                    mc.kvah = other
                elif unit == "kWh" and d == "export" and mc.export is None:
                    mc.export = other
        out[sp].append((installed, inst_id, MeterUse(serial, mc, installed, removed)))
    return {
        sp: [uses[0][2]] if len(uses) == 1 else [u for _, _, u in sorted(uses, key=lambda x: x[:2])]
        for sp, uses in out.items()
    }


def service_point_channels(
    session: Session, sp_ids: Sequence[int], start: datetime, end: datetime
) -> dict[int, MeterChannels]:
    """Service point → the billed channels of the meter installed last during ``[start, end)``."""
    return {sp: uses[-1].channels for sp, uses in service_point_meters(session, sp_ids, start, end).items()}
