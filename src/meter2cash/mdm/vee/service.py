"""The VEE service: load channel-days, run the rule set and the estimators, store the result.

:func:`run_vee` validates whole channel-days from their raw values (never from an earlier
estimate), so when actual data arrives for an estimated interval — ingestion puts the day back to
``vee_status = "raw"`` — the next run replaces the estimate with the actual value. Raw values are
never changed; every validated day is a new version of the day (the old one goes to history).

No single channel-day stops a run: each chunk of channels is validated inside a savepoint, and a
chunk that fails for any reason is rolled back, split to find the channels at fault, recorded in
the run's ``failures`` (channels, days, error) and left pending for the next run, while the other
chunks proceed. Such a run ends with status ``partial``.
"""

from __future__ import annotations

import dataclasses
import traceback
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from meter2cash.core.errors import M2CError
from meter2cash.core.quality import Quality
from meter2cash.core.timeutil import day_start, ensure_aware, slots_per_day, utc_days, utcnow
from meter2cash.events.outbox import emit
from meter2cash.mdm.models import Channel, Meter, ReadingType, VeeFinding, VeeRun
from meter2cash.mdm.store import DayArrays, MeasurementStore
from meter2cash.mdm.vee.candidates import Candidate, absent_days, candidates, stored_days
from meter2cash.mdm.vee.codes import ESTIMATE_REPLACED
from meter2cash.mdm.vee.context import load_context
from meter2cash.mdm.vee.estimation import (
    METHOD_NAMES,
    OUTAGE_ZERO,
    day_types_for,
    estimate,
    quality_flags,
)
from meter2cash.mdm.vee.evaluate import evaluate
from meter2cash.mdm.vee.learned_store import ModelUse, model_for_run, scope_of
from meter2cash.mdm.vee.reports import findings_for, vee_report
from meter2cash.mdm.vee.rereads import complete_rereads
from meter2cash.mdm.vee.rules.history import prolonged_estimation_check
from meter2cash.mdm.vee.rules.receipts import duplicate_imd_check
from meter2cash.mdm.vee.ruleset.schema import RuleSet, intervals_for
from meter2cash.mdm.vee.ruleset.store import (
    CustomerClasses,
    channel_classes,
    current_rule_sets,
    select_rule_sets,
)
from meter2cash.mdm.vee.types import Finding, RuleContext
from meter2cash.mdm.vee.work_queue import open_exceptions

__all__ = [
    "TOPIC_COMPLETED",
    "TOPIC_ESTIMATE_REPLACED",
    "VeeRunResult",
    "findings_for",
    "run_vee",
    "vee_report",
]

TOPIC_COMPLETED = "vee.completed"
#: Raised once per run when actual data replaced estimates (billing may need to rebill).
TOPIC_ESTIMATE_REPLACED = "vee.estimate_replaced"
#: Upper bound of intervals per in-memory array (channels x window slots): bounds memory per chunk.
MAX_CHUNK_SLOTS = 2_000_000
MAX_CHUNK_CHANNELS = 1000
_IN_CHUNK = 2000
#: The learned estimator is trained only with at least this many training intervals in a chunk
#: (about 100 channel-days at 15 min); with less, like-day profiles estimate the long gaps.
LEARNED_MIN_SAMPLES = 2000
#: History intervals not usable as context: nothing received, rejected, themselves estimates, or
#: inside an outage (no supply says nothing of the usual use).
_NOT_ACTUAL = int(Quality.MISSING | Quality.REJECTED | Quality.ESTIMATED | Quality.OUTAGE)

Progress = Callable[[int, int], None]


