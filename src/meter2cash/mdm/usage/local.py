"""The usage port over this platform's measurement store.

:class:`LocalUsage` answers a :class:`~meter2cash.mdm.usage.port.UsageQuery` from the meters
installed at each service point (:func:`~meter2cash.mdm.usage.channels.service_point_meters`,
the one rule of which channel bills a service point) and their interval data: one read of the
store per batch of rows, the determinants of every row in one compiled walk
(:func:`~meter2cash.mdm.determinants.window_determinants`). A service point whose meter was
exchanged inside the window is read from each meter inside its own installation window. It
takes a Session when built and never writes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from meter2cash.core.quality import Quality
from meter2cash.core.timeutil import ONE_DAY, epoch_seconds, local_frame, local_midnight
from meter2cash.mdm.determinants import bill_determinants, window_determinants
from meter2cash.mdm.models import ChannelDay
from meter2cash.mdm.store import MeasurementStore, Window
from meter2cash.mdm.tou import tou_period_index
from meter2cash.mdm.usage.channels import MeterChannels, MeterUse, service_point_meters
from meter2cash.mdm.usage.port import UsageBatch, UsageProblem, UsageQuery

#: Channel ids per query when checking fingerprints.
_CHECK_IDS = 500


class LocalUsage:
    """Usage from the measurement store of ``session`` (read only)."""

    def __init__(self, session: Session, store: MeasurementStore | None = None) -> None:
        self.session = session
        self.store = store or MeasurementStore(session)

    # -- usage -----------------------------------------------------------------------------
    def usage(self, query: UsageQuery) -> Iterator[UsageBatch]:
        meters = service_point_meters(
            self.session, sorted(set(query.service_point_ids)), query.start, query.end
        )
        problems: list[UsageProblem] = []
        by_length: dict[int, list[int]] = defaultdict(list)
        none: list[MeterUse] = []  # shared by the rows without meters; never changed
        uses_of = [none] * query.n_rows
        for r, (sp, first, last) in enumerate(
            zip(query.service_point_ids, query.first, query.last, strict=True)
        ):
            # meters installed around the row's days (a day's margin either side: the exact
            # installation windows mask the intervals when they are read); the usual service
            # point has one meter installed over the whole window
            installed = meters.get(sp, none)
            if len(installed) == 1 and installed[0].covers(query.start, query.end):
                uses_of[r] = installed
                by_length[installed[0].channels.interval_s].append(r)
                continue
            lo, hi = first - ONE_DAY, last + ONE_DAY
            uses = [
                u
                for u in installed
                if u.installed_at.date() <= hi and (u.removed_at is None or u.removed_at.date() >= lo)
            ]
            if not uses:
                problems.append(
                    UsageProblem(r, "usage.no_meter", "no meter with a kWh interval channel installed")
                )
                continue
            longest = max(u.channels.interval_s for u in uses)
            if any(longest % u.channels.interval_s for u in uses):
                # meters of different interval lengths are read at the longest, which the others
                # must divide (15 and 30 minutes); 10 and 15 minutes have no common interval
                serials = ", ".join(f"{u.serial} ({u.channels.interval_s} s)" for u in uses)
                problems.append(
                    UsageProblem(
                        r,
                        "usage.interval_mismatch",
                        f"meters of interval lengths that do not divide each other: {serials}",
                    )
                )
                continue
            uses_of[r] = uses
            by_length[longest].append(r)
        if problems and not by_length:
            yield UsageBatch.empty(problems)
            return
        for k, (interval_s, rows) in enumerate(sorted(by_length.items())):
            cal = _calendar(query, interval_s, on_grid=not query.estimate_gaps)
            for c in range(0, len(rows), query.chunk_rows):
                part = rows[c : c + query.chunk_rows]
                batch = self._batch(query, cal, np.asarray(part, dtype=np.int64), [uses_of[r] for r in part])
                if k == 0 and c == 0:
                    batch.problems = problems
                yield batch

    def _batch(
        self, q: UsageQuery, cal: _Calendar, rows: np.ndarray, uses: list[list[MeterUse]]
    ) -> UsageBatch:
        window = read_meters(self.store, uses, cal.start, cal.end, cal.interval_s)
        row = {cid: r for r, cid in enumerate(window.channel_ids)}
        starts = cal.starts
        first = np.asarray([q.first[r] for r in rows.tolist()], dtype="datetime64[D]")
        last = np.asarray([q.last[r] for r in rows.tolist()], dtype="datetime64[D]")
        demand_s = max(q.demand_interval_s or cal.interval_s, cal.interval_s)
        n_periods = len(q.period_names)
        if q.estimate_gaps:
            # each row's days are one span of columns: the local days ascend
            lo = np.searchsorted(cal.local_days, first, "left")
            hi = np.searchsorted(cal.local_days, last, "right")
            values, flags, at = _stacked(window, row, uses, starts)
            wd = window_determinants(
                values, flags, at, lo, hi, cal.period_index, n_periods, cal.day_index, len(cal.dates),
                cal.interval_s, demand_s,
            )  # fmt: skip
            det, daily, valid = wd.det, wd.daily, wd.valid
        else:
            # measured energy only, each row from the grid point at or before its first local
            # midnight to the one at or before the midnight after its last day
            days = np.unique(np.concatenate((first, last + np.timedelta64(1, "D"))))
            grid = np.asarray([_floor(local_midnight(d, q.tz), cal.interval_s) for d in days.tolist()])
            lo = np.searchsorted(starts, grid[np.searchsorted(days, first)])
            hi = np.searchsorted(starts, grid[np.searchsorted(days, last + np.timedelta64(1, "D"))])
            values, flags = meter_rows(window, row, uses, starts, "kwh")
            outside = ~_spans_mask(lo, hi, len(starts))
            if outside.any():
                values = np.where(outside, np.nan, values)
            det = bill_determinants(values, flags, cal.period_index, n_periods, cal.interval_s, demand_s)
            valid = np.count_nonzero(~np.isnan(values), axis=1).astype(np.int64)
            daily = _daily(values, cal.day_index, len(cal.dates))
        active = _spans_mask(lo, hi, len(starts)) if q.companions or q.details else None
        kvah = export = None
        if active is not None and q.companions:
            kvah, export = (
                _companion(window, row, uses, starts, active, name) for name in ("kvah", "export")
            )
        channel_ids: list[int | None] = []
        meters: list[list[dict[str, Any]] | None] = []
        versions: list[dict[str, Any]] = []
        if active is not None and q.details:
            per_channel = window.version_totals()
            spans = {k: sp for k, u in enumerate(uses) if (sp := _spans(u, window))}
            days_of = window.days_of({c for sp in spans.values() for c in sp}) if spans else {}
            for k, u in enumerate(uses):
                used = _meters_used(window, row, u, starts, active[k], q.tz) if len(u) > 1 else []
                meters.append(used if len(used) > 1 else None)
                channel_ids.append(u[-1].channels.kwh)
                versions.append(data_version(per_channel, _channel_ids(u), spans.get(k), days_of))
        return UsageBatch(
            rows=rows,
            interval_s=cal.interval_s,
            det=det,
            valid=valid,
            days=cal.dates,
            daily_kwh=daily,
            kvah_total=kvah,
            kwh_export=export,
            channel_ids=channel_ids,
            meters=meters,
            versions=versions,
        )

    # -- fingerprints ----------------------------------------------------------------------
    def changed(self, start: datetime, end: datetime, versions: Sequence[Mapping[str, Any]]) -> list[bool]:
        first, last = start.astimezone(UTC).date(), (end - timedelta(microseconds=1)).astimezone(UTC).date()
        ids = sorted({int(c) for v in versions for c in v.get("channels", [])})
        now: dict[int, tuple[int, int]] = {}
        cd = ChannelDay.__table__.c
        for i in range(0, len(ids), _CHECK_IDS):
            rows = self.session.execute(
                select(cd.channel_id, func.count(), func.sum(cd.version))
                .where(cd.channel_id.in_(ids[i : i + _CHECK_IDS]), cd.day >= first, cd.day <= last)
                .group_by(cd.channel_id)
            )
            now.update({int(c): (int(n), int(s or 0)) for c, n, s in rows})
        spanned = sorted({int(c) for v in versions for c in v.get("spans", {})})
        by_day: dict[int, list[tuple[date, int]]] = defaultdict(list)
        for i in range(0, len(spanned), _CHECK_IDS):  # meters exchanged in the window: per day
            for c, d, v in self.session.execute(
                select(cd.channel_id, cd.day, cd.version).where(
                    cd.channel_id.in_(spanned[i : i + _CHECK_IDS]), cd.day >= first, cd.day <= last
                )
            ):
                by_day[int(c)].append((d, int(v)))
        out = []
        for v in versions:
            spans = {
                int(c): (date.fromisoformat(a), None if z is None else date.fromisoformat(z))
                for c, (a, z) in v.get("spans", {}).items()
            }
            days = total = 0
            for c in v.get("channels", []):
                n, s = now.get(c, (0, 0)) if c not in spans else span_totals(by_day[c], *spans[c])
                days, total = days + n, total + s
            out.append((days, total) != (v.get("days"), v.get("sum")))
        return out


@dataclass(slots=True)
class _Calendar:
    """What every batch of one query and interval length shares: the window, each interval's
    start, TOU period, local day and day number, and the local days' ISO dates."""

    start: datetime
    end: datetime
    interval_s: int
    starts: np.ndarray
    period_index: np.ndarray
    local_days: np.ndarray
    day_index: np.ndarray
    dates: list[str]


