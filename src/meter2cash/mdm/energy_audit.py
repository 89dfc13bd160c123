"""Energy audit per distribution transformer or feeder, per local day or month.

The energy into a node is what its boundary meter measured (kWh import intervals); the
consumers' energy is the sum over the service points below the node at each interval's time,
through the meters installed there then (their kWh import interval channels). The loss is the
difference; beside it, how much of each side is estimated (flagged by VEE) and how complete the
intervals are, so an auditor sees how much of the figure is measured. The hierarchy is taken
from its history (:mod:`meter2cash.mdm.network`): a service point that moves to another
transformer counts for each over its own time. The arithmetic is
:mod:`meter2cash.mdm.energy_audit_kernel`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.orm import Session

from meter2cash.core.errors import InvalidInput
from meter2cash.core.quality import Quality
from meter2cash.core.timeutil import epoch_seconds, local_frame, local_midnight, month_code
from meter2cash.db_query import CHUNK
from meter2cash.mdm.energy_audit_kernel import AuditFigures, NodeSums, audit_figures, node_period_sums
from meter2cash.mdm.models import Channel, ReadingType
from meter2cash.mdm.network import OPEN_END, LinkSpans, boundary_spans, link_spans, node_codes
from meter2cash.mdm.store import MeasurementStore
from meter2cash.mdm.usage.channels import service_point_meters

#: The longest audit window [days].
MAX_AUDIT_DAYS = 400
LEVELS = ("dt", "feeder")
GROUPINGS = ("day", "month")
#: Channels read at once.
_ROWS = min(CHUNK, 2000)


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One node in one period. Energies in kWh, shares as fractions (``None`` when undefined)."""

    node: str
    period: str
    energy_in: float | None
    consumers: float
    loss: float | None
    loss_share: float | None
    in_estimated_share: float | None
    consumers_estimated_share: float | None
    estimated_share: float | None
    in_completeness: float | None
    consumers_completeness: float | None
    completeness: float | None
    service_points: int

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


@dataclass(slots=True)
class EnergyAudit:
    """The audit of every node of a level over local days ``first`` .. ``last``."""

    level: str
    by: str
    first: date
    last: date
    timezone: str
    rows: list[AuditRow] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "by": self.by,
            "from": self.first.isoformat(),
            "to": self.last.isoformat(),
            "timezone": self.timezone,
            "rows": [r.to_dict() for r in self.rows],
        }


@dataclass(slots=True)
class _Rows:
    """Channels to read: channel id, interval, the node or service point they count for, the
    span ``[start, end)`` in epoch seconds."""

    channel: list[int] = field(default_factory=list)
    interval: list[int] = field(default_factory=list)
    owner: list[int] = field(default_factory=list)
    start: list[int] = field(default_factory=list)
    end: list[int] = field(default_factory=list)

    def add(self, channel: int, interval: int, owner: int, start: int, end: int) -> None:
        self.channel.append(channel)
        self.interval.append(interval)
        self.owner.append(owner)
        self.start.append(start)
        self.end.append(end)


def _check(first: date, last: date, by: str, level: str) -> None:
    if level not in LEVELS:
        raise InvalidInput(
            f"unknown level {level!r}: dt or feeder", code="audit.unknown_level", field="level"
        )
    if by not in GROUPINGS:
        raise InvalidInput(f"unknown grouping {by!r}: day or month", code="audit.unknown_by", field="by")
    if last < first or (last - first).days >= MAX_AUDIT_DAYS:
        raise InvalidInput(
            f"window {first}..{last} must be 1 to {MAX_AUDIT_DAYS} days",
            code="audit.window_invalid",
            field="to",
        )


