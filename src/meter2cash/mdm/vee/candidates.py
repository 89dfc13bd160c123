"""Which channel-days a VEE run validates: the channels of the meters asked for, pending received
days and days nothing arrived for."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from meter2cash.core.errors import InvalidInput
from meter2cash.core.timeutil import day_start, utcnow
from meter2cash.mdm.models import Channel, ChannelDay, Installation, Meter, ReadingType

_IN_CHUNK = 2000


@dataclass(frozen=True, slots=True)
class Candidate:
    channel_id: int
    day: date
    interval_s: int
    batch_id: int | None
    is_import: bool


def meter_channels(session: Session, serials: Sequence[str]) -> list[int]:
    """The channel ids of the meters with these serials (``vee.unknown_meter`` names the serials no
    meter has)."""
    rows = session.execute(select(Meter.serial, Channel.id).join(Channel).where(Meter.serial.in_(serials)))
    found: dict[str, list[int]] = {}
    for serial, cid in rows:
        found.setdefault(serial, []).append(cid)
    unknown = sorted(set(serials) - set(found))
    if unknown:
        raise InvalidInput(
            f"no meter with serial {', '.join(unknown)}", code="vee.unknown_meter", meters=unknown
        )
    return [cid for cids in found.values() for cid in cids]


def candidates(
    session: Session, first: date, last: date, channel_ids: Sequence[int] | None, only_pending: bool
) -> list[Candidate]:
    base = (
        select(
            ChannelDay.channel_id,
            ChannelDay.day,
            ChannelDay.interval_s,
            ChannelDay.batch_id,
            ReadingType.direction,
            ReadingType.accumulation,
        )
        .join(Channel, Channel.id == ChannelDay.channel_id)
        .join(ReadingType, ReadingType.id == Channel.reading_type_id)
        .where(ChannelDay.day >= first, ChannelDay.day <= last, ReadingType.interval_s.is_not(None))
    )
    if only_pending:
        base = base.where(ChannelDay.vee_status == "raw")
    if channel_ids is None:
        stmts = [base]
    else:
        ids = sorted(set(channel_ids))
        stmts = [
            base.where(ChannelDay.channel_id.in_(ids[i : i + _IN_CHUNK]))
            for i in range(0, len(ids), _IN_CHUNK)
        ]
    return [
        Candidate(r[0], r[1], r[2], r[3], r[4] == "import" and r[5] == "delta")
        for stmt in stmts
        for r in session.execute(stmt)
    ]


def absent_days(
    session: Session,
    first: date,
    last: date,
    channel_ids: Sequence[int] | None,
    present: set[tuple[int, date]],
) -> list[Candidate]:
    """Channel-days with nothing received at all, where something was expected.

    Expected means: an active interval channel of a meter installed for the whole UTC day, and a
    day that is over. Such days are validated like any other (the missing-interval rule reports
    them, estimation fills them); data that arrives later replaces the estimate.
    """
    today = utcnow().date()
    last = min(last, today - timedelta(days=1))
    if last < first:
        return []
    stmt = (
        select(
            Channel.id,
            ReadingType.interval_s,
            ReadingType.direction,
            ReadingType.accumulation,
            Installation.installed_at,
            Installation.removed_at,
        )
        .join(ReadingType, ReadingType.id == Channel.reading_type_id)
        .join(Installation, Installation.meter_id == Channel.meter_id)
        .where(
            Channel.active.is_(True),
            ReadingType.interval_s.is_not(None),
            Installation.installed_at < day_start(last + timedelta(days=1)),
            or_(Installation.removed_at.is_(None), Installation.removed_at > day_start(first)),
        )
    )
    wanted = None if channel_ids is None else set(channel_ids)
    out: list[Candidate] = []
    for cid, interval_s, direction, accumulation, installed_at, removed_at in session.execute(stmt):
        if interval_s is None or (wanted is not None and cid not in wanted):
            continue
        starts_midday = installed_at != day_start(installed_at.date())
        d0 = max(first, installed_at.date() + timedelta(days=1 if starts_midday else 0))
        d1 = last if removed_at is None else min(last, removed_at.date() - timedelta(days=1))
        is_import = direction == "import" and accumulation == "delta"
        out.extend(
            Candidate(cid, d0 + timedelta(days=k), interval_s, None, is_import)
            for k in range((d1 - d0).days + 1)
            if (cid, d0 + timedelta(days=k)) not in present
        )
    return out


def stored_days(session: Session, first: date, last: date) -> set[tuple[int, date]]:
    rows = session.execute(
        select(ChannelDay.channel_id, ChannelDay.day).where(ChannelDay.day >= first, ChannelDay.day <= last)
    )
    return {(r[0], r[1]) for r in rows}