def _calendar(q: UsageQuery, interval_s: int, *, on_grid: bool) -> _Calendar:
    """The query's window at ``interval_s``; ``on_grid``: both ends floored to the interval grid
    (where local midnight is not on it, e.g. hourly data at UTC+05:30)."""
    start, end = q.start, q.end
    if on_grid:
        start = datetime.fromtimestamp(_floor(start, interval_s), UTC)
        end = datetime.fromtimestamp(_floor(end, interval_s), UTC)
    n = int((end - start).total_seconds()) // interval_s
    starts = epoch_seconds(start) + np.arange(n, dtype=np.int64) * interval_s
    local_days = local_frame(starts, q.tz)["date"].to_numpy().astype("datetime64[D]")
    dates, day_index = np.unique(local_days, return_inverse=True)
    period_index = tou_period_index(starts, q.tou, q.tz)
    return _Calendar(
        start, end, interval_s, starts, period_index, local_days, day_index, [str(d) for d in dates]
    )


def _spans_mask(lo: np.ndarray, hi: np.ndarray, n: int) -> np.ndarray:
    """(rows, n): whether each column lies in its row's span ``[lo, hi)``."""
    cols = np.arange(n)
    return np.asarray((cols[None, :] >= lo[:, None]) & (cols[None, :] < hi[:, None]))


