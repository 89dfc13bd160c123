"""Reading ingestion: a received file becomes IMD (raw batch), channel-days, register reads and events.

Ingestion is idempotent: a file is known by the SHA-256 of its bytes and a second copy changes
nothing. Inside a file, every bad record is reported with its line and field while the good ones
are stored. Formats: ``docs/formats.md``; parsers: :mod:`meter2cash.integration.formats`.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from meter2cash.bootstrap import Platform
from meter2cash.core.errors import M2CError, Problem
from meter2cash.core.timeutil import ensure_aware, utcnow
from meter2cash.db import transaction
from meter2cash.integration.formats.readings import (
    SECTION_READINGS,
    SECTION_REGISTERS,
    US_PER_S,
    ParsedReadings,
    parse_readings,
    problems_at,
)
from meter2cash.integration.formats.readings_checks import group_channel_days, last_wins, misaligned
from meter2cash.integration.outbox import emit
from meter2cash.mdm.models import Channel, Meter, MeterEvent, RawBatch, ReadingType, RegisterRead
from meter2cash.mdm.store import MeasurementStore

#: Problems kept in an :class:`IngestResult` (counts stay complete) and stored on the raw batch.
MAX_PROBLEMS, STORED_PROBLEMS = 10_000, 200
#: A reading more than this after receipt is refused (``ingest.future_timestamp``).
FUTURE_TOLERANCE = timedelta(days=1)
TOPIC = "readings.received"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CHUNK = 5000


def _at(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=int(us))


def _us(ts: datetime) -> int:
    return (ensure_aware(ts) - _EPOCH) // timedelta(microseconds=1)


@dataclass
class IngestResult:
    """What ingesting one file did. Interval counts are in intervals, ``registers``/``events`` in rows."""

    batch_id: int | None
    filename: str
    format: str
    duplicate_file: bool = False
    rows_total: int = 0
    rows_accepted: int = 0
    rows_rejected: int = 0
    intervals_new: int = 0
    intervals_duplicate: int = 0
    intervals_changed: int = 0
    channel_days_written: int = 0
    #: Register reads stored (new or replacing a different value).
    registers: int = 0
    registers_duplicate: int = 0
    registers_changed: int = 0
    events: int = 0
    events_duplicate: int = 0
    size_bytes: int = 0
    sha256: str = ""
    problems: list[Problem] = field(default_factory=list)
    #: A whole-file error (``ingest.bad_file`` …) when the file could not be ingested at all.
    error: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "problems"}
        out["problems"] = [p.to_dict() for p in self.problems]
        return out


@dataclass(slots=True)
class _ChannelInfo:
    channel_id: int
    interval_s: int  # 0 for register channels
    multiplier: float


def _resolve(
    session: Session, serials: Iterable[str]
) -> tuple[dict[str, int], dict[tuple[str, str], _ChannelInfo | str]]:
    """Meter ids by serial, and channels by ``(serial, code or OBIS)`` (a string = why not unique)."""
    meters: dict[str, int] = {}
    by_code: dict[tuple[str, str], _ChannelInfo | str] = {}
    by_obis: dict[tuple[str, str], list[tuple[str, _ChannelInfo]]] = {}
    serials = sorted(set(serials))
    for i in range(0, len(serials), _CHUNK):
        stmt = (
            select(
                Meter.id,
                Meter.serial,
                Channel.id,
                ReadingType.code,
                ReadingType.obis,
                ReadingType.interval_s,
                Channel.multiplier,
            )
            .select_from(Meter)
            .outerjoin(Channel, Channel.meter_id == Meter.id)
            .outerjoin(ReadingType, ReadingType.id == Channel.reading_type_id)
            .where(Meter.serial.in_(serials[i : i + _CHUNK]))
        )
        for mid, serial, cid, code, obis, interval_s, mult in session.execute(stmt):
            meters[serial] = mid
            if cid is None:
                continue
            info = _ChannelInfo(cid, int(interval_s or 0), float(mult if mult is not None else 1))
            by_code[(serial, code)] = info
            if obis:
                by_obis.setdefault((serial, obis), []).append((code, info))
    for key, found in by_obis.items():
        if key not in by_code:  # a reading-type code wins over an equal OBIS code
            by_code[key] = found[0][1] if len(found) == 1 else ", ".join(sorted(c for c, _ in found))
    return meters, by_code


def _problems(
    parsed: ParsedReadings, mask: npt.NDArray[np.bool_], column: str, code: str, messages: Any
) -> list[Problem]:
    """Problems for the frame rows in ``mask``; ``messages`` is one text or one per frame row."""
    rows = np.flatnonzero(mask)
    if not len(rows):
        return []
    lines, fields = parsed.locate(rows, column)
    msgs = messages if isinstance(messages, str) else [messages[i] for i in rows]
    return problems_at(lines, fields, code, msgs, parsed.source)


def ingest_bytes(
    session: Session,
    data: bytes,
    *,
    filename: str = "",
    source: str = "",
    fmt: str | None = None,
    received_at: datetime | None = None,
) -> IngestResult:
    """Ingest one reading file in the caller's transaction (this function never commits).

    Raises :class:`M2CError` ``ingest.bad_file`` when the file as a whole cannot be read; bad
    records are reported in :attr:`IngestResult.problems` and the good ones are stored.
    """
    received = ensure_aware(received_at, "received_at") if received_at else utcnow()
    sha = hashlib.sha256(data).hexdigest()
    known = session.execute(
        select(RawBatch.id, RawBatch.format, RawBatch.rows_total).where(RawBatch.sha256 == sha)
    ).first()
    if known is not None:
        return IngestResult(
            known.id,
            filename,
            known.format,
            duplicate_file=True,
            rows_total=known.rows_total,
            size_bytes=len(data),
            sha256=sha,
        )
    parsed = parse_readings(data, fmt, filename=filename)
    batch = RawBatch(
        sha256=sha,
        source=(source or parsed.declared_source)[:200],
        filename=filename[-500:],
        format=parsed.format,
        received_at=received,
        size_bytes=len(data),
        payload=gzip.compress(data, compresslevel=3),
    )
    session.add(batch)
    session.flush()
    res = IngestResult(
        batch.id, filename, parsed.format, rows_total=parsed.rows_total, size_bytes=len(data), sha256=sha
    )
    problems = list(parsed.problems)
    rejected = parsed.rows_rejected
    f = parsed.frame
    meters, channels = _resolve(session, [*f["meter"].unique().tolist(), *(e.meter for e in parsed.events)])

    # --- resolve every distinct (meter, channel) pair once, then broadcast to rows -------------
    m_codes, m_uniq = pd.factorize(f["meter"])
    c_codes, c_uniq = pd.factorize(f["channel"])
    pair_codes, pair_uniq = pd.factorize(m_codes.astype(np.int64) * max(len(c_uniq), 1) + c_codes)
    pairs = [(str(m_uniq[u // max(len(c_uniq), 1)]), str(c_uniq[u % max(len(c_uniq), 1)])) for u in pair_uniq]
    n_pairs = len(pairs)
    p_ch = np.zeros(n_pairs, np.int64)
    p_int = np.zeros(n_pairs, np.int64)
    p_mult = np.ones(n_pairs)
    p_state = np.zeros(n_pairs, np.int8)  # 0 ok, 1 unknown meter, 2 unknown channel
    p_msg: list[str] = [""] * n_pairs
    for k, (serial, chan) in enumerate(pairs):
        info = channels.get((serial, chan))
        if serial not in meters:
            p_state[k], p_msg[k] = 1, f"meter {serial!r} is not known"
        elif isinstance(info, _ChannelInfo):
            p_ch[k], p_int[k], p_mult[k] = info.channel_id, info.interval_s, info.multiplier
        else:
            p_state[k] = 2
            p_msg[k] = (
                f"OBIS code {chan!r} matches several channels of meter {serial!r} ({info}); "
                "use the reading-type code"
                if info
                else f"meter {serial!r} has no channel {chan!r}"
            )
    state, msg_rows = p_state[pair_codes], np.array(p_msg, dtype=object)[pair_codes]
    interval = p_int[pair_codes]
    section = f["section"].to_numpy()
    declared = f["interval_s"].to_numpy()
    ok = state == 0
    wrong_kind = ok & (
        ((section == SECTION_READINGS) & (interval == 0)) | ((section == SECTION_REGISTERS) & (interval > 0))
    )
    mismatch = ok & ~wrong_kind & (declared > 0) & (declared != interval)
    ts = f["ts_us"].to_numpy() + np.maximum(f["step"].to_numpy(), 0) * interval * US_PER_S
    bad_grid = ok & ~wrong_kind & ~mismatch & misaligned(ts, interval)
    future = ok & (ts > _us(received + FUTURE_TOLERANCE))
    kind_msg = np.where(
        section == SECTION_READINGS,
        "interval blocks need an interval channel",
        "register reads need a register channel",
    )
    for mask, col, code, msgs in (
        (state == 1, "meter", "ingest.unknown_meter", msg_rows),
        (state == 2, "channel", "ingest.unknown_channel", msg_rows),
        (wrong_kind, "channel", "ingest.wrong_channel_kind", kind_msg),
        (
            mismatch,
            "interval_s",
            "ingest.interval_mismatch",
            "interval_s differs from the channel's interval",
        ),
        (bad_grid, "ts_us", "ingest.misaligned_timestamp", "not on the channel's interval grid (UTC)"),
        (future, "ts_us", "ingest.future_timestamp", "more than 1 day after the file was received"),
    ):
        problems += _problems(parsed, mask, col, code, msgs)
    good = ok & ~wrong_kind & ~mismatch & ~bad_grid & ~future
    rejected += int((~good).sum())

    # --- in-file repeats: the last one wins, an earlier different value is reported ------------
    values = f["value"].to_numpy() * p_mult[pair_codes]
    rows = np.flatnonzero(good & ~np.isnan(values))
    order, winner, conflict = last_wins(p_ch[pair_codes][rows], ts[rows], values[rows])
    conflict_mask = np.zeros(len(f), bool)
    conflict_mask[rows[order[conflict]]] = True
    problems += _problems(
        parsed,
        conflict_mask,
        "value",
        "ingest.conflict_in_file",
        "the same channel and time appear again later in the file with another value",
    )
    rejected += int(conflict.sum())
    keep = rows[order[winner]]
    is_interval = interval[keep] > 0
    iv, rg = keep[is_interval], keep[~is_interval]

    ch_of_row = p_ch[pair_codes]
    received_days = group_channel_days(ch_of_row[iv], ts[iv], values[iv], interval[iv])
    interval_of = {int(c): int(i) for c, i in zip(ch_of_row[iv], interval[iv], strict=True)}
    counts = MeasurementStore(session).merge(received_days, interval_of, batch_id=batch.id)
    res.intervals_new, res.intervals_changed = counts.new, counts.changed
    res.intervals_duplicate, res.channel_days_written = counts.duplicate, counts.days_written
    _store_registers(session, res, batch.id, ch_of_row[rg], ts[rg], values[rg], f["quality"].to_numpy()[rg])
    rejected += _store_events(session, res, batch.id, parsed, meters, problems, received)

    problems.sort(key=lambda p: (p.line if p.line is not None else -1, p.field or ""))
    if len(problems) > MAX_PROBLEMS:
        more = len(problems) - MAX_PROBLEMS
        problems = problems[:MAX_PROBLEMS]
        problems.append(
            Problem("ingest.too_many_problems", f"{more} more problems not listed", source=filename)
        )
    res.problems = problems
    res.rows_rejected = rejected
    res.rows_accepted = res.rows_total - rejected
    session.execute(
        update(RawBatch)
        .where(RawBatch.id == batch.id)
        .values(
            rows_total=res.rows_total,
            rows_accepted=res.rows_accepted,
            rows_rejected=rejected,
            rows_duplicate=res.intervals_duplicate + res.registers_duplicate + res.events_duplicate,
            rows_changed=res.intervals_changed + res.registers_changed,
            problems=[p.to_dict() for p in problems[:STORED_PROBLEMS]],
        )
    )
    summary = {k: v for k, v in res.to_dict().items() if k not in ("problems", "error", "duplicate_file")}
    emit(session, TOPIC, {**summary, "source": batch.source}, key=str(batch.id))
    return res


def _store_registers(
    session: Session,
    res: IngestResult,
    batch_id: int,
    channel_id: npt.NDArray[np.int64],
    ts_us: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    quality: npt.NDArray[np.int64],
) -> None:
    """Insert new register reads; a repeat is a duplicate, a different value replaces the stored one."""
    if not len(channel_id):
        return
    existing: dict[tuple[int, int], tuple[int, float]] = {}
    ids = sorted(set(channel_id.tolist()))
    lo, hi = _at(int(ts_us.min())), _at(int(ts_us.max()))
    for i in range(0, len(ids), _CHUNK):
        stmt = select(
            RegisterRead.id, RegisterRead.channel_id, RegisterRead.read_at, RegisterRead.value
        ).where(RegisterRead.channel_id.in_(ids[i : i + _CHUNK]), RegisterRead.read_at.between(lo, hi))
        for rid, cid, at, val in session.execute(stmt):
            existing[(cid, _us(at))] = (rid, val)
    new: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    for cid, us, val, q in zip(
        channel_id.tolist(), ts_us.tolist(), values.tolist(), quality.tolist(), strict=True
    ):
        old = existing.get((cid, us))
        if old is None:
            new.append(
                {"channel_id": cid, "read_at": _at(us), "value": val, "quality": q, "batch_id": batch_id}
            )
        elif abs(old[1] - val) <= 1e-9:
            res.registers_duplicate += 1
        else:
            changed.append({"id": old[0], "value": val, "quality": q, "batch_id": batch_id})
    if new:
        session.execute(insert(RegisterRead), new)
    if changed:
        session.execute(update(RegisterRead), changed)
    res.registers, res.registers_changed = len(new) + len(changed), len(changed)


def _store_events(
    session: Session,
    res: IngestResult,
    batch_id: int,
    parsed: ParsedReadings,
    meters: dict[str, int],
    problems: list[Problem],
    received: datetime,
) -> int:
    """Insert meter events not stored yet; returns how many event items were rejected."""
    src = parsed.source or None
    todo: dict[tuple[int, int, str], dict[str, Any]] = {}
    rejected = 0
    limit = _us(received + FUTURE_TOLERANCE)
    for e in parsed.events:
        where = f"events[{e.line}]"
        if e.meter not in meters:
            problems.append(
                Problem(
                    "ingest.unknown_meter", f"meter {e.meter!r} is not known", e.line, f"{where}.meter", src
                )
            )
        elif e.occurred_at_us > limit:
            problems.append(
                Problem(
                    "ingest.future_timestamp",
                    "more than 1 day after the file was received",
                    e.line,
                    f"{where}.occurred_at",
                    src,
                )
            )
        else:
            key = (meters[e.meter], e.occurred_at_us, e.code)
            todo[key] = {
                "meter_id": key[0],
                "occurred_at": _at(key[1]),
                "code": e.code,
                "category": e.category,
                "description": e.description,
                "data": e.data,
                "batch_id": batch_id,
            }
            continue
        rejected += 1
    if not todo:
        return rejected
    ids = sorted({k[0] for k in todo})
    lo, hi = _at(min(k[1] for k in todo)), _at(max(k[1] for k in todo))
    stmt = select(MeterEvent.meter_id, MeterEvent.occurred_at, MeterEvent.code).where(
        MeterEvent.meter_id.in_(ids), MeterEvent.occurred_at.between(lo, hi)
    )
    seen = {(m, _us(at), c) for m, at, c in session.execute(stmt)}
    new = [row for key, row in todo.items() if key not in seen]
    if new:
        session.execute(insert(MeterEvent), new)
    res.events, res.events_duplicate = len(new), len(parsed.events) - rejected - len(new)
    return rejected


#: Concurrent writers of the same channel-days (another worker, another copy of the file) make a
#: transaction fail on a unique key or a lock; the whole ingest is then simply run again.
RETRY_ATTEMPTS = 4


def ingest_committed(
    platform: Platform, data: bytes, *, filename: str = "", source: str = "", fmt: str | None = None
) -> IngestResult:
    """Ingest ``data`` in a transaction of its own and commit it, retrying on a concurrent writer.

    A retry is safe: the failed attempt rolled back entirely, and ingest is idempotent, so the next
    attempt merges into (or recognises as duplicates) what the other writer committed.
    Raises :class:`M2CError` for a file that cannot be ingested at all.
    """
    for attempt in range(RETRY_ATTEMPTS):
        try:
            with transaction(platform.sessions) as session:
                return ingest_bytes(session, data, filename=filename, source=source, fmt=fmt)
        except (IntegrityError, OperationalError):
            if attempt == RETRY_ATTEMPTS - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


def ingest_paths(
    platform: Platform,
    paths: Iterable[Path | str],
    *,
    source: str = "",
    on_progress: Callable[[Path, IngestResult], None] | None = None,
) -> list[IngestResult]:
    """Ingest files one transaction each (this function commits), so a bad file never loses another's data.

    A file that cannot be ingested at all gets a result with :attr:`IngestResult.error` set.
    """
    results: list[IngestResult] = []
    for raw_path in paths:
        path = Path(raw_path)
        try:
            result = ingest_committed(platform, path.read_bytes(), filename=path.name, source=source)
        except M2CError as exc:
            result = IngestResult(None, path.name, "", error=exc.to_dict())
        except OSError as exc:
            error = {"code": "ingest.unreadable_file", "message": str(exc), "data": {}}
            result = IngestResult(None, path.name, "", error=error)
        result.filename = str(path)
        results.append(result)
        if on_progress is not None:
            on_progress(path, result)
    return results