def energy_audit(
    session: Session, first: date, last: date, *, tz: str, by: str = "day", level: str = "dt"
) -> EnergyAudit:
    """Energy in, consumers, loss, estimated shares and completeness of every transformer
    (``level`` ``dt``) or feeder over local days ``first`` .. ``last`` in zone ``tz``, per local
    day or month (``by``). Nodes with neither a boundary meter nor consumers are left out.

    Raises :class:`InvalidInput` ``audit.unknown_level``, ``audit.unknown_by``,
    ``audit.window_invalid``.
    """
    _check(first, last, by, level)
    start, end = local_midnight(first, tz), local_midnight(last + timedelta(days=1), tz)
    labels = _period_labels(first, last, by)
    sp_dt = link_spans(session, "service_point_dt", start, end)
    dt_feeder = link_spans(session, "dt_feeder", start, end) if level == "feeder" else None
    bounds = boundary_spans(session, level, start, end)
    node_ids = sorted(
        set((sp_dt.parent if dt_feeder is None else dt_feeder.parent).tolist()) | set(bounds.node.tolist())
    )
    node_of = {n: i for i, n in enumerate(node_ids)}
    dt_ids = sorted(set(sp_dt.parent.tolist()))
    dt_of = {d: i for i, d in enumerate(dt_ids)}
    s0, s1 = epoch_seconds(start), epoch_seconds(end)

    consumers = _Rows()
    sps = sorted(set(sp_dt.child.tolist()))
    for sp, uses in service_point_meters(session, sps, start, end).items():
        for u in uses:
            a = max(s0, epoch_seconds(u.installed_at))
            b = s1 if u.removed_at is None else min(s1, epoch_seconds(u.removed_at))
            consumers.add(u.channels.kwh, u.channels.interval_s, sp, a, b)
    boundary = _Rows()
    chans = kwh_import_channels(session, sorted(set(bounds.meter.tolist())))
    for m, n, a, b in zip(
        bounds.meter.tolist(), bounds.node.tolist(), bounds.start.tolist(), bounds.end.tolist(), strict=True
    ):
        if m in chans:
            boundary.add(chans[m][0], chans[m][1], node_of[n], max(s0, a), min(s1, b))

    shape = (len(node_ids), len(labels))
    cons_sums, in_sums = NodeSums.zeros(*shape), NodeSums.zeros(*shape)
    store = MeasurementStore(session)
    sp_links = _spans_by_child(sp_dt)
    for interval, rows in _by_interval(consumers):
        grid = _Grid(s0, s1, interval, first, by, tz)
        for part in _chunks(rows):
            window = grid.read(store, [consumers.channel[r] for r in part])
            dt_idx = np.full((len(part), grid.n), -1, dtype=np.int64)
            for i, r in enumerate(part):
                lo, hi = grid.span(consumers.start[r], consumers.end[r])
                for a, b, parent in sp_links.get(consumers.owner[r], ()):
                    la, lb = grid.span(a, b)
                    la, lb = max(la, lo), min(lb, hi)
                    if la < lb:
                        dt_idx[i, la:lb] = dt_of[parent]
            node = _dt_nodes(dt_idx, dt_ids, node_of) if dt_feeder is None else _feeder_nodes(
                dt_idx, dt_ids, dt_feeder, grid, node_of
            )  # fmt: skip
            cons_sums = cons_sums + node_period_sums(
                window[0], window[1], window[2], node, grid.period, *shape
            )
    for interval, rows in _by_interval(boundary):
        grid = _Grid(s0, s1, interval, first, by, tz)
        for part in _chunks(rows):
            window = grid.read(store, [boundary.channel[r] for r in part])
            node = np.full((len(part), grid.n), -1, dtype=np.int64)
            for i, r in enumerate(part):
                lo, hi = grid.span(boundary.start[r], boundary.end[r])
                node[i, lo:hi] = boundary.owner[r]
            in_sums = in_sums + node_period_sums(window[0], window[1], window[2], node, grid.period, *shape)
    figures = audit_figures(in_sums, cons_sums)
    counts = _service_point_counts(consumers, sp_dt, dt_feeder, node_of, s0, s1, len(node_ids))
    codes = node_codes(session, level, node_ids)
    out = EnergyAudit(level, by, first, last, str(tz))
    for j, node_id in enumerate(node_ids):
        for p, label in enumerate(labels):
            if in_sums.expected[j, p] == 0 and cons_sums.expected[j, p] == 0:
                continue
            out.rows.append(_row(codes.get(node_id, str(node_id)), label, figures, in_sums, j, p, counts[j]))
    out.rows.sort(key=lambda r: (r.node, r.period))
    return out


