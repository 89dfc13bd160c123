"""Reading ingestion: a received file becomes IMD (raw batch), channel-days, register reads and events.

Ingestion is idempotent per accepted reading. A file is known by the SHA-256 of its bytes and kept
once; the raw batch records which of its readings were accepted. Receiving the same bytes again
stores only the readings that were refused before and are valid now (the meter has been loaded
since, the limits changed…) and changes nothing else; when every reading was accepted before, the
answer is *already ingested*. Inside a file, every bad record is reported with its line and field
while the good ones are stored. Formats: ``docs/formats.md``; parsers:
:mod:`meter2cash.mdm.formats`.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
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
from sqlalchemy.orm import Session, sessionmaker
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_incrementing

from meter2cash.core.errors import M2CError, Problem
from meter2cash.core.timeutil import FIRST_DATE, ensure_aware, utcnow
from meter2cash.db import transaction
from meter2cash.events.outbox import emit
from meter2cash.mdm.formats.readings import parse_readings
from meter2cash.mdm.formats.readings_checks import (
    group_channel_days,
    last_wins,
    misaligned,
    outside_periods,
)
from meter2cash.mdm.formats.readings_parsed import (
    SECTION_READINGS,
    SECTION_REGISTERS,
    US_PER_S,
    ParsedReadings,
    problems_at,
)
from meter2cash.mdm.models import (
    Channel,
    Installation,
    Meter,
    MeterEvent,
    RawBatch,
    ReadingType,
    RegisterRead,
)
from meter2cash.mdm.reading_limits import ReadingLimits, current_limits
from meter2cash.mdm.store import MeasurementStore

#: Problems kept in an :class:`IngestResult` (counts stay complete) and stored on the raw batch.
MAX_PROBLEMS, STORED_PROBLEMS = 10_000, 200
#: A reading more than this after receipt is refused (``ingest.future_timestamp``).
FUTURE_TOLERANCE = timedelta(days=1)
TOPIC = "readings.received"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Nothing before the platform's first date is a reading (``ingest.timestamp_out_of_range``).
_FLOOR_US = (datetime(FIRST_DATE.year, FIRST_DATE.month, FIRST_DATE.day, tzinfo=UTC) - _EPOCH) // timedelta(
    microseconds=1
)
_CHUNK = 5000


def _at(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=int(us))


def _us(ts: datetime) -> int:
    return (ensure_aware(ts) - _EPOCH) // timedelta(microseconds=1)


def _iso(us: int) -> str:
    return _at(us).isoformat().replace("+00:00", "Z")


@dataclass
class IngestResult:
    """What ingesting one file did. Interval counts are in intervals, ``registers``/``events`` in rows."""

    batch_id: int | None
    filename: str
    format: str
    #: *Already ingested*: the same bytes were received before and every reading was accepted then.
    duplicate_file: bool = False
    #: The same bytes were received before (the raw batch is kept once).
    resent: bool = False
    rows_total: int = 0
    #: Rows accepted, by this receipt or (``rows_already_accepted``) by an earlier one of the same bytes.
    rows_accepted: int = 0
    rows_already_accepted: int = 0
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
    #: The version of the plausibility limits the values were checked against.
    limits_version: str = ""
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
    code: str
    unit: str
    accumulation: str


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
                ReadingType.unit,
                ReadingType.accumulation,
            )
            .select_from(Meter)
            .outerjoin(Channel, Channel.meter_id == Meter.id)
            .outerjoin(ReadingType, ReadingType.id == Channel.reading_type_id)
            .where(Meter.serial.in_(serials[i : i + _CHUNK]))
        )
        for mid, serial, cid, code, obis, interval_s, mult, unit, acc in session.execute(stmt):
            meters[serial] = mid
            if cid is None:
                continue
            info = _ChannelInfo(
                cid, int(interval_s or 0), float(mult if mult is not None else 1), code, unit, acc
            )
            by_code[(serial, code)] = info
            if obis:
                by_obis.setdefault((serial, obis), []).append((code, info))
    for key, found in by_obis.items():
        if key not in by_code:  # a reading-type code wins over an equal OBIS code
            by_code[key] = found[0][1] if len(found) == 1 else ", ".join(sorted(c for c, _ in found))
    return meters, by_code


def _installations(session: Session, meter_ids: Iterable[int]) -> dict[int, list[tuple[int, int]]]:
    """Installation periods ``[installed, removed)`` in epoch µs of each meter that has any."""
    ids = sorted(set(meter_ids))
    out: dict[int, list[tuple[int, int]]] = {}
    for i in range(0, len(ids), _CHUNK):
        stmt = select(Installation.meter_id, Installation.installed_at, Installation.removed_at).where(
            Installation.meter_id.in_(ids[i : i + _CHUNK])
        )
        for mid, since, until in session.execute(stmt):
            end = _us(until) if until is not None else np.iinfo(np.int64).max
            out.setdefault(mid, []).append((_us(since), end))
    return {m: sorted(p) for m, p in out.items()}


def _periods_text(periods: list[tuple[int, int]]) -> str:
    shown = [
        f"since {_iso(a)}" if b == np.iinfo(np.int64).max else f"{_iso(a)} .. {_iso(b)}"
        for a, b in periods[:3]
    ]
    return "; ".join(shown) + ("; …" if len(periods) > 3 else "")


def _problems(
    parsed: ParsedReadings, mask: npt.NDArray[np.bool_], column: str, code: str, messages: Any
) -> list[Problem]:
    """Problems for the frame rows in ``mask``; ``messages`` is one text or gives the text of a
    frame row (called for the rows in ``mask`` only)."""
    rows = np.flatnonzero(mask)
    if not len(rows):
        return []
    lines, fields = parsed.locate(rows, column)
    msgs = messages if isinstance(messages, str) else [messages(i) for i in rows.tolist()]
    return problems_at(lines, fields, code, msgs, parsed.source)


@dataclass(slots=True)
class _Rows:
    """The frame rows after resolution: per row channel, interval, time [µs] and value (with the
    multiplier), and which rows passed every check (``good``)."""

    channel_id: npt.NDArray[np.int64]
    interval_s: npt.NDArray[np.int64]
    ts_us: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    good: npt.NDArray[np.bool_]


def _check_rows(
    session: Session,
    parsed: ParsedReadings,
    meters: dict[str, int],
    channels: dict[tuple[str, str], _ChannelInfo | str],
    fresh: npt.NDArray[np.bool_],
    received: datetime,
    limits: ReadingLimits,
    problems: list[Problem],
) -> _Rows:
    """Resolve every distinct (meter, channel) pair once, broadcast it to the rows, and run the
    checks column-wise. Only ``fresh`` rows (not accepted by an earlier receipt) are checked; each
    refused row gets one problem, from the first check it fails."""
    f = parsed.frame
    m_codes, m_uniq = pd.factorize(f["meter"])
    c_codes, c_uniq = pd.factorize(f["channel"])
    width = max(len(c_uniq), 1)
    pair_codes, pair_uniq = pd.factorize(m_codes.astype(np.int64) * width + c_codes)
    pairs = [(str(m_uniq[u // width]), str(c_uniq[u % width])) for u in pair_uniq]
    installed = _installations(session, (meters[s] for s, _ in pairs if s in meters))
    n_pairs = len(pairs)
    p_ch, p_int, p_meter = (
        np.zeros(n_pairs, np.int64),
        np.zeros(n_pairs, np.int64),
        np.zeros(n_pairs, np.int64),
    )
    p_mult, p_lo, p_hi = np.ones(n_pairs), np.full(n_pairs, -np.inf), np.full(n_pairs, np.inf)
    p_state = np.zeros(n_pairs, np.int8)  # 0 ok, 1 unknown meter, 2 unknown channel
    p_msg: list[str] = [""] * n_pairs
    p_where: list[str] = [""] * n_pairs
    p_info: list[_ChannelInfo | None] = [None] * n_pairs
    for k, (serial, chan) in enumerate(pairs):  # one step per distinct (meter, channel) of the file
        info = channels.get((serial, chan))
        if serial not in meters:
            p_state[k], p_msg[k] = 1, f"meter {serial!r} is not known"
        elif isinstance(info, _ChannelInfo):
            p_ch[k], p_int[k], p_mult[k], p_info[k] = info.channel_id, info.interval_s, info.multiplier, info
            p_lo[k], p_hi[k] = limits.bounds(info.code, info.unit, info.interval_s or None, info.accumulation)
            p_meter[k] = meters[serial]
            if meters[serial] in installed:
                p_where[k] = (
                    f"meter {serial!r} was not installed then (installed "
                    f"{_periods_text(installed[meters[serial]])})"
                )
        else:
            p_state[k] = 2
            p_msg[k] = (
                f"OBIS code {chan!r} matches several channels of meter {serial!r} ({info}); "
                "use the reading-type code"
                if info
                else f"meter {serial!r} has no channel {chan!r}"
            )
    state, interval = p_state[pair_codes], p_int[pair_codes]
    section = f["section"].to_numpy()
    declared = f["interval_s"].to_numpy()
    ts = f["ts_us"].to_numpy() + np.maximum(f["step"].to_numpy(), 0) * interval * US_PER_S
    values = f["value"].to_numpy() * p_mult[pair_codes]
    is_reg = interval == 0
    outside = np.zeros(len(f), bool)
    if installed:  # an interval covers [ts, ts + interval); a register read is the instant ts
        lo_us = np.where(is_reg, ts - 1, ts)
        hi_us = np.where(is_reg, ts + 1, ts + interval * US_PER_S)
        outside = outside_periods(p_meter[pair_codes], lo_us, hi_us, installed)
    lo, hi = p_lo[pair_codes], p_hi[pair_codes]
    with np.errstate(invalid="ignore"):
        implausible = ~np.isnan(f["value"].to_numpy()) & ~((values >= lo) & (values <= hi))
    checks: list[tuple[npt.NDArray[np.bool_], str, str, Any]] = [
        (state == 1, "meter", "ingest.unknown_meter", lambda r: p_msg[pair_codes[r]]),
        (state == 2, "channel", "ingest.unknown_channel", lambda r: p_msg[pair_codes[r]]),
        (
            ((section == SECTION_READINGS) & is_reg) | ((section == SECTION_REGISTERS) & ~is_reg),
            "channel",
            "ingest.wrong_channel_kind",
            lambda r: (
                "interval blocks need an interval channel"
                if section[r] == SECTION_READINGS
                else "register reads need a register channel"
            ),
        ),
        (
            (declared > 0) & (declared != interval),
            "interval_s",
            "ingest.interval_mismatch",
            "interval_s differs from the channel's interval",
        ),
        (ts < _FLOOR_US, "ts_us", "ingest.timestamp_out_of_range", f"before {FIRST_DATE.isoformat()}"),
        (
            ts > _us(received + FUTURE_TOLERANCE),
            "ts_us",
            "ingest.future_timestamp",
            "more than 1 day after the file was received",
        ),
        (
            outside,
            "ts_us",
            "ingest.outside_installation",
            lambda r: p_where[pair_codes[r]],
        ),
        (
            misaligned(ts, interval),
            "ts_us",
            "ingest.misaligned_timestamp",
            "not on the channel's interval grid (UTC)",
        ),
        (implausible, "value", "ingest.implausible_value", None),
    ]
    pending = fresh.copy()
    for mask, col, code, msgs in checks:
        claimed = mask & pending
        if not claimed.any():
            continue
        pending &= ~claimed
        if msgs is None:
            problems += _implausible(parsed, claimed, values, lo, hi, pair_codes, p_info, limits.version)
            continue
        problems += _problems(parsed, claimed, col, code, msgs)
    return _Rows(p_ch[pair_codes], interval, ts, values, pending)


def _implausible(
    parsed: ParsedReadings,
    mask: npt.NDArray[np.bool_],
    values: npt.NDArray[np.float64],
    lo: npt.NDArray[np.float64],
    hi: npt.NDArray[np.float64],
    pair_codes: npt.NDArray[np.intp],
    infos: list[_ChannelInfo | None],
    version: str,
) -> list[Problem]:
    """``ingest.implausible_value`` for the rows in ``mask``, naming the range and its version."""
    rows = np.flatnonzero(mask)
    lines, fields = parsed.locate(rows, "value")
    msgs: list[str] = []
    data: list[dict[str, Any]] = []
    for r in rows.tolist():  # refused rows only
        info = infos[pair_codes[r]]
        unit, code = (info.unit, info.code) if info is not None else ("", "")
        msgs.append(
            f"{values[r]:g} {unit} is outside {lo[r]:g} .. {hi[r]:g} {unit}, the plausible range of "
            f"{code} (reading limits {version})"
        )
        data.append({"min": float(lo[r]), "max": float(hi[r]), "limits_version": version})
    return problems_at(lines, fields, "ingest.implausible_value", msgs, parsed.source, data)


def _accepted_before(stored: bytes | None, n_rows: int) -> npt.NDArray[np.bool_] | None:
    """The rows an earlier receipt accepted, or ``None`` when not recorded for these rows."""
    if stored is None or len(stored) != (n_rows + 7) // 8:
        return None
    return np.unpackbits(np.frombuffer(stored, np.uint8), count=n_rows).astype(bool)


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
    records are reported in :attr:`IngestResult.problems` and the good ones are stored. The same
    bytes received again store only the readings not accepted before (see the module docs).
    """
    received = ensure_aware(received_at, "received_at") if received_at else utcnow()
    sha = hashlib.sha256(data).hexdigest()
    known = session.execute(
        select(RawBatch.id, RawBatch.format, RawBatch.rows_total, RawBatch.rows_rejected, RawBatch.accepted)
        .where(RawBatch.sha256 == sha)
        .with_for_update()
    ).first()
    if known is not None and known.rows_rejected == 0:  # every reading was accepted before
        session.execute(
            update(RawBatch)
            .where(RawBatch.id == known.id)
            .values(receipts=RawBatch.receipts + 1, last_received_at=received)
        )
        n = known.rows_total
        return IngestResult(
            known.id,
            filename,
            known.format,
            duplicate_file=True,
            resent=True,
            rows_total=n,
            rows_accepted=n,
            rows_already_accepted=n,
            size_bytes=len(data),
            sha256=sha,
        )
    parsed = parse_readings(data, fmt, filename=filename)
    f = parsed.frame
    if known is None:
        batch = RawBatch(
            sha256=sha,
            source=(source or parsed.declared_source)[:200],
            filename=filename[-500:],
            format=parsed.format,
            received_at=received,
            last_received_at=received,
            size_bytes=len(data),
            payload=gzip.compress(data, compresslevel=3),
        )
        session.add(batch)
        session.flush()
        batch_id = batch.id
        before: npt.NDArray[np.bool_] | None = np.zeros(len(f), bool)
    else:
        batch_id = known.id
        before = _accepted_before(known.accepted, len(f))
    # a batch stored before acceptance was recorded per reading: its re-send only fills what is empty
    keep_stored = before is None
    already = np.zeros(len(f), bool) if before is None else before
    limits = current_limits(session)
    res = IngestResult(
        batch_id,
        filename,
        parsed.format,
        resent=known is not None,
        rows_total=parsed.rows_total,
        size_bytes=len(data),
        sha256=sha,
        limits_version=limits.version,
    )
    problems = list(parsed.problems)
    meters, channels = _resolve(session, [*f["meter"].unique().tolist(), *(e.meter for e in parsed.events)])
    rows = _check_rows(session, parsed, meters, channels, ~already, received, limits, problems)
    rejected = parsed.rows_rejected + int((~already & ~rows.good).sum())

    # --- in-file repeats: the last one wins, an earlier different value is reported ------------
    # (readings accepted by an earlier receipt take part, so a re-send resolves repeats the same way)
    cand = np.flatnonzero((rows.good | already) & ~np.isnan(rows.values))
    order, winner, conflict = last_wins(rows.channel_id[cand], rows.ts_us[cand], rows.values[cand])
    conflict_mask = np.zeros(len(f), bool)
    conflict_mask[cand[order[conflict]]] = True
    conflict_mask &= ~already
    problems += _problems(
        parsed,
        conflict_mask,
        "value",
        "ingest.conflict_in_file",
        "the same channel and time appear again later in the file with another value",
    )
    rejected += int(conflict_mask.sum())
    keep = cand[order[winner]]
    keep = keep[~already[keep]]
    is_interval = rows.interval_s[keep] > 0
    iv, rg = keep[is_interval], keep[~is_interval]

    received_days = group_channel_days(
        rows.channel_id[iv], rows.ts_us[iv], rows.values[iv], rows.interval_s[iv]
    )
    chans, first_row = np.unique(rows.channel_id[iv], return_index=True)  # one entry per channel
    interval_of = dict(zip(chans.tolist(), rows.interval_s[iv][first_row].tolist(), strict=True))
    counts = MeasurementStore(session).merge(
        received_days, interval_of, batch_id=batch_id, keep_stored=keep_stored
    )
    res.intervals_new, res.intervals_changed = counts.new, counts.changed
    res.intervals_duplicate, res.channel_days_written = counts.duplicate, counts.days_written
    quality = f["quality"].to_numpy()[rg]
    _store_registers(
        session, res, batch_id, rows.channel_id[rg], rows.ts_us[rg], rows.values[rg], quality, keep_stored
    )
    rejected += _store_events(session, res, batch_id, parsed, meters, problems, received)

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
    res.rows_already_accepted = int(already.sum())
    accepted = already | (rows.good & ~conflict_mask)
    session.execute(
        update(RawBatch)
        .where(RawBatch.id == batch_id)
        .values(
            rows_total=res.rows_total,
            rows_accepted=res.rows_accepted,
            rows_rejected=rejected,
            rows_duplicate=RawBatch.rows_duplicate
            + res.intervals_duplicate
            + res.registers_duplicate
            + res.events_duplicate,
            rows_changed=RawBatch.rows_changed + res.intervals_changed + res.registers_changed,
            problems=[p.to_dict() for p in problems[:STORED_PROBLEMS]],
            accepted=np.packbits(accepted).tobytes(),
            receipts=RawBatch.receipts + (1 if known is not None else 0),
            last_received_at=received,
        )
    )
    summary = {k: v for k, v in res.to_dict().items() if k not in ("problems", "error", "duplicate_file")}
    source_name = session.scalar(select(RawBatch.source).where(RawBatch.id == batch_id))
    emit(session, TOPIC, {**summary, "source": source_name}, key=str(batch_id))
    return res


