"""What the VEE rules need besides the values, read from the database for a chunk of channels.

:func:`load_context` gathers, for the channels of one chunk and the days being validated: outage
windows (the power-failure episodes of event routing and the power-failure events not routed yet;
none when the rule set is not outage-aware), installation windows, the earliest receipt of each day
(duplicate IMD), the last validated version of each day (replacement rules, kept edits), the
register advance per day (sum check) and the channel metadata. Register reads are checked here
too (:func:`register_findings`), since they live on register channels of the same meters.
Reads only; the caller owns the transaction.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from meter2cash.core.timeutil import day_start, epoch_seconds
from meter2cash.mdm.events.queries import outage_windows
from meter2cash.mdm.models import (
    Channel,
    ChannelDay,
    ChannelDayHistory,
    Installation,
    MeterEvent,
    ReadingType,
    RegisterRead,
)
from meter2cash.mdm.reading_types import tou_tier
from meter2cash.mdm.store import decode_flags, decode_values
from meter2cash.mdm.vee.codes import REGISTER_DECREASE, TOU_SUM_CHECK
from meter2cash.mdm.vee.rules.registers import (
    POWER_FAIL_END,
    POWER_FAIL_START,
    outage_rows,
    register_advance,
    tou_sum_check,
    window_mask,
)
from meter2cash.mdm.vee.ruleset.schema import RuleSet
from meter2cash.mdm.vee.types import FloatArray

_IN = 1000
#: Power-failure events are looked up this far before the window, to find an outage's start.
OUTAGE_LOOKBACK = timedelta(days=7)


@dataclass(slots=True)
class ChunkContext:
    """Context arrays of a chunk over the validated days (shape of the raw window)."""

    outage: np.ndarray
    active: np.ndarray
    earlier_raw: FloatArray
    prev_flags: np.ndarray
    prev_values: FloatArray
    day_advance: FloatArray
    metadata: tuple[list[int], list[int | None], list[str], list[float]]
    #: Findings on register channels: ready ``vee_finding`` rows without ``run_id``.
    register_rows: list[dict[str, Any]]


def _in(ids: list[int]) -> list[list[int]]:
    return [ids[i : i + _IN] for i in range(0, len(ids), _IN)]


def load_context(
    session: Session, ids: list[int], first: date, last: date, interval_s: int, rs: RuleSet
) -> ChunkContext:
    """Context of channels ``ids`` (interval channels) for the UTC days ``first..last``."""
    spd = 86_400 // interval_s
    n_days = (last - first).days + 1
    n = n_days * spd
    t0 = epoch_seconds(day_start(first))
    t1 = t0 + n * interval_s
    row_of = {cid: r for r, cid in enumerate(ids)}
    meta: dict[int, tuple[int, int | None, str, float, bool, str]] = {}
    for part in _in(ids):
        stmt = (
            select(Channel.id, Channel.meter_id, ReadingType.interval_s, ReadingType.unit, Channel.multiplier)
            .add_columns(Channel.active, ReadingType.direction)
            .join(ReadingType, ReadingType.id == Channel.reading_type_id)
            .where(Channel.id.in_(part))
        )
        for cid, mid, rt_int, unit, mult, active, direction in session.execute(stmt):
            meta[cid] = (mid, rt_int, unit, float(mult), bool(active), direction)
    meters = sorted({m[0] for m in meta.values()})

    events: dict[int, list[tuple[int, str]]] = defaultdict(list)
    installs: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for part in _in(meters):
        if rs.outage_aware:
            ev = select(MeterEvent.meter_id, MeterEvent.occurred_at, MeterEvent.code).where(
                MeterEvent.meter_id.in_(part),
                MeterEvent.code.in_((POWER_FAIL_START, POWER_FAIL_END)),
                MeterEvent.occurred_at >= day_start(first) - OUTAGE_LOOKBACK,
                MeterEvent.occurred_at < day_start(last + timedelta(days=1)),
            )
            for mid, at, code in session.execute(ev):
                events[mid].append((epoch_seconds(at), code))
        inst = select(Installation.meter_id, Installation.installed_at, Installation.removed_at).where(
            Installation.meter_id.in_(part)
        )
        for mid, at, removed in session.execute(inst):
            installs[mid].append((epoch_seconds(at), t1 if removed is None else epoch_seconds(removed)))
    meter_rows = [meta[cid][0] for cid in ids]
    outage = _outages(session, meter_rows, events, t0=t0, n=n, interval_s=interval_s, on=rs.outage_aware)
    active = np.ones((len(ids), n), dtype=bool)
    for r, cid in enumerate(ids):
        mid = meta[cid][0]
        if not meta[cid][4]:
            active[r] = False
        elif installs.get(mid):  # a meter without any installation record is not judged
            s, e = zip(*installs[mid], strict=True)
            active[r] = window_mask(
                np.array(s, dtype=np.int64), np.array(e, dtype=np.int64), t0=t0, n=n, interval_s=interval_s
            )

    earlier = np.full((len(ids), n), np.nan)
    prev_values = np.full((len(ids), n), np.nan)
    prev_flags = np.zeros((len(ids), n), dtype=np.uint16)
    seen_first: dict[tuple[int, date], int] = {}
    seen_valid: dict[tuple[int, date], int] = {}
    for part in _in(ids):
        hs = select(
            ChannelDayHistory.channel_id,
            ChannelDayHistory.day,
            ChannelDayHistory.version,
            ChannelDayHistory.raw_values,
            ChannelDayHistory.values,
            ChannelDayHistory.flags,
            ChannelDayHistory.vee_status,
        ).where(
            ChannelDayHistory.channel_id.in_(part),
            ChannelDayHistory.day >= first,
            ChannelDayHistory.day <= last,
            ChannelDayHistory.interval_s == interval_s,
        )
        cur = select(
            ChannelDay.channel_id,
            ChannelDay.day,
            ChannelDay.version,
            ChannelDay.raw_values,
            ChannelDay.values,
            ChannelDay.flags,
            ChannelDay.vee_status,
        ).where(
            ChannelDay.channel_id.in_(part),
            ChannelDay.day >= first,
            ChannelDay.day <= last,
            ChannelDay.interval_s == interval_s,
            ChannelDay.vee_status == "validated",
        )
        for cid, day, version, raw_b, val_b, flags_b, status in [*session.execute(hs), *session.execute(cur)]:
            key = (cid, day)
            r, c = row_of[cid], (day - first).days * spd
            if version < seen_first.get(key, 1 << 30):
                seen_first[key] = version
                earlier[r, c : c + spd] = decode_values(raw_b)
            if status == "validated" and version > seen_valid.get(key, 0):
                seen_valid[key] = version
                prev_values[r, c : c + spd] = decode_values(val_b)
                prev_flags[r, c : c + spd] = decode_flags(flags_b)

    advance = np.full((len(ids), n_days), np.nan)
    register_rows = _registers(session, ids, meta, first, last, rs, advance)
    metadata = (
        [interval_s] * len(ids),
        [meta[cid][1] for cid in ids],
        [meta[cid][2] for cid in ids],
        [meta[cid][3] for cid in ids],
    )
    return ChunkContext(outage, active, earlier, prev_flags, prev_values, advance, metadata, register_rows)


def _outages(
    session: Session,
    meter_rows: list[int],
    events: dict[int, list[tuple[int, str]]],
    *,
    t0: int,
    n: int,
    interval_s: int,
    on: bool,
) -> np.ndarray:
    """The outage mask ``(rows, n)`` of the window from ``t0`` [epoch s]: the power-failure
    episodes event routing recorded for the rows' meters (one query for the chunk), together with
    the pairs of events ``101``/``102`` given in ``events`` (those routing has not reached yet).
    All false when the rule set is not outage-aware."""
    mask = np.zeros((len(meter_rows), n), dtype=bool)
    if not on or not meter_rows:
        return mask
    since = t0 - int(OUTAGE_LOOKBACK.total_seconds())
    mask |= outage_rows(events, meter_rows, t0=t0, n=n, interval_s=interval_s, since=since)
    start = datetime.fromtimestamp(t0, UTC)
    end = start + timedelta(seconds=n * interval_s)
    routed = outage_windows(session, sorted(set(meter_rows)), start, end)
    per_meter = {mid: routed.mask(mid, t0, n, interval_s) for mid in routed.starts}
    for r, mid in enumerate(meter_rows):
        if mid in per_meter:
            mask[r] |= per_meter[mid]
    return mask


def _registers(
    session: Session,
    ids: list[int],
    meta: dict[int, tuple[int, int | None, str, float, bool, str]],
    first: date,
    last: date,
    rs: RuleSet,
    advance: FloatArray,
) -> list[dict[str, Any]]:
    """Check the cumulative registers of the chunk's meters; fill ``advance`` per interval row.

    The register of an interval channel is the cumulative channel of the same meter with the same
    unit and direction. Its advance over a UTC day is the difference of the reads taken exactly at
    the two midnights (the daily profile of IS 15959 is captured at midnight).
    """
    by_meter: dict[tuple[int, str, str], list[int]] = defaultdict(list)
    for cid in ids:
        mid, _, unit, _, _, direction = meta[cid]
        by_meter[(mid, unit, direction)].append(cid)
    meters = sorted({k[0] for k in by_meter})
    reg_of: dict[int, tuple[int, str, str]] = {}
    tier_of: dict[int, int] = {}
    for part in _in(meters):
        stmt = (
            select(Channel.id, Channel.meter_id, ReadingType.unit, ReadingType.direction, ReadingType.obis)
            .join(ReadingType, ReadingType.id == Channel.reading_type_id)
            .where(Channel.meter_id.in_(part), ReadingType.accumulation == "cumulative")
        )
        for rid, mid, unit, direction, obis in session.execute(stmt):
            reg_of[rid] = (mid, unit, direction)
            tier_of[rid] = tou_tier(obis)
    if not reg_of:
        return []
    lo, hi = day_start(first) - timedelta(days=1), day_start(last + timedelta(days=1))
    reads: dict[int, list[tuple[datetime, float]]] = defaultdict(list)
    for part in _in(sorted(reg_of)):
        reads_stmt = (
            select(RegisterRead.channel_id, RegisterRead.read_at, RegisterRead.value)
            .where(RegisterRead.channel_id.in_(part), RegisterRead.read_at >= lo, RegisterRead.read_at <= hi)
            .order_by(RegisterRead.channel_id, RegisterRead.read_at)
        )
        for rid, at, value in session.execute(reads_stmt):
            reads[rid].append((at, float(value)))
    cfg = rs.rules.register_increase
    rows: list[dict[str, Any]] = []
    row_of = {cid: r for r, cid in enumerate(ids)}
    n_days = (last - first).days + 1
    #: each register's advance over each UTC day (reads at both midnights), for the TOU check
    day_adv: dict[int, FloatArray] = {}
    for rid, series in reads.items():
        vals = np.array([v for _, v in series])[None, :]
        adv, res = register_advance(vals, rollover=cfg.rollover)
        if cfg.enabled:
            for f in res.findings:
                at = series[f.first][0]
                if first <= at.date() <= last:
                    rows.append(
                        {
                            "channel_id": rid,
                            "day": at.date(),
                            "rule": f.rule,
                            "action": cfg.action if f.rule == REGISTER_DECREASE else "info",
                            "first_slot": 0,
                            "slot_count": 0,
                            "data": {**f.data, "read_at": at.isoformat()},
                        }
                    )
        # day advances from reads exactly at consecutive midnights
        mids = {at.date(): i for i, (at, _) in enumerate(series) if at == day_start(at.date())}
        per_day = np.full(n_days, np.nan)
        for d in range(n_days):
            day = first + timedelta(days=d)
            i0, i1 = mids.get(day), mids.get(day + timedelta(days=1))
            if i0 is not None and i1 is not None:
                a = series[i1][1] - series[i0][1]
                if a < 0 and i1 == i0 + 1 and not np.isnan(adv[0, i1]):
                    a = float(adv[0, i1])  # a rollover between the two midnights
                per_day[d] = a if a >= 0 else np.nan
        day_adv[rid] = per_day
        if tier_of[rid] == 0:  # the interval sum is checked against the total register only
            for cid in by_meter.get(reg_of[rid], []):
                advance[row_of[cid]] = per_day
    rows += _tou_rows(reg_of, tier_of, day_adv, first, rs)
    return rows


def _tou_rows(
    reg_of: dict[int, tuple[int, str, str]],
    tier_of: dict[int, int],
    day_adv: dict[int, FloatArray],
    first: date,
    rs: RuleSet,
) -> list[dict[str, Any]]:
    """``vee.tou_sum_check`` per day: the TOU tier registers of a meter (same unit and direction)
    must advance as much as its total register, within the sum check's tolerances. Findings go on
    the total register's channel with both values; days without reads of every register at both
    midnights are not judged."""
    cfg = rs.rules.sum_check
    if not cfg.enabled or not day_adv:
        return []
    totals: dict[tuple[int, str, str], int] = {}
    tiers: dict[tuple[int, str, str], list[int]] = defaultdict(list)
    for rid, key in reg_of.items():
        if tier_of[rid] == 0:
            totals[key] = rid
        else:
            tiers[key].append(rid)
    groups = [(totals[k], sorted(t, key=tier_of.__getitem__)) for k, t in tiers.items() if k in totals]
    if not groups:
        return []
    n_days = len(next(iter(day_adv.values())))
    nan = np.full(n_days, np.nan)
    width = max(len(t) for _, t in groups)
    total = np.array([day_adv.get(rid, nan) for rid, _ in groups])
    tou = np.full((len(groups), width, n_days), np.nan)
    for g, (_, tier_ids) in enumerate(groups):
        tou[g, : len(tier_ids)] = [day_adv.get(t, nan) for t in tier_ids]
        tou[g, len(tier_ids) :] = 0.0  # a meter with fewer tiers than the widest one
    bad = tou_sum_check(total, tou, tolerance=cfg.tolerance, tolerance_rel=cfg.tolerance_rel)
    tier_sum = np.nansum(tou, axis=1)
    rows: list[dict[str, Any]] = []
    for g, d in zip(*np.nonzero(bad), strict=True):
        rid, tier_ids = groups[g]
        rows.append(
            {
                "channel_id": rid,
                "day": first + timedelta(days=int(d)),
                "rule": TOU_SUM_CHECK,
                "action": cfg.action,
                "first_slot": 0,
                "slot_count": 0,
                "data": {
                    "register_advance": round(float(total[g, d]), 6),
                    "tou_sum": round(float(tier_sum[g, d]), 6),
                    "difference": round(float(tier_sum[g, d] - total[g, d]), 6),
                    "tiers": {str(tier_of[t]): round(float(tou[g, k, d]), 6) for k, t in enumerate(tier_ids)},
                },
            }
        )
    return rows