def _num(x: Any) -> float | None:
    v = float(x)
    return None if math.isnan(v) else round(v, 9)


def _row(
    code: str, label: str, f: AuditFigures, in_sums: NodeSums, j: int, p: int, service_points: int
) -> AuditRow:
    metered = in_sums.expected[j, p] > 0
    return AuditRow(
        node=code,
        period=label,
        energy_in=_num(f.energy_in[j, p]) if metered else None,
        consumers=round(float(f.consumers[j, p]), 9),
        loss=_num(f.loss[j, p]),
        loss_share=_num(f.loss_share[j, p]),
        in_estimated_share=_num(f.in_estimated_share[j, p]),
        consumers_estimated_share=_num(f.consumers_estimated_share[j, p]),
        estimated_share=_num(f.estimated_share[j, p]),
        in_completeness=_num(f.in_completeness[j, p]),
        consumers_completeness=_num(f.consumers_completeness[j, p]),
        completeness=_num(f.completeness[j, p]),
        service_points=service_points,
    )


def _service_point_counts(
    consumers: _Rows,
    sp_dt: LinkSpans,
    dt_feeder: LinkSpans | None,
    node_of: dict[int, int],
    s0: int,
    s1: int,
    nodes: int,
) -> list[int]:
    """How many metered service points hung below each node at some time of the window."""
    seen: list[set[int]] = [set() for _ in range(nodes)]
    metered = set(consumers.owner)
    for sp, dt, a, b in zip(
        sp_dt.child.tolist(), sp_dt.parent.tolist(), sp_dt.start.tolist(), sp_dt.end.tolist(), strict=True
    ):
        if sp not in metered or b <= s0 or a >= s1:
            continue
        if dt_feeder is None:
            if dt in node_of:
                seen[node_of[dt]].add(sp)
            continue
        sel = (dt_feeder.child == dt) & (dt_feeder.start < min(b, s1)) & (dt_feeder.end > max(a, s0))
        for f in dt_feeder.parent[sel].tolist():
            if f in node_of:
                seen[node_of[f]].add(sp)
    return [len(s) for s in seen]


def _dt_nodes(
    dt_idx: npt.NDArray[np.int64], dt_ids: list[int], node_of: dict[int, int]
) -> npt.NDArray[np.int64]:
    lookup = np.asarray([node_of.get(d, -1) for d in dt_ids] + [-1], dtype=np.int64)
    return lookup[dt_idx]  # index -1 takes the trailing -1


def _feeder_nodes(
    dt_idx: npt.NDArray[np.int64],
    dt_ids: list[int],
    dt_feeder: LinkSpans,
    grid: _Grid,
    node_of: dict[int, int],
) -> npt.NDArray[np.int64]:
    """The feeder node of every interval, through the transformer's feeder at that time."""
    feeder_at = np.full((len(dt_ids) + 1, grid.n), -1, dtype=np.int64)  # last row: no transformer
    dt_row = {d: i for i, d in enumerate(dt_ids)}
    for dt, f, a, b in zip(
        dt_feeder.child.tolist(),
        dt_feeder.parent.tolist(),
        dt_feeder.start.tolist(),
        dt_feeder.end.tolist(),
        strict=True,
    ):
        if dt in dt_row and f in node_of:
            la, lb = grid.span(a, b)
            feeder_at[dt_row[dt], la:lb] = node_of[f]
    return feeder_at[dt_idx, np.arange(grid.n)[np.newaxis, :]]