def _store_registers(
    session: Session,
    res: IngestResult,
    batch_id: int,
    channel_id: npt.NDArray[np.int64],
    ts_us: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    quality: npt.NDArray[np.int64],
    keep_stored: bool = False,
) -> None:
    """Insert new register reads; a repeat is a duplicate, a different value replaces the stored one
    (unless ``keep_stored``: then a stored read is kept and counted as a duplicate)."""
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
        elif keep_stored or abs(old[1] - val) <= 1e-9:
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
        elif e.occurred_at_us < _FLOOR_US:
            problems.append(
                Problem(
                    "ingest.timestamp_out_of_range",
                    f"before {FIRST_DATE.isoformat()}",
                    e.line,
                    f"{where}.occurred_at",
                    src,
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
#: transaction fail on a unique key or a lock; the whole ingest is then simply run again, after
#: 0.05 s, 0.1 s, 0.15 s.
RETRY_ATTEMPTS = 4


@retry(
    retry=retry_if_exception_type((IntegrityError, OperationalError)),
    stop=stop_after_attempt(RETRY_ATTEMPTS),
    wait=wait_incrementing(start=0.05, increment=0.05),
    reraise=True,
)
def ingest_committed(
    sessions: sessionmaker[Session],
    data: bytes,
    *,
    filename: str = "",
    source: str = "",
    fmt: str | None = None,
) -> IngestResult:
    """Ingest ``data`` in a transaction of its own and commit it, retrying on a concurrent writer.

    A retry is safe: the failed attempt rolled back entirely, and ingest is idempotent, so the next
    attempt merges into (or recognises as duplicates) what the other writer committed. After
    :data:`RETRY_ATTEMPTS` the last error is raised. Raises :class:`M2CError` for a file that cannot
    be ingested at all (not retried).
    """
    with transaction(sessions) as session:
        return ingest_bytes(session, data, filename=filename, source=source, fmt=fmt)


def ingest_paths(
    sessions: sessionmaker[Session],
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
            result = ingest_committed(sessions, path.read_bytes(), filename=path.name, source=source)
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