@dataclass(slots=True)
class VeeRunResult:
    """What a VEE run did (counts of channel-days and intervals)."""

    run_id: int
    rule_set: str = "default"
    rule_set_version: str = "1"
    channel_days: int = 0
    intervals: int = 0
    #: rule code → ``{"findings": n, "intervals": n}``
    findings_by_rule: dict[str, dict[str, int]] = field(default_factory=dict)
    estimated_by_method: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(METHOD_NAMES.values(), 0)
    )
    #: intervals estimated (the zeros filled inside an outage are counted under ``outage_zero`` of
    #: ``estimated_by_method`` but are not estimates)
    estimated_intervals: int = 0
    #: intervals still missing after estimation
    missing_after: int = 0
    #: estimated intervals that actual data replaced in this run
    replaced_intervals: int = 0
    #: exceptions opened in the work queue
    exceptions: int = 0
    #: the stored learned models the run estimated with: ``{"scope", "interval_s", "version",
    #: "trained"}`` (``trained``: the run trained and stored it, there was none young enough)
    learned_models: list[dict[str, Any]] = field(default_factory=list)
    #: re-read requests this run found answered (``completed``) or gave up on (``failed``)
    rereads: dict[str, int] = field(default_factory=lambda: {"completed": 0, "failed": 0})
    #: ``{"channel_id", "day", "intervals"}`` per channel-day whose estimates were replaced
    replaced: list[dict[str, Any]] = field(default_factory=list)
    #: chunks that failed and stay pending: ``{"channels", "meters", "first_day", "last_day",
    #: "channel_days", "error": {"code", "type", "message", "where"}}``
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def findings(self) -> int:
        return sum(v["findings"] for v in self.findings_by_rule.values())

    def to_dict(self) -> dict[str, Any]:
        out = {**asdict(self), "findings": self.findings}
        del out["replaced"]
        return out

    def absorb(self, part: VeeRunResult) -> None:
        """Add the counts of one chunk's result (kept apart until the chunk is saved)."""
        self.channel_days += part.channel_days
        self.intervals += part.intervals
        for rule, agg in part.findings_by_rule.items():
            mine = self.findings_by_rule.setdefault(rule, {"findings": 0, "intervals": 0})
            mine["findings"] += agg["findings"]
            mine["intervals"] += agg["intervals"]
        for name, n in part.estimated_by_method.items():
            self.estimated_by_method[name] = self.estimated_by_method.get(name, 0) + n
        self.estimated_intervals += part.estimated_intervals
        self.missing_after += part.missing_after
        self.replaced_intervals += part.replaced_intervals
        self.replaced += part.replaced