class _Grid:
    """The interval grid of one interval length over the audit window: interval starts and the
    period of each."""

    def __init__(self, s0: int, s1: int, interval: int, first: date, by: str, tz: str) -> None:
        self.interval = interval
        self.g0 = s0 - s0 % interval
        self.g1 = s1 + (-s1) % interval
        self.n = (self.g1 - self.g0) // interval
        starts = self.g0 + np.arange(self.n, dtype=np.int64) * interval
        local = local_frame(starts, tz)
        days = (local["date"].to_numpy().astype("datetime64[D]") - np.datetime64(first, "D")).astype(np.int64)
        if by == "day":
            period = days
        else:
            period = (local["year"].to_numpy().astype(np.int64) * 12 + local["month"].to_numpy() - 1) - (
                first.year * 12 + first.month - 1
            )
        inside = (starts >= s0) & (starts < s1)
        self.period = np.where(inside, period, -1).astype(np.int64)

    def span(self, a: int, b: int) -> tuple[int, int]:
        """The columns of intervals starting in ``[a, b)``."""
        lo = max(0, -(-(a - self.g0) // self.interval))
        hi = self.n if b >= OPEN_END else min(self.n, max(0, -(-(b - self.g0) // self.interval)))
        return min(lo, self.n), hi

    def read(
        self, store: MeasurementStore, channels: list[int]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        """Values, estimated and received flags, one row per entry of ``channels``."""
        unique = sorted(set(channels))
        w = store.read_window(
            unique,
            datetime.fromtimestamp(self.g0, UTC),
            datetime.fromtimestamp(self.g1, UTC),
            self.interval,
        )
        index = {c: i for i, c in enumerate(unique)}
        rows = np.asarray([index[c] for c in channels], dtype=np.intp)
        values = w.values[rows]
        estimated = (w.flags[rows] & Quality.ESTIMATED) != 0
        present = ~np.isnan(w.raw[rows])
        return values, estimated, present


def _by_interval(rows: _Rows) -> list[tuple[int, list[int]]]:
    groups: dict[int, list[int]] = defaultdict(list)
    for i, iv in enumerate(rows.interval):
        groups[iv].append(i)
    return sorted(groups.items())


def _chunks(rows: list[int]) -> list[list[int]]:
    return [rows[i : i + _ROWS] for i in range(0, len(rows), _ROWS)]


def _spans_by_child(spans: LinkSpans) -> dict[int, list[tuple[int, int, int]]]:
    out: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
    for c, p, a, b in zip(
        spans.child.tolist(), spans.parent.tolist(), spans.start.tolist(), spans.end.tolist(), strict=True
    ):
        out[c].append((a, b, p))
    return out


def _period_labels(first: date, last: date, by: str) -> list[str]:
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    if by == "day":
        return [d.isoformat() for d in days]
    months: list[str] = []
    for d in days:
        if not months or months[-1] != month_code(d):
            months.append(month_code(d))
    return months


def kwh_import_channels(session: Session, meter_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
    """Meter → (channel id, interval [s]) of its kWh import interval channel with the shortest
    interval (active channels only)."""
    out: dict[int, tuple[int, int]] = {}
    for i in range(0, len(meter_ids), CHUNK):
        stmt = (
            select(Channel.meter_id, Channel.id, ReadingType.interval_s)
            .join(ReadingType, ReadingType.id == Channel.reading_type_id)
            .where(
                Channel.meter_id.in_(meter_ids[i : i + CHUNK]),
                Channel.active.is_(True),
                ReadingType.unit == "kWh",
                ReadingType.direction == "import",
                ReadingType.interval_s.is_not(None),
            )
            .order_by(Channel.meter_id, ReadingType.interval_s, Channel.id)
        )
        for meter, cid, interval in session.execute(stmt).all():
            out.setdefault(int(meter), (int(cid), int(interval or 0)))
    return out