def _floor(ts: datetime, interval_s: int) -> int:
    s = int(ts.timestamp())
    return s - s % interval_s


def _channel_ids(uses: list[MeterUse]) -> list[int]:
    return sorted({c for m in uses for c in m.channels.ids})


def read_meters(
    store: MeasurementStore, uses: list[list[MeterUse]], start: datetime, end: datetime, interval_s: int
) -> Window:
    """The interval data of every channel of the meters over ``[start, end)`` at ``interval_s``.

    Channels of meters with shorter intervals (a 15-minute meter that replaced a 30-minute one)
    are read at their own length and summed to ``interval_s``: a read interval is missing if
    any of its parts is, and carries the flags of all of them."""
    by_length: dict[int, set[int]] = defaultdict(set)
    for u in uses:
        for m in u:
            by_length[m.channels.interval_s].update(m.channels.ids)
    window = store.read_window(
        sorted(by_length.pop(interval_s, set())), start, end, interval_s, include_raw=False
    )
    for length, ids in sorted(by_length.items()):
        fine = store.read_window(sorted(ids), start, end, length, include_raw=False)
        window = _append_rows(window, _coarsen(fine, interval_s))
    return window


def _coarsen(w: Window, interval_s: int) -> Window:
    """A window summed to a longer interval (a multiple of its own)."""
    k = interval_s // w.interval_s
    n, t = w.values.shape
    parts = w.values.reshape(n, t // k, k)
    values = np.where(np.isnan(parts).any(axis=2), np.nan, np.nansum(parts, axis=2))
    flags = np.bitwise_or.reduce(w.flags.reshape(n, t // k, k), axis=2).astype(w.flags.dtype)
    return Window(
        w.channel_ids, w.start, interval_s, values, flags, np.broadcast_to(np.nan, values.shape), w.versions
    )


def _append_rows(w: Window, other: Window) -> Window:
    """One window with the rows of both (same start and interval)."""
    versions = {**dict(w.versions.items()), **dict(other.versions.items())}
    values = np.vstack((w.values, other.values))
    flags = np.vstack((w.flags, other.flags))
    raw = np.broadcast_to(np.nan, values.shape)  # the received values are not read for billing
    return Window(w.channel_ids + other.channel_ids, w.start, w.interval_s, values, flags, raw, versions)


def _stacked(
    window: Window, row: dict[int, int], uses: list[list[MeterUse]], starts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The window's values and flags with the combined rows of exchanged meters below them, and
    the row of each query row: straight from the window for a row read from one meter over the
    whole window (no copy), from a combined row (:func:`meter_rows`) for the others."""
    lo_w, hi_w = window.start, window.start + timedelta(seconds=len(starts) * window.interval_s)
    at = np.empty(len(uses), dtype=np.int64)
    mixed: list[int] = []
    for k, u in enumerate(uses):
        m = u[0]
        if len(u) == 1 and m.channels.kwh and m.covers(lo_w, hi_w):
            at[k] = row[m.channels.kwh]
        else:
            mixed.append(k)
    values, flags = window.values, window.flags
    if mixed:
        combined, combined_flags = meter_rows(window, row, [uses[k] for k in mixed], starts, "kwh")
        at[mixed] = len(window.channel_ids) + np.arange(len(mixed))
        values, flags = np.vstack((values, combined)), np.vstack((flags, combined_flags))
    return values, flags, at


def _pick(mc: MeterChannels, name: str) -> int | None:
    """The channel of ``name`` on a meter; kVAh falls back to kWh (power factor 1)."""
    if name == "kwh":
        return mc.kwh
    if name == "kvah":
        return mc.kvah or mc.kwh
    return mc.export


def _installed(m: MeterUse, starts: np.ndarray) -> np.ndarray:
    """Intervals starting inside the meter's installation window."""
    mask = starts >= epoch_seconds(m.installed_at)
    if m.removed_at is not None:
        mask &= starts < epoch_seconds(m.removed_at)
    return np.asarray(mask, dtype=bool)


def meter_rows(
    window: Window, row: dict[int, int], uses: list[list[MeterUse]], starts: np.ndarray, name: str
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's interval values and flags of channel ``name`` (``kwh``, ``kvah``, ``export``)
    over the window, combined over the service point's meters.

    Each meter counts only inside its installation window; where windows overlap the meter
    installed later wins, so no interval is counted twice, and an exchange in the middle of a
    day keeps both meters' intervals of that day. A meter without the channel gives 0 (export)
    or its kWh (kVAh). The usual case, one meter installed over the whole window, is one take
    of rows."""
    n, t = len(uses), window.values.shape[1]
    lo, hi = window.start, window.start + timedelta(seconds=t * window.interval_s)
    plain: list[int] = []
    rows: list[int] = []
    mixed: list[int] = []
    for k, u in enumerate(uses):
        cid = _pick(u[0].channels, name)
        if len(u) == 1 and cid and u[0].covers(lo, hi):
            plain.append(k)
            rows.append(row[cid])
        else:
            mixed.append(k)
    if not mixed:
        return window.values[rows], window.flags[rows]
    values = np.full((n, t), np.nan)
    flags = np.full((n, t), Quality.MISSING, dtype=window.flags.dtype)
    values[plain], flags[plain] = window.values[rows], window.flags[rows]
    zeros = np.zeros(t)
    for k in mixed:
        for m in uses[k]:
            cid = _pick(m.channels, name)
            mask = _installed(m, starts)
            values[k] = np.where(mask, window.values[row[cid]] if cid else zeros, values[k])
            flags[k] = np.where(mask, window.flags[row[cid]] if cid else 0, flags[k])
    return values, flags


def _companion(
    window: Window,
    row: dict[int, int],
    uses: list[list[MeterUse]],
    starts: np.ndarray,
    active: np.ndarray,
    name: str,
) -> np.ndarray | None:
    """kVAh or export totals [kWh] over each row's active intervals (``None``: no meter measures
    it); meters without such a channel give their kWh for kVAh (PF 1) and 0 export."""
    if not any(getattr(m.channels, name) for u in uses for m in u):
        return None
    values, _ = meter_rows(window, row, uses, starts, name)
    return np.asarray(np.nansum(np.where(active, values, np.nan), axis=1))


def _meters_used(
    window: Window, row: dict[int, int], uses: list[MeterUse], starts: np.ndarray, active: np.ndarray, tz: str
) -> list[dict[str, Any]]:
    """The meters whose intervals count in a row's active days: serial, kWh channel, the local
    day of installation/removal inside the window (``None`` outside it) and the kWh read."""
    zone = ZoneInfo(tz)
    out = []
    lo, hi = window.start, window.start + timedelta(seconds=len(starts) * window.interval_s)
    for m in uses:
        mask = _installed(m, starts) & active
        if not mask.any():
            continue
        kwh = float(np.nansum(np.where(mask, window.values[row[m.channels.kwh]], np.nan)))
        out.append(
            {
                "serial": m.serial,
                "channel_id": m.channels.kwh,
                "from": str(m.installed_at.astimezone(zone).date()) if m.installed_at > lo else None,
                "until": str(m.removed_at.astimezone(zone).date())
                if m.removed_at is not None and m.removed_at < hi
                else None,
                "kwh": round(kwh, 3),
            }
        )
    return out


def _daily(values: np.ndarray, day_index: np.ndarray, n_days: int) -> np.ndarray:
    """Energy per local day (n, n_days) [kWh]; NaN counts as 0."""
    onehot = np.zeros((len(day_index), n_days))
    onehot[np.arange(len(day_index)), day_index] = 1.0
    return np.asarray(np.where(np.isnan(values), 0.0, values) @ onehot)


def data_version(
    per_channel: dict[int, tuple[int, int]],
    ids: list[int],
    spans: dict[int, tuple[date, date | None]] | None = None,
    days_of: Mapping[int, list[tuple[date, int]]] | None = None,
) -> dict[str, Any]:
    """Fingerprint of the stored channel-days read (``per_channel``: channel → (days, sum of
    versions)): their count and version sum over the row's channels (every meter's). A later
    correction or late data changes it (see :meth:`LocalUsage.changed`).

    ``spans`` (channel → its meter's first and last UTC day at the service point, ``None``
    while installed) limits a channel to those days, counted from ``days_of`` (channel → its
    (day, version) pairs read): data a removed meter sends later, or a new meter sent before it
    was installed, is not used and must not make the fingerprint stale. They are recorded as
    ``spans`` (ISO days) for the check."""
    spans = spans or {}
    days = total = 0
    for c in ids:
        span = spans.get(c)
        if span is None or days_of is None:
            n, v = per_channel.get(c, (0, 0))
        else:
            n, v = span_totals(days_of.get(c, []), *span)
        days, total = days + n, total + v
    out: dict[str, Any] = {"channels": ids, "days": days, "sum": total}
    if spans:
        out["spans"] = {
            str(c): [str(a), None if b is None else str(b)] for c, (a, b) in sorted(spans.items())
        }
    return out


def span_totals(days: list[tuple[date, int]], first: date, last: date | None) -> tuple[int, int]:
    """How many of a channel's ``(day, version)`` pairs fall from ``first`` to ``last`` (open
    when ``None``), and the sum of their versions."""
    vs = [v for d, v in days if d >= first and (last is None or d <= last)]
    return len(vs), sum(vs)


def _spans(uses: list[MeterUse], window: Window) -> dict[int, tuple[date, date | None]]:
    """The UTC days of each meter of a row that was not installed over the whole window."""
    lo = window.start
    hi = lo + timedelta(seconds=window.n_intervals * window.interval_s)
    out: dict[int, tuple[date, date | None]] = {}
    for m in uses:
        if m.covers(lo, hi):
            continue
        last = None if m.removed_at is None else (m.removed_at - timedelta(microseconds=1)).date()
        for c in m.channels.ids:
            out[c] = (m.installed_at.date(), last)
    return out