def run_vee(
    session: Session,
    *,
    start: datetime,
    end: datetime,
    channel_ids: Sequence[int] | None = None,
    rule_set: RuleSet | None = None,
    only_pending: bool = True,
    history_days: int = 14,
    on_progress: Progress | None = None,
    tz: ZoneInfo | str = "UTC",
    customer_classes: CustomerClasses | None = None,
) -> VeeRunResult:
    """Validate and estimate the channel-days of interval channels in ``[start, end)``.

    Whole UTC days touched by the window are validated (only those still ``raw`` when
    ``only_pending``), and so are days on which nothing at all arrived from an installed meter
    (see :func:`.candidates.absent_days`). Rules run on the raw values of those days; the
    ``history_days`` before them give context (typical level, like-days) from their actual
    validated values. ``tz`` decides the day type (weekday/weekend) of each day. Writes the
    validated days, a :class:`VeeRun`, its :class:`VeeFinding` rows and a ``vee.completed``
    outbox event.

    Without ``rule_set`` every channel gets the eligible rule set of its reading type and
    customer class (:mod:`.ruleset.store`; the classes come from ``customer_classes``, the CIS's
    answer, and without it no channel has one); the run records the names and versions used, and every
    finding its ``name@version``. Findings whose action is ``exception`` open exceptions in the
    work queue (:mod:`.work_queue`).

    Chunks are planned by :func:`plan_chunks`. A chunk that fails is rolled back to its savepoint
    and recorded in :attr:`VeeRunResult.failures` and ``VeeRun.failures`` (status ``partial``);
    its days stay pending. Errors outside the chunks (choosing the candidates, the work queue)
    still raise.

    Does not commit: the caller owns the transaction.
    """
    start, end = ensure_aware(start, "start"), ensure_aware(end, "end")
    run = VeeRun(window_start=start, window_end=end, status="running")
    session.add(run)
    session.flush()
    result = VeeRunResult(run.id)
    days = utc_days(start, end)
    cands = candidates(session, days[0], days[-1], channel_ids, only_pending) if days else []
    if days:
        cands += absent_days(session, days[0], days[-1], channel_ids, stored_days(session, days[0], days[-1]))
    classes = channel_classes(session, sorted({c.channel_id for c in cands}), customer_classes)
    if rule_set is not None:
        chosen = dict.fromkeys({c.channel_id for c in cands}, rule_set)
    else:
        chosen = select_rule_sets(current_rule_sets(session), classes)
    used = {r.label: r for r in chosen.values()} or {"default": rule_set or RuleSet()}
    # chunks share interval length, rule set and customer class (the learned model's scope)
    by_group: dict[tuple[int, str, str], dict[int, list[Candidate]]] = defaultdict(lambda: defaultdict(list))
    for c in cands:
        scope = scope_of(classes.get(c.channel_id, ("", None))[1])
        by_group[(c.interval_s, chosen[c.channel_id].label, scope)][c.channel_id].append(c)
    done = 0
    models: dict[tuple[str, int, int], ModelUse] = {}
    for (interval_s, label, scope), per_channel in sorted(by_group.items()):
        for chunk in plan_chunks(per_channel, slots_per_day(interval_s), history_days):
            args = (run.id, interval_s, used[label], history_days, tz, scope)
            _validate_isolating(session, chunk, args, result, models)
            done += sum(len(cs) for cs in chunk.values())
            if on_progress is not None:
                on_progress(done, len(cands))
    result.learned_models = [m.to_dict() for _, m in sorted(models.items())]
    sets = sorted(used.values(), key=lambda r: r.name)
    result.rule_set = "+".join(r.name for r in sets)[:64]
    result.rule_set_version = "+".join(r.version for r in sets)[:32]
    run.rule_set, run.rule_set_version = result.rule_set, result.rule_set_version
    result.exceptions = open_exceptions(session, run.id, {r.label: r for r in sets})
    result.rereads = complete_rereads(session)
    run.channel_days = result.channel_days
    run.findings = result.findings
    run.estimated_intervals = result.estimated_intervals
    run.finished_at = utcnow()
    _name_failures(session, result.failures)
    run.failures = result.failures or None
    run.status = "partial" if result.failures else "completed"
    session.flush()
    emit(session, TOPIC_COMPLETED, result.to_dict(), key=str(run.id))
    if result.replaced:
        payload = {"run_id": run.id, "intervals": result.replaced_intervals, "channel_days": result.replaced}
        emit(session, TOPIC_ESTIMATE_REPLACED, payload, key=str(run.id))
    return result


Chunk = dict[int, list[Candidate]]


