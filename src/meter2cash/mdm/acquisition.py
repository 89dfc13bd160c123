"""Missed intervals closed automatically, and the read success of a day.

After a collection window, :func:`find_gaps` lists the intervals of every expected channel that
are missing in the measurement store, grouped into contiguous windows; :func:`request_reacquisition`
asks the head-end to read each window again (one ``reacquire`` command per channel and window,
idempotent, through the command store). The late data merges through ordinary ingest.
:func:`read_success` counts, per DCU, per feeder and for the fleet, the meters with complete
data for a local day against the AMISP target (98.5 % by default, a parameter).

A channel is expected when it is an active interval channel of a meter that is installed at a
service point or assigned as a boundary meter at that time; a meter marked ``installed`` with
neither record is expected over the whole window.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from meter2cash.core.errors import InvalidInput
from meter2cash.core.timeutil import ensure_aware, epoch_seconds, local_midnight
from meter2cash.db_query import CHUNK
from meter2cash.mdm.models import DCU, Channel, Installation, Meter, ReadingType
from meter2cash.mdm.network import boundary_spans, link_spans, node_codes
from meter2cash.mdm.network_models import BoundaryMeter
from meter2cash.mdm.store import MeasurementStore

#: The AMISP read-success target [% of meters with complete data for the day].
READ_SUCCESS_TARGET = Decimal("98.5")
#: The longest window searched for gaps at once.
MAX_GAP_WINDOW = timedelta(days=31)
#: Rows of a report with no DCU or no feeder.
UNASSIGNED = "(none)"
_ROWS = min(CHUNK, 2000)
#: Re-acquisition commands per meter and window at most: one that did not succeed (failed,
#: timed out, in doubt, cancelled) is followed by another until there are this many.
REACQUIRE_ROUNDS = 3


@dataclass(frozen=True, slots=True)
class Gap:
    """Missing intervals ``[start, end)`` of one channel (``intervals`` of them)."""

    meter_id: int
    meter: str
    channel_id: int
    channel: str
    start: datetime
    end: datetime
    intervals: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "meter": self.meter,
            "channel": self.channel,
            "from": iso(self.start),
            "to": iso(self.end),
            "intervals": self.intervals,
        }


def iso(ts: datetime) -> str:
    """``2026-10-01T00:15:00Z``: a UTC time in ISO 8601."""
    return ensure_aware(ts).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class _Expected:
    """Channels expected over a window, with the spans ``[a, b)`` (epoch seconds) they are due."""

    channel: list[int] = field(default_factory=list)
    meter: list[int] = field(default_factory=list)
    serial: list[str] = field(default_factory=list)
    code: list[str] = field(default_factory=list)
    interval: list[int] = field(default_factory=list)
    spans: list[list[tuple[int, int]]] = field(default_factory=list)


def _check_window(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    start, end = ensure_aware(start, "from"), ensure_aware(end, "to")
    if end <= start or end - start > MAX_GAP_WINDOW:
        raise InvalidInput(
            f"window {iso(start)}..{iso(end)} must be non-empty and at most {MAX_GAP_WINDOW.days} days",
            code="acquisition.window_invalid",
            field="to",
        )
    return start, end


def _meter_spans(session: Session, start: datetime, end: datetime) -> dict[int, list[tuple[int, int]]]:
    """Meter → the spans of ``[start, end)`` it is due to deliver data (epoch seconds)."""
    s0, s1 = epoch_seconds(start), epoch_seconds(end)
    out: dict[int, list[tuple[int, int]]] = defaultdict(list)

    def add(meter: int, a: datetime, b: datetime | None) -> None:
        lo, hi = max(s0, epoch_seconds(a)), s1 if b is None else min(s1, epoch_seconds(b))
        if lo < hi:
            out[meter].append((lo, hi))

    for m, a, b in session.execute(
        select(Installation.meter_id, Installation.installed_at, Installation.removed_at).where(
            Installation.installed_at < end,
            or_(Installation.removed_at.is_(None), Installation.removed_at > start),
        )
    ).all():
        add(m, a, b)
    for m, a, b in session.execute(
        select(BoundaryMeter.meter_id, BoundaryMeter.valid_from, BoundaryMeter.valid_to).where(
            BoundaryMeter.valid_from < end,
            or_(BoundaryMeter.valid_to.is_(None), BoundaryMeter.valid_to > start),
        )
    ).all():
        add(m, a, b)
    placed = select(Installation.meter_id).union(select(BoundaryMeter.meter_id))
    for (m,) in session.execute(select(Meter.id).where(Meter.status == "installed", Meter.id.not_in(placed))):
        out[m].append((s0, s1))
    return {m: _union(spans) for m, spans in out.items()}


def _union(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def _expected(session: Session, start: datetime, end: datetime) -> _Expected:
    spans = _meter_spans(session, start, end)
    out = _Expected()
    meters = sorted(spans)
    for i in range(0, len(meters), CHUNK):
        stmt = (
            select(Channel.id, Channel.meter_id, Meter.serial, ReadingType.code, ReadingType.interval_s)
            .join(Meter, Meter.id == Channel.meter_id)
            .join(ReadingType, ReadingType.id == Channel.reading_type_id)
            .where(
                Channel.meter_id.in_(meters[i : i + CHUNK]),
                Channel.active.is_(True),
                ReadingType.interval_s.is_not(None),
            )
            .order_by(Channel.meter_id, Channel.id)
        )
        for cid, mid, serial, code, interval in session.execute(stmt).all():
            out.channel.append(cid)
            out.meter.append(mid)
            out.serial.append(serial)
            out.code.append(code)
            out.interval.append(int(interval or 0))
            out.spans.append(spans[mid])
    return out


def _missing(
    session: Session, exp: _Expected, start: datetime, end: datetime
) -> list[tuple[int, int, npt.NDArray[np.int64], npt.NDArray[np.int64], int]]:
    """For every chunk of expected channels of one interval length: (row of ``exp``, interval,
    run starts, run ends in epoch seconds, intervals due) — missing runs, vectorised per chunk."""
    store = MeasurementStore(session)
    s0, s1 = epoch_seconds(start), epoch_seconds(end)
    groups: dict[int, list[int]] = defaultdict(list)
    for r, iv in enumerate(exp.interval):
        groups[iv].append(r)
    out = []
    for interval, rows in sorted(groups.items()):
        g0, g1 = s0 - s0 % interval, s1 + (-s1) % interval
        n = (g1 - g0) // interval
        starts = g0 + np.arange(n, dtype=np.int64) * interval
        for c in range(0, len(rows), _ROWS):
            part = rows[c : c + _ROWS]
            unique = sorted({exp.channel[r] for r in part})
            index = {ch: i for i, ch in enumerate(unique)}
            w = store.read_window(
                unique, datetime.fromtimestamp(g0, UTC), datetime.fromtimestamp(g1, UTC), interval
            )
            raw = w.raw[np.asarray([index[exp.channel[r]] for r in part], dtype=np.intp)]
            due = np.zeros((len(part), n), dtype=bool)
            for i, r in enumerate(part):
                for a, b in exp.spans[r]:
                    due[i] |= (starts >= a) & (starts < b) & (starts >= s0) & (starts < s1)
            missing = due & np.isnan(raw)
            padded = np.zeros((len(part), n + 2), dtype=np.int8)
            padded[:, 1:-1] = missing
            step = np.diff(padded, axis=1)
            run_row, run_first = np.nonzero(step == 1)
            _, run_stop = np.nonzero(step == -1)
            counts = due.sum(axis=1)
            for i, r in enumerate(part):
                sel = run_row == i
                out.append(
                    (r, interval, starts[run_first[sel]], g0 + run_stop[sel] * interval, int(counts[i]))
                )
    return out


def find_gaps(session: Session, window_start: datetime, window_end: datetime) -> list[Gap]:
    """The missing intervals of every expected channel in ``[window_start, window_end)``, one
    :class:`Gap` per contiguous run, by meter, channel and time.

    Raises :class:`InvalidInput` ``acquisition.window_invalid`` (empty, or over 31 days).
    """
    start, end = _check_window(window_start, window_end)
    exp = _expected(session, start, end)
    gaps: list[Gap] = []
    for r, _, firsts, stops, _ in _missing(session, exp, start, end):
        for a, b in zip(firsts.tolist(), stops.tolist(), strict=True):
            gaps.append(
                Gap(
                    exp.meter[r],
                    exp.serial[r],
                    exp.channel[r],
                    exp.code[r],
                    datetime.fromtimestamp(a, UTC),
                    datetime.fromtimestamp(b, UTC),
                    (b - a) // exp.interval[r],
                )
            )
    gaps.sort(key=lambda g: (g.meter, g.channel, g.start))
    return gaps


@dataclass(frozen=True, slots=True)
class Reacquisition:
    """A ``reacquire`` command issued (or found issued before) for one gap."""

    gap: Gap
    command_id: int
    status: str

    def to_dict(self) -> dict[str, Any]:
        return {**self.gap.to_dict(), "command_id": self.command_id, "status": self.status}


def request_reacquisition(
    session: Session,
    gaps: Sequence[Gap],
    *,
    requested_by: str = "acquisition",
    at: datetime,
    rounds: int = REACQUIRE_ROUNDS,
) -> list[Reacquisition]:
    """Re-acquisition commands for ``gaps`` through the command store: one per meter and window —
    a meter's block-load profile carries all its interval channels, so gaps of several channels
    over one window are one command (named by the first channel). The idempotency key is the
    meter and the window, so asking again for the same gap returns the command issued before
    while it is under way or was executed; one that failed, timed out, ended in doubt or was
    cancelled is followed by a new one (key ``…#2``, ``…#3``), up to ``rounds`` commands per
    window. Flushes, does not commit."""
    from meter2cash.mdm.commands.models import MeterCommand
    from meter2cash.mdm.commands.service import issue_many
    from meter2cash.mdm.commands.states import FINAL

    by_window: dict[str, list[Gap]] = {}
    for g in gaps:
        by_window.setdefault(f"reacq-m{g.meter_id}-{iso(g.start)}-{iso(g.end)}", []).append(g)
    names = [_round_key(k, r) for k in by_window for r in range(1, rounds + 1)]
    known: dict[str, tuple[int, str]] = {}
    for i in range(0, len(names), CHUNK):
        stmt = select(MeterCommand.idempotency_key, MeterCommand.id, MeterCommand.status).where(
            MeterCommand.idempotency_key.in_(names[i : i + CHUNK])
        )
        known.update((str(k), (int(c), str(st))) for k, c, st in session.execute(stmt))
    latest: dict[str, tuple[int, str]] = {}
    new: list[tuple[str, str]] = []  # (window key, the new command's key)
    for k in by_window:
        last = max((r for r in range(1, rounds + 1) if _round_key(k, r) in known), default=0)
        if last and (known[_round_key(k, last)][1] not in FINAL - {"executed"} or last == rounds):
            latest[k] = known[_round_key(k, last)]
        else:
            new.append((k, _round_key(k, last + 1)))
    rows = [
        {
            "kind": "reacquire",
            "meter_id": by_window[k][0].meter_id,
            "reason": "missed_intervals",
            "params": {
                "channel": min(g.channel for g in by_window[k]),
                "from": iso(by_window[k][0].start),
                "to": iso(by_window[k][0].end),
            },
            "idempotency_key": key,
            "requested_at": at,
        }
        for k, key in new
    ]
    for (k, _), cmd_id in zip(new, issue_many(session, rows, by=requested_by), strict=True):
        latest[k] = (cmd_id, "requested")
    return [Reacquisition(g, *latest[k]) for k, group in by_window.items() for g in group]


def _round_key(key: str, n: int) -> str:
    return key if n == 1 else f"{key}#{n}"


@dataclass(frozen=True, slots=True)
class SuccessRow:
    """Meters expected and meters with complete data at one DCU or feeder (or the fleet)."""

    level: str
    node: str
    expected: int
    complete: int
    share: float | None
    meets_target: bool

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


@dataclass(slots=True)
class ReadSuccess:
    """The read success of one local day: per DCU, per feeder and for the fleet."""

    day: date
    timezone: str
    target: Decimal
    dcus: list[SuccessRow]
    feeders: list[SuccessRow]
    total: SuccessRow

    def to_dict(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "timezone": self.timezone,
            "target": float(self.target),
            "dcus": [r.to_dict() for r in self.dcus],
            "feeders": [r.to_dict() for r in self.feeders],
            "total": self.total.to_dict(),
        }


def _success(level: str, node: str, expected: int, complete: int, target: Decimal) -> SuccessRow:
    share = None if not expected else round(100.0 * complete / expected, 2)
    return SuccessRow(
        level, node, expected, complete, share, share is not None and Decimal(str(share)) >= target
    )


def read_success(
    session: Session, day: date, *, tz: str, target: Decimal = READ_SUCCESS_TARGET
) -> ReadSuccess:
    """Per DCU and per feeder, the meters expected on local ``day`` and those whose every expected
    interval of the day is in the store, with their share [%] against ``target`` [%].

    A meter's DCU is its DCU at the day's start (from the hierarchy's history); its feeder is that
    of the transformer below which its service point hangs (a boundary meter: the node it
    measures), else that of its DCU's transformer.
    """
    if not Decimal(0) <= target <= Decimal(100):
        raise InvalidInput(
            f"target {target} must lie in 0..100", code="acquisition.bad_target", field="target"
        )
    start, end = local_midnight(day, tz), local_midnight(day + timedelta(days=1), tz)
    exp = _expected(session, start, end)
    incomplete: set[int] = set()
    for r, _, firsts, _, _ in _missing(session, exp, start, end):
        if firsts.size:
            incomplete.add(exp.meter[r])
    meters = sorted(set(exp.meter))
    dcu_of, feeder_of = _meter_nodes(session, meters, start)
    by_dcu: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_feeder: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    dcu_codes = node_codes(session, "dcu", dcu_of.values())
    feeder_codes = node_codes(session, "feeder", feeder_of.values())
    for m in meters:
        ok = int(m not in incomplete)
        for counts, code in (
            (by_dcu, dcu_codes.get(dcu_of.get(m, -1), UNASSIGNED)),
            (by_feeder, feeder_codes.get(feeder_of.get(m, -1), UNASSIGNED)),
        ):
            counts[code][0] += 1
            counts[code][1] += ok
    return ReadSuccess(
        day,
        str(tz),
        target,
        [_success("dcu", k, e, c, target) for k, (e, c) in sorted(by_dcu.items())],
        [_success("feeder", k, e, c, target) for k, (e, c) in sorted(by_feeder.items())],
        _success("fleet", "fleet", len(meters), len(meters) - len(incomplete & set(meters)), target),
    )


def _meter_nodes(session: Session, meters: list[int], at: datetime) -> tuple[dict[int, int], dict[int, int]]:
    """Meter → DCU id and meter → feeder id at time ``at``."""
    t = epoch_seconds(at)
    nxt = datetime.fromtimestamp(t + 1, UTC)
    dcu_of = link_spans(session, "meter_dcu", at, nxt).at(t)
    sp_dt = link_spans(session, "service_point_dt", at, nxt).at(t)
    dt_feeder = link_spans(session, "dt_feeder", at, nxt).at(t)
    feeder_of: dict[int, int] = {}
    wanted = set(meters)
    # the service point the meter is installed at: the latest installation begun by the day's end
    for m, sp in session.execute(
        select(Installation.meter_id, Installation.service_point_id)
        .where(Installation.installed_at <= at + timedelta(days=1))
        .where(or_(Installation.removed_at.is_(None), Installation.removed_at > at))
        .order_by(Installation.installed_at)
    ).all():
        if m in wanted and sp in sp_dt and sp_dt[sp] in dt_feeder:
            feeder_of[m] = dt_feeder[sp_dt[sp]]
    for kind in ("dt", "feeder"):
        b = boundary_spans(session, kind, at, at + timedelta(days=1))
        for m, node in zip(b.meter.tolist(), b.node.tolist(), strict=True):
            f = dt_feeder.get(node) if kind == "dt" else node
            if m in wanted and f is not None:
                feeder_of[m] = f
    dcu_dt: dict[int, int] = {
        d: t for d, t in session.execute(select(DCU.id, DCU.dt_id)).all() if t is not None
    }
    for m in meters:
        dt = dcu_dt.get(dcu_of.get(m, -1), -1)
        if m not in feeder_of and dt in dt_feeder:
            feeder_of[m] = dt_feeder[dt]
    return {m: d for m, d in dcu_of.items() if m in wanted}, feeder_of