def plan_chunks(per_channel: Chunk, spd: int, history_days: int) -> list[Chunk]:
    """Split the candidate days of channels sharing an interval length into chunks.

    A channel's days are cut into segments where two candidate days lie more than
    ``history_days`` apart (a day far away is validated on its own, with its own history) and
    where a segment would exceed :data:`MAX_CHUNK_SLOTS`. The n-th segments of the channels form
    the n-th pass; a pass is cut, in channel order, into chunks whose window (days spanned plus
    history, times channels) stays within :data:`MAX_CHUNK_SLOTS` and :data:`MAX_CHUNK_CHANNELS`.
    So memory is bounded by the chunk, and one stray day (a reading dated in year 1) is a chunk
    of its own instead of stretching every chunk's window.
    """
    max_days = max(1, MAX_CHUNK_SLOTS // spd - history_days)
    passes: list[list[tuple[int, list[Candidate]]]] = []
    for cid in sorted(per_channel):
        days = sorted(per_channel[cid], key=lambda c: c.day)
        segments: list[list[Candidate]] = [[days[0]]]
        for c in days[1:]:
            seg = segments[-1]
            if (c.day - seg[-1].day).days > history_days or (c.day - seg[0].day).days >= max_days:
                segments.append([c])
            else:
                seg.append(c)
        for k, seg in enumerate(segments):
            if k == len(passes):
                passes.append([])
            passes[k].append((cid, seg))
    chunks: list[Chunk] = []
    for units in passes:
        chunk: Chunk = {}
        lo = hi = None
        for cid, seg in units:
            a, b = seg[0].day, seg[-1].day
            n_lo, n_hi = (a, b) if lo is None or hi is None else (min(lo, a), max(hi, b))
            span = (n_hi - n_lo).days + 1 + history_days
            if chunk and (
                len(chunk) >= MAX_CHUNK_CHANNELS or (len(chunk) + 1) * span * spd > MAX_CHUNK_SLOTS
            ):
                chunks.append(chunk)
                chunk, n_lo, n_hi = {}, a, b
            chunk[cid] = seg
            lo, hi = n_lo, n_hi
        if chunk:
            chunks.append(chunk)
    return chunks


def _validate_isolating(
    session: Session,
    chunk: Chunk,
    args: tuple[Any, ...],
    result: VeeRunResult,
    models: dict[tuple[str, int, int], ModelUse],
    error: BaseException | None = None,
) -> None:
    """Validate a chunk inside a savepoint; on any error (``error``: it failed already) find the
    channels at fault by halving the chunk while exactly one half fails. When both halves fail
    the fault is not one channel's, and the halves are recorded as they are."""
    err = error if error is not None else _validate_saved(session, chunk, args, result, models)
    if err is None:
        return
    if len(chunk) == 1:
        result.failures.append(_failure(chunk, err))
        return
    ids = sorted(chunk)
    halves = [{c: chunk[c] for c in ids[: len(ids) // 2]}, {c: chunk[c] for c in ids[len(ids) // 2 :]}]
    failed = [(h, e) for h in halves if (e := _validate_saved(session, h, args, result, models)) is not None]
    if len(failed) == 1:
        _validate_isolating(session, failed[0][0], args, result, models, failed[0][1])
        return
    for half, e in failed:
        result.failures.append(_failure(half, e))


def _validate_saved(
    session: Session,
    chunk: Chunk,
    args: tuple[Any, ...],
    result: VeeRunResult,
    models: dict[tuple[str, int, int], ModelUse],
) -> BaseException | None:
    """Validate and save one chunk in a savepoint; the error (all rolled back) or ``None``."""
    run_id, interval_s, rs, history_days, tz, scope = args
    part = VeeRunResult(run_id)
    used = dict(models)
    try:
        with session.begin_nested():
            _process_chunk(session, run_id, chunk, interval_s, rs, history_days, tz, part, scope, used)
    except Exception as exc:  # any failure of one chunk: recorded, the run goes on
        return exc
    result.absorb(part)
    models.update(used)
    return None


def _failure(chunk: Chunk, exc: BaseException) -> dict[str, Any]:
    days = [c.day for cs in chunk.values() for c in cs]
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f"{frame.filename.rsplit('/src/', 1)[-1]}:{frame.lineno}" if frame else ""
    return {
        "channels": sorted(chunk),
        "meters": [],
        "first_day": min(days).isoformat(),
        "last_day": max(days).isoformat(),
        "channel_days": len(days),
        "error": {
            "code": exc.code if isinstance(exc, M2CError) else "vee.chunk_failed",
            "type": type(exc).__name__,
            "message": str(exc)[:500],
            "where": where,
        },
    }


def _name_failures(session: Session, failures: list[dict[str, Any]]) -> None:
    """Fill in ``meters``: ``serial/reading type`` of the (first 20) channels of each failure."""
    ids = sorted({c for f in failures for c in f["channels"][:20]})
    if not ids:
        return
    stmt = (
        select(Channel.id, Meter.serial, ReadingType.code)
        .join(Meter, Meter.id == Channel.meter_id)
        .join(ReadingType, ReadingType.id == Channel.reading_type_id)
        .where(Channel.id.in_(ids))
    )
    names = {cid: f"{serial}/{code}" for cid, serial, code in session.execute(stmt)}
    for f in failures:
        f["meters"] = [names.get(c, str(c)) for c in f["channels"][:20]]


def _process_chunk(
    session: Session,
    run_id: int,
    chunk: dict[int, list[Candidate]],
    interval_s: int,
    rs: RuleSet,
    history_days: int,
    tz: ZoneInfo | str,
    result: VeeRunResult,
    scope: str,
    models: dict[tuple[str, int, int], ModelUse],
) -> int:
    """Validate the candidate days of a few channels sharing one interval length.

    Long gaps are estimated with the stored learned model of ``scope`` (trained here and stored
    when there is none young enough); ``models`` collects the versions used.
    """
    ids = list(chunk)
    row_of = {cid: r for r, cid in enumerate(ids)}
    first = min(c.day for cs in chunk.values() for c in cs)
    last = max(c.day for cs in chunk.values() for c in cs)
    hist_first = first - timedelta(days=history_days)
    spd = slots_per_day(interval_s)
    n_hist = history_days * spd
    store = MeasurementStore(session)
    w = store.read_window(ids, day_start(hist_first), day_start(last + timedelta(days=1)), interval_s)
    hist = np.where((w.flags[:, :n_hist] & _NOT_ACTUAL) == 0, w.values[:, :n_hist], np.nan)
    raw = w.raw[:, n_hist:]
    import_rows = np.array([chunk[cid][0].is_import for cid in ids], dtype=bool)
    cx = load_context(session, ids, first, last, interval_s, rs)
    ctx = RuleContext(
        interval_s,
        history=hist,
        import_rows=import_rows,
        outage=cx.outage,
        active=cx.active,
        earlier_raw=cx.earlier_raw,
        prev_flags=cx.prev_flags,
        day_advance=cx.day_advance,
        metadata=cx.metadata,
    )
    ev = evaluate(raw, ctx, rs)

    # inside an outage nothing is estimated from use: the intervals not received (or rejected)
    # there are the outage's zeros
    outage = cx.outage
    series = np.concatenate((hist, np.where(ev.rejected, np.nan, raw)), axis=1)
    target = np.zeros(series.shape, dtype=bool)
    target[:, n_hist:] = True
    all_days = [hist_first + timedelta(days=k) for k in range(series.shape[1] // spd)]
    types = day_types_for(
        all_days,
        tz,
        holiday_country=rs.estimation.holiday_country,
        holiday_subdiv=rs.estimation.holiday_subdiv,
    )
    learned = None
    need = np.isnan(series) & target
    need[:, n_hist:] &= ~outage
    if rs.estimation.learned and need.any():
        model, use = model_for_run(
            session,
            scope,
            interval_s,
            series,
            slots_per_day=spd,
            day_types=types,
            history_from=hist_first,
            history_to=last,
            max_age_days=rs.estimation.learned_max_age_days,
            min_samples=LEARNED_MIN_SAMPLES,
        )
        if model is not None and use is not None:
            learned = model.predict(series, need, slots_per_day=spd, day_types=types)
            key = (use.scope, use.interval_s, use.version)
            models[key] = use if use.trained or key not in models else models[key]
    no_hist = np.zeros((len(ids), n_hist), dtype=bool)
    est = estimate(
        series,
        slots_per_day=spd,
        day_types=types,
        target=target,
        max_interp_intervals=int(rs.estimation.max_interp_hours * 3600 // interval_s),
        min_like_days=rs.estimation.min_like_days,
        outage=np.concatenate((no_hist, outage), axis=1),
        learned=learned,
        day_advance=np.concatenate((np.full((len(ids), history_days), np.nan), cx.day_advance), axis=1),
    )
    values = est.values[:, n_hist:]
    method = est.method[:, n_hist:]
    kept = np.zeros(values.shape, dtype=bool)
    if rs.rules.replacement.enabled and rs.rules.replacement.keep_edits:
        kept = (cx.prev_flags & int(Quality.EDITED)) != 0
        values = np.where(kept, cx.prev_values, values)
        method = np.where(kept, 0, method).astype(np.int8)
    # an outage's zero is what was measured, not an estimate: OUTAGE, not ESTIMATED
    estimated = (method != 0) & (method != OUTAGE_ZERO)
    flags = quality_flags(values, ev.rejected & ~kept, ev.suspect & ~kept, estimated.view(np.int8))
    flags = np.where(kept, cx.prev_flags, flags).astype(flags.dtype)
    flags[outage] |= np.uint16(Quality.OUTAGE)
    flags[duplicate_imd_check(raw, cx.earlier_raw).mask] |= np.uint16(Quality.DUPLICATE)
    pe = rs.rules.prolonged_estimation
    if pe.enabled:
        was_estimated = (w.flags[:, :n_hist] & int(Quality.ESTIMATED)) != 0
        res = prolonged_estimation_check(
            np.concatenate((was_estimated, estimated), axis=1),
            min_intervals=intervals_for(pe.max_hours, interval_s),
            offset=n_hist,
        )
        ev.findings.extend(dataclasses.replace(f, action=pe.action) for f in res.findings)

    n_days = (last - first).days + 1
    save_day = np.zeros((len(ids), n_days), dtype=bool)
    out: list[DayArrays] = []
    for cid, cs in chunk.items():
        r = row_of[cid]
        for c in cs:
            d = (c.day - first).days
            save_day[r, d] = True
            sl = slice(d * spd, (d + 1) * spd)
            out.append(
                DayArrays(
                    cid,
                    c.day,
                    interval_s,
                    raw=raw[r, sl].copy(),
                    values=values[r, sl].copy(),
                    flags=flags[r, sl].copy(),
                    version=w.versions.get((cid, c.day), 0),
                    vee_status="validated",
                    vee_run_id=run_id,
                    batch_id=c.batch_id,
                )
            )
    saved = np.repeat(save_day, spd, axis=1)
    result.channel_days += len(out)
    result.intervals += int(saved.sum())
    counts = np.bincount(method[saved].astype(np.int64), minlength=len(METHOD_NAMES) + 1)
    for code, name in METHOD_NAMES.items():
        result.estimated_by_method[name] += int(counts[code])
    result.estimated_intervals += int(counts[1:].sum() - counts[OUTAGE_ZERO])
    result.missing_after += int(np.isnan(values[saved]).sum())

    rows = _finding_rows(ev.findings, run_id, ids, first, spd, save_day)
    rows += [{**r, "run_id": run_id} for r in cx.register_rows]
    for fr in rows:
        fr["rule_set"] = rs.label
    for fr in rows:
        if fr["rule"] == ESTIMATE_REPLACED:
            result.replaced_intervals += fr["slot_count"]
            result.replaced.append(
                {"channel_id": fr["channel_id"], "day": fr["day"].isoformat(), "intervals": fr["slot_count"]}
            )
    for row in rows:
        agg = result.findings_by_rule.setdefault(row["rule"], {"findings": 0, "intervals": 0})
        agg["findings"] += 1
        agg["intervals"] += row["slot_count"]
    store.save(out, reason="vee")
    for i in range(0, len(rows), _IN_CHUNK):
        session.execute(insert(VeeFinding), rows[i : i + _IN_CHUNK])
    return len(out)


def _finding_rows(
    findings: list[Finding], run_id: int, ids: list[int], first: date, spd: int, save_day: np.ndarray
) -> list[dict[str, Any]]:
    """Split window findings at UTC day borders; keep the parts on days being saved."""
    rows: list[dict[str, Any]] = []
    for f in findings:
        end = f.first + f.count
        for d in range(f.first // spd, (end - 1) // spd + 1):
            if not save_day[f.row, d]:
                continue
            s0, s1 = max(f.first, d * spd), min(end, (d + 1) * spd)
            data = {**f.data, "intervals": s1 - s0}
            if s1 - s0 != f.count:
                data["run_intervals"] = f.count
            rows.append(
                {
                    "run_id": run_id,
                    "channel_id": ids[f.row],
                    "day": first + timedelta(days=d),
                    "rule": f.rule,
                    "action": f.action,
                    "first_slot": s0 - d * spd,
                    "slot_count": s1 - s0,
                    "data": data,
                }
            )
    return rows
