"""Meter events routed by rule: outages to the OMS, tampers to an inspection and a disconnect,
load violations to the CIS and the consumer, other events where the rules send them.

:func:`route_events` takes the events stored after the routing cursor, in id order and in a
bounded batch, runs the array kernels (:mod:`meter2cash.mdm.events.routing_rules`) over the
whole batch and then acts:

- power failures (the last gasp) open an ``outage`` per transformer or feeder, coalesced over
  the storm (``oms.outage.started``; ``oms.outage.updated`` when more meters join an open one);
  when every affected meter reported its restoration the outage is restored
  (``oms.outage.restored``);
- a tamper (cover open, magnet, current reversal or bypass) is a ``tamper_flag`` for the CIS
  (``cis.tamper``), a tamper-inspection work order for the WFM and, once valid by the rules (a
  cover opened; a magnet persisting), a disconnect command, issued once per episode;
- the meter's load-violation event is a ``load_violation`` (``cis.load_violation``, an SMS);
- any other event goes to the targets of its rule (``oms.meter_event``, ``cis.meter_event``, a
  work order), or is counted as no action.

Every event of the batch ends in exactly one disposition (:data:`DISPOSITIONS`), what was done is
an ``event_action`` row, and the cursor advances in the same transaction. Flushes, never commits.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import numpy as np
from sqlalchemy import Table, bindparam, func, insert, or_, select, update
from sqlalchemy.orm import Session

from meter2cash.cis.parties.models import ServicePoint
from meter2cash.core.timeutil import ensure_aware
from meter2cash.db_query import id_filters
from meter2cash.events.models import OutboxMessage
from meter2cash.integration.load_violations import Violation, record_load_violations
from meter2cash.mdm.commands.service import issue_command
from meter2cash.mdm.events.catalogue import BY_ID
from meter2cash.mdm.events.models import EventAction, EventEpisode, EventRoutingState, Outage, TamperFlag
from meter2cash.mdm.events.routing_config import RoutingRules, Rule, load_rules
from meter2cash.mdm.events.routing_rules import (
    ALONE,
    CLOSES,
    DUPLICATE,
    LEVELS,
    OCCURRENCE,
    OPENS,
    ORPHAN,
    RESTORATION,
    coalesce_outages,
    event_roles,
    pair_events,
)
from meter2cash.mdm.models import DCU, DistributionTransformer, Feeder, Installation, Meter, MeterEvent
from meter2cash.workforce.service import create_work_order

STATE = "meter_event"
TOPIC_OUTAGE_STARTED = "oms.outage.started"
TOPIC_OUTAGE_UPDATED = "oms.outage.updated"
TOPIC_OUTAGE_RESTORED = "oms.outage.restored"
TOPIC_TAMPER = "cis.tamper"
TOPIC_EVENT = {"oms": "oms.meter_event", "cis": "cis.meter_event"}
#: What became of an event: each event of a batch has exactly one.
DISPOSITIONS = (
    "outage", "restored", "tamper", "load_violation", "routed", "duplicate", "orphan", "no_action", "unknown",
)  # fmt: skip
# handlers of an event, by its pair's occurrence ID
_OUTAGE, _LOAD, _RULE, _NONE = 0, 1, 2, 3


@dataclass(slots=True)
class RoutingResult:
    """What one routing run did."""

    cursor_before: int = 0
    cursor: int = 0
    events: int = 0
    rules_version: str = ""
    dispositions: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DISPOSITIONS, 0))
    episodes_opened: int = 0
    episodes_closed: int = 0
    outages_started: int = 0
    outages_updated: int = 0
    outages_restored: int = 0
    tamper_flags: int = 0
    work_orders: list[str] = field(default_factory=list)
    disconnects: int = 0
    load_violations: int = 0
    messages: int = 0
    actions: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "cursor_before": self.cursor_before,
            "cursor": self.cursor,
            "events": self.events,
            "rules_version": self.rules_version,
            "dispositions": dict(self.dispositions),
            "episodes_opened": self.episodes_opened,
            "episodes_closed": self.episodes_closed,
            "outages_started": self.outages_started,
            "outages_updated": self.outages_updated,
            "outages_restored": self.outages_restored,
            "tamper_flags": self.tamper_flags,
            "work_orders": list(self.work_orders),
            "disconnects": self.disconnects,
            "load_violations": self.load_violations,
            "messages": self.messages,
            "actions": self.actions,
        }


@dataclass(slots=True)
class _Network:
    """Per meter index of the batch: meter id, serial, transformer, feeder, service point."""

    meter_id: np.ndarray
    serial: list[str]
    dt: np.ndarray
    feeder: np.ndarray
    service_point: list[int | None]


def _action(
    target: str,
    action: str,
    at: datetime,
    *,
    event: int | None = None,
    outage: int | None = None,
    **detail: Any,
) -> dict[str, Any]:
    return {
        "meter_event_id": event,
        "outage_id": outage,
        "target": target,
        "action": action,
        "status": "queued",
        "at": at,
        "detail": detail,
    }


def _save_actions(session: Session, actions: list[dict[str, Any]], result: RoutingResult) -> None:
    if actions:
        session.execute(insert(EventAction), actions)
        result.actions += len(actions)
    session.flush()


def _state(session: Session) -> EventRoutingState:
    stmt = select(EventRoutingState).where(EventRoutingState.name == STATE).with_for_update()
    state = session.scalar(stmt)
    if state is None:
        state = EventRoutingState(name=STATE, last_event_id=0, rules_version="")
        session.add(state)
        session.flush()
    return state


def _network(session: Session, meter_ids: Sequence[int]) -> _Network:
    """Where each meter hangs now: the transformer of the service point it is installed at (else
    of its DCU), that transformer's feeder."""
    n = len(meter_ids)
    index = {m: i for i, m in enumerate(meter_ids)}
    serial = [""] * n
    dt = np.full(n, -1, dtype=np.int64)
    feeder = np.full(n, -1, dtype=np.int64)
    sp: list[int | None] = [None] * n
    for where in id_filters(session, Meter.id, list(meter_ids)):
        for mid, ser, dcu_dt in session.execute(
            select(Meter.id, Meter.serial, DCU.dt_id).outerjoin(DCU, DCU.id == Meter.dcu_id).where(where)
        ).all():
            serial[index[mid]] = ser
            if dcu_dt is not None:
                dt[index[mid]] = dcu_dt
    for where in id_filters(session, Installation.meter_id, list(meter_ids)):
        for mid, sp_id, sp_dt in session.execute(
            select(Installation.meter_id, ServicePoint.id, ServicePoint.dt_id)
            .join(ServicePoint, ServicePoint.id == Installation.service_point_id)
            .where(where, Installation.removed_at.is_(None))
        ).all():
            sp[index[mid]] = sp_id
            if sp_dt is not None:
                dt[index[mid]] = sp_dt
    dts = sorted({int(d) for d in dt if d >= 0})
    if dts:
        feeders = dict(
            session.execute(
                select(DistributionTransformer.id, DistributionTransformer.feeder_id).where(
                    DistributionTransformer.id.in_(dts)
                )
            ).all()
        )
        feeder = np.array([feeders.get(int(d)) or -1 if d >= 0 else -1 for d in dt], dtype=np.int64)
    return _Network(np.asarray(meter_ids, dtype=np.int64), serial, dt, feeder, sp)


def _epoch(ts: datetime) -> int:
    return int(ensure_aware(ts).timestamp())


def _at(epoch: int) -> datetime:
    return datetime.fromtimestamp(int(epoch), UTC)


def _parse_id(code: str) -> int:
    return int(code) if code.isdigit() and len(code) < 6 else -1


class _Outbox:
    """Outbox messages written in one statement at the end of the run."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def emit(self, topic: str, payload: dict[str, Any], key: str = "") -> None:
        self.rows.append({"message_id": str(uuid.uuid4()), "topic": topic, "key": key, "payload": payload})

    def flush(self, session: Session) -> int:
        if self.rows:
            session.execute(insert(OutboxMessage), self.rows)
        n, self.rows = len(self.rows), []
        return n


def route_events(
    session: Session, *, now: datetime, rules: RoutingRules | None = None, limit: int = 50_000
) -> RoutingResult:
    """Route the events stored after the cursor (at most ``limit``, in id order); see the module
    docstring. Open tamper episodes are checked against the rules' validity on every run, so a
    magnet that persists becomes a disconnect on a later run even without new events."""
    now = ensure_aware(now, "now")
    rules = rules or load_rules()
    state = _state(session)
    result = RoutingResult(cursor_before=state.last_event_id, cursor=state.last_event_id)
    result.rules_version = rules.version
    me = MeterEvent.__table__.c
    rows = session.execute(
        select(me.id, me.meter_id, me.occurred_at, me.code, me.category)
        .where(me.id > state.last_event_id)
        .order_by(me.id)
        .limit(limit)
    ).all()
    out = _Outbox()
    if rows:
        _route_batch(session, rows, rules, now, result, out)
        result.cursor = int(rows[-1][0])
    _check_valid_tampers(session, rules, now, result, set())
    result.messages += out.flush(session)
    state.last_event_id = result.cursor
    state.rules_version = rules.version
    state.updated_at = now
    session.flush()
    return result


def _route_batch(
    session: Session,
    rows: Sequence[Any],
    rules: RoutingRules,
    now: datetime,
    result: RoutingResult,
    out: _Outbox,
) -> None:
    n_new = len(rows)
    result.events = n_new
    event_row = np.array([r[0] for r in rows], dtype=np.int64)
    meter_ids, meter_idx = np.unique(np.array([r[1] for r in rows], dtype=np.int64), return_inverse=True)
    at = np.array([_epoch(r[2]) for r in rows], dtype=np.int64)
    ids = np.array([_parse_id(r[3]) for r in rows], dtype=np.int64)
    stored_category = [r[4] or "" for r in rows]

    # episodes still open from earlier batches take part in pairing, first in their meter and pair
    key_ids = sorted({int(e.is15959_id) for e in BY_ID.values() if e.restored_by and e.is15959_id})
    prior: list[Any] = []
    for where in id_filters(session, EventEpisode.meter_id, meter_ids.tolist()):
        prior += session.execute(
            select(
                EventEpisode.id, EventEpisode.meter_id, EventEpisode.event_id, EventEpisode.opened_at
            ).where(where, EventEpisode.closed_at.is_(None), EventEpisode.event_id.in_(key_ids))
        ).all()
    m_index = {int(m): i for i, m in enumerate(meter_ids)}
    all_meter = np.concatenate([meter_idx, np.array([m_index[p[1]] for p in prior], dtype=np.int64)])
    all_at = np.concatenate([at, np.array([_epoch(p[3]) for p in prior], dtype=np.int64)])
    all_ids = np.concatenate([ids, np.array([p[2] for p in prior], dtype=np.int64)])
    is_prior = np.arange(all_ids.size) >= n_new
    prior_episode = np.concatenate([np.full(n_new, -1), np.array([p[0] for p in prior], dtype=np.int64)])

    key, role = event_roles(all_ids)
    routing_id = np.where(key >= 0, key, all_ids)
    handler, rule_of = _handlers(routing_id, ids, stored_category, rules, n_new)
    dedupe = np.array([(r.dedupe_minutes * 60 if r else 0) for r in rule_of[:n_new]], dtype=np.int64)
    pairing = pair_events(
        all_meter, all_at, all_ids, dedupe_s=np.concatenate([dedupe, np.zeros(len(prior), dtype=np.int64)]),
        prior=is_prior,
    )  # fmt: skip
    disp = pairing.disposition
    net = _network(session, meter_ids.tolist())

    # outages: power failures that open an episode in this batch, coalesced per transformer/feeder
    fails = np.flatnonzero((handler == _OUTAGE) & (disp == OPENS) & ~is_prior & (role == OCCURRENCE))
    outage_of_row = np.full(all_ids.size, -1, dtype=np.int64)
    touched: set[int] = set()
    started: set[int] = set()
    if fails.size:
        outage_of_row[fails] = _open_outages(session, rules, net, all_meter[fails], all_at[fails], started)
        touched |= set(outage_of_row[fails].tolist())

    # episodes: paired occurrences that open, and single tamper events (cover open)
    tamper_rule = np.array([bool(r and r.tamper) for r in rule_of])
    opens = np.flatnonzero(~is_prior & ((disp == OPENS) | ((disp == ALONE) & tamper_rule)))
    closer = pairing.closed_by
    ep_rows = [
        {
            "meter_id": int(net.meter_id[all_meter[i]]),
            "event_id": int(all_ids[i]),
            "kind": BY_ID[int(all_ids[i])].code if int(all_ids[i]) in BY_ID else f"event.{int(all_ids[i])}",
            "rule": _rule_name(handler[i], rule_of[i]),
            "opened_at": _at(all_at[i]),
            "closed_at": _at(all_at[closer[i]]) if closer[i] >= 0 else None,
            "occurrence_event_id": int(event_row[i]),
            "restoration_event_id": int(event_row[closer[i]]) if closer[i] >= 0 else None,
            "outage_id": int(outage_of_row[i]) if outage_of_row[i] >= 0 else None,
        }
        for i in opens
    ]
    episode_of_row = np.full(all_ids.size, -1, dtype=np.int64)
    episode_of_row[is_prior] = prior_episode[is_prior]
    if ep_rows:
        new_ids = session.execute(
            insert(EventEpisode).returning(EventEpisode.id, sort_by_parameter_order=True), ep_rows
        ).scalars().all()  # fmt: skip
        episode_of_row[opens] = np.asarray(new_ids, dtype=np.int64)
    result.episodes_opened = len(ep_rows)
    result.episodes_closed = int(np.count_nonzero(disp == CLOSES))

    # restorations of episodes opened before this batch
    late = [i for i in np.flatnonzero(is_prior) if closer[i] >= 0]
    if late:
        session.execute(
            update(EventEpisode),
            [{"id": int(prior_episode[i]), "closed_at": _at(all_at[closer[i]]),
              "restoration_event_id": int(event_row[closer[i]])} for i in late],
        )  # fmt: skip
        touched |= _outages_of(session, [int(prior_episode[i]) for i in late])
        tf = cast(Table, TamperFlag.__table__)
        session.connection().execute(
            update(tf).where(tf.c.episode_id == bindparam("ep")).values(to_at=bindparam("closed")),
            [{"ep": int(prior_episode[i]), "closed": _at(all_at[closer[i]])} for i in late],
        )
    touched |= {int(outage_of_row[i]) for i in opens if outage_of_row[i] >= 0}
    _settle_outages(session, rules, sorted(touched - {-1}), started, now, result, out)

    # tampers, load violations and the other rules, on the events of this batch
    new = ~is_prior
    kept = new & ((disp == OPENS) | (disp == ALONE) | (disp == CLOSES))
    tampers = np.flatnonzero(kept & tamper_rule & (disp != CLOSES)).tolist()
    _tampers(session, tampers, rule_of, all_at, episode_of_row, event_row, net, all_meter, now, result, out)
    loads = np.flatnonzero(kept & (handler == _LOAD) & (role != RESTORATION)).tolist()
    if loads:
        lv = record_load_violations(
            session,
            [
                Violation(int(net.meter_id[all_meter[i]]), _at(all_at[i]), None, "event", int(event_row[i]))
                for i in loads
            ],
            rules.load_violation,
            now=now,
        )  # fmt: skip
        result.load_violations += lv.recorded
    others = np.flatnonzero(kept & (handler == _RULE) & ~tamper_rule).tolist()
    _route_others(
        session, others, rule_of, all_ids, all_at, event_row, episode_of_row, net, all_meter, now, result, out
    )
    _check_valid_tampers(session, rules, now, result, {int(episode_of_row[i]) for i in tampers})

    # one disposition per event
    names = np.full(n_new, "no_action", dtype=object)
    h, d, r_ = handler[:n_new], disp[:n_new], rule_of[:n_new]
    routed = np.array([bool(x is not None and x.targets) for x in r_])
    is_tamper = tamper_rule[:n_new]
    names[(h == _RULE) & routed] = "routed"
    names[(h == _RULE) & is_tamper] = "tamper"
    names[h == _LOAD] = "load_violation"
    names[(h == _OUTAGE) & (role[:n_new] == OCCURRENCE)] = "outage"
    names[(h == _OUTAGE) & (role[:n_new] == RESTORATION)] = "restored"
    catalogued = np.array([int(i) in BY_ID for i in ids.tolist()], dtype=bool)
    names[(h == _NONE) & ~catalogued] = "unknown"
    names[d == DUPLICATE] = "duplicate"
    names[d == ORPHAN] = "orphan"
    result.dispositions.update(Counter(names.tolist()))


def _handlers(
    routing_id: np.ndarray, ids: np.ndarray, stored_category: list[str], rules: RoutingRules, n_new: int
) -> tuple[np.ndarray, list[Rule | None]]:
    """Per event: how it is handled (outage, load violation, a rule, none) and its rule. A
    restoration follows its occurrence's rule."""
    outage_ids, load_ids = set(rules.outage.event_ids), set(rules.load_violation.event_ids)
    handler = np.full(routing_id.size, _NONE, dtype=np.int8)
    rule_of: list[Rule | None] = [None] * routing_id.size
    cache: dict[tuple[int, str], tuple[int, Rule | None]] = {}
    for i, rid in enumerate(routing_id.tolist()):
        category = BY_ID[rid].category if rid in BY_ID else (stored_category[i] if i < n_new else "")
        k = (rid, category)
        if k not in cache:
            if rid in outage_ids:
                cache[k] = (_OUTAGE, None)
            elif rid in load_ids:
                cache[k] = (_LOAD, None)
            else:
                rule = rules.rule_for(rid, category)
                cache[k] = (_RULE, rule) if rule is not None else (_NONE, None)
        handler[i], rule_of[i] = cache[k]
    return handler, rule_of


def _rule_name(handler: int, rule: Rule | None) -> str:
    if handler == _OUTAGE:
        return "outage"
    if handler == _LOAD:
        return "load_violation"
    return rule.name if rule else ""


def _outages_of(session: Session, episode_ids: list[int]) -> set[int]:
    out: set[int] = set()
    for where in id_filters(session, EventEpisode.id, episode_ids):
        out |= {
            o
            for o in session.scalars(
                select(EventEpisode.outage_id).where(where, EventEpisode.outage_id.is_not(None)).distinct()
            )
            if o is not None
        }
    return out


def _codes(session: Session, table: Any, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return dict(session.execute(select(table.id, table.code).where(table.id.in_(sorted(ids)))).all())


def _outage_payload(
    o: Outage, dts: dict[int, str], feeders: dict[int, str], serials: dict[int, str]
) -> dict[str, Any]:
    return {
        "outage_id": o.id,
        "level": o.level,
        "dt": dts.get(o.dt_id) if o.dt_id else None,
        "feeder": feeders.get(o.feeder_id) if o.feeder_id else None,
        "meter": serials.get(o.meter_id) if o.meter_id else None,
        "started_at": ensure_aware(o.started_at).isoformat(),
        "restored_at": ensure_aware(o.restored_at).isoformat() if o.restored_at else None,
        "meters_affected": o.meters_affected,
        "meters_restored": o.meters_restored,
    }


def _open_outages(
    session: Session,
    rules: RoutingRules,
    net: _Network,
    meter: np.ndarray,
    at: np.ndarray,
    started: set[int],
) -> np.ndarray:
    """Coalesce the batch's power failures into outages (an open outage of the same transformer,
    feeder or meter takes the new failures in); the outage id of each failure. The ids of the
    outages started here are added to ``started``."""
    storm = coalesce_outages(
        meter, at, net.dt, net.feeder, window_s=rules.outage.window_minutes * 60, level=rules.outage.level
    )
    ids = np.empty(len(storm), dtype=np.int64)
    for k in range(len(storm)):
        level, group = LEVELS[int(storm.level[k])], int(storm.group[k])
        cols: dict[str, Any] = {"dt_id": None, "feeder_id": None, "meter_id": None}
        if level == "dt":
            cols["dt_id"] = group
        elif level == "feeder":
            cols["feeder_id"] = group
        else:
            cols["meter_id"] = int(net.meter_id[group])
        column = {"dt": Outage.dt_id, "feeder": Outage.feeder_id, "meter": Outage.meter_id}[level]
        existing = session.scalar(
            select(Outage)
            .where(Outage.level == level, column == next(v for v in cols.values() if v is not None))
            .where(Outage.restored_at.is_(None))
            .order_by(Outage.id.desc())
            .limit(1)
        )
        if existing is None:
            existing = Outage(
                level=level, started_at=_at(storm.started_at[k]), meters_affected=0, meters_restored=0, **cols
            )
            session.add(existing)
            session.flush()
            started.add(existing.id)
        ids[k] = existing.id
    return ids[storm.outage]


def _settle_outages(
    session: Session,
    rules: RoutingRules,
    outage_ids: list[int],
    started: set[int],
    now: datetime,
    result: RoutingResult,
    out: _Outbox,
) -> None:
    """Count each touched outage's meters and restored meters again; publish a started, grown or
    restored outage to the OMS."""
    if not outage_ids:
        return
    ep = EventEpisode.__table__.c
    counts = {
        o: (int(total), int(still_open), last)
        for o, total, still_open, last in session.execute(
            select(
                ep.outage_id,
                func.count(func.distinct(ep.meter_id)),
                func.count(func.distinct(ep.meter_id)).filter(ep.closed_at.is_(None)),
                func.max(ep.closed_at),
            )
            .where(ep.outage_id.in_(outage_ids))
            .group_by(ep.outage_id)
        ).all()
    }
    outages = session.scalars(select(Outage).where(Outage.id.in_(outage_ids)).order_by(Outage.id)).all()
    dts = _codes(session, DistributionTransformer, {o.dt_id for o in outages if o.dt_id})
    feeders = _codes(session, Feeder, {o.feeder_id for o in outages if o.feeder_id})
    serials = dict(
        session.execute(
            select(Meter.id, Meter.serial).where(Meter.id.in_([o.meter_id for o in outages if o.meter_id]))
        ).all()
    )
    actions: list[dict[str, Any]] = []

    def publish(o: Outage, what: str) -> None:
        for target in rules.outage.targets:  # oms.outage.started, cis.outage.restored, ...
            out.emit(f"{target}.outage.{what}", _outage_payload(o, dts, feeders, serials), str(o.id))
            actions.append(
                _action(target, f"outage_{what}", now, outage=o.id, meters_affected=o.meters_affected)
            )

    for o in outages:
        total, still_open, last = counts.get(o.id, (0, 0, None))
        grown = o.id not in started and o.meters_affected < total
        o.meters_affected, o.meters_restored = total, total - still_open
        if o.id in started:
            publish(o, "started")
            result.outages_started += 1
            if "oms" in rules.outage.targets:
                o.notified_oms_at = now
        elif grown:
            publish(o, "updated")
            result.outages_updated += 1
        if o.restored_at is None and total and still_open == 0 and last is not None:
            o.restored_at = ensure_aware(last)
            publish(o, "restored")
            result.outages_restored += 1
    _save_actions(session, actions, result)


def _tampers(
    session: Session,
    rows: list[int],
    rule_of: list[Rule | None],
    at: np.ndarray,
    episode_of_row: np.ndarray,
    event_row: np.ndarray,
    net: _Network,
    meter: np.ndarray,
    now: datetime,
    result: RoutingResult,
    out: _Outbox,
) -> None:
    """A tamper flag, a CIS message and a work order for each new tamper episode."""
    actions: list[dict[str, Any]] = []
    for i in rows:
        rule = rule_of[i]
        assert rule is not None
        m = int(meter[i])
        episode = int(episode_of_row[i])
        ep = session.get(EventEpisode, episode)
        assert ep is not None
        flag = TamperFlag(
            meter_id=int(net.meter_id[m]), service_point_id=net.service_point[m], episode_id=episode,
            kind=ep.kind, from_at=_at(at[i]), to_at=ep.closed_at, valid=False,
        )  # fmt: skip
        session.add(flag)
        result.tamper_flags += 1
        detail: dict[str, Any] = {
            "episode_id": episode,
            "kind": ep.kind,
            "meter": net.serial[m],
            "rule": rule.name,
        }
        event = int(event_row[i])
        if "cis" in rule.targets:
            payload = {**detail, "from": _at(at[i]).isoformat(), "service_point_id": net.service_point[m]}
            out.emit(TOPIC_TAMPER, payload, str(episode))
            actions.append(_action("cis", "tamper_flag", now, event=event, **detail))
        if "wfm" in rule.targets and rule.work_order:
            wo = create_work_order(
                session,
                kind=rule.work_order,
                meter_id=int(net.meter_id[m]),
                service_point_id=net.service_point[m],
                priority=rule.priority or BY_ID[ep.event_id].priority,
                source=f"episode:{episode}",
                context={"meter": net.serial[m], "event": ep.kind, "occurred_at": _at(at[i]).isoformat()},
                at=now,
                actor="event-routing",
            )
            result.work_orders.append(wo.number)
            actions.append(_action("wfm", "work_order", now, event=event, work_order=wo.number, **detail))
    _save_actions(session, actions, result)


def _check_valid_tampers(
    session: Session, rules: RoutingRules, now: datetime, result: RoutingResult, new: set[int]
) -> None:
    """Tamper episodes valid for disconnection by their rule (persisted long enough, up to now
    for an open one) get a disconnect command, once per episode (idempotency key)."""
    valid_rules = {r.name: r for r in rules.rules if r.tamper and r.valid_after_minutes is not None}
    if not valid_rules:
        return
    episodes = session.scalars(
        select(EventEpisode)
        .where(EventEpisode.rule.in_(sorted(valid_rules)), EventEpisode.valid_at.is_(None))
        .where(or_(EventEpisode.closed_at.is_(None), EventEpisode.id.in_(sorted(new))))
        .order_by(EventEpisode.id)
    ).all()
    actions: list[dict[str, Any]] = []
    for ep in episodes:
        after = timedelta(minutes=valid_rules[ep.rule].valid_after_minutes or 0)
        opened = ensure_aware(ep.opened_at)
        until = ensure_aware(ep.closed_at) if ep.closed_at else now
        if until - opened < after:
            continue
        ep.valid_at = opened + after
        session.execute(update(TamperFlag).where(TamperFlag.episode_id == ep.id).values(valid=True))
        cmd = issue_command(
            session,
            kind="disconnect",
            meter_id=ep.meter_id,
            reason="tamper.valid",
            requested_by="event-routing",
            idempotency_key=f"tamper-{ep.id}",
            at=now,
        )
        result.disconnects += 1
        actions.append(
            _action(
                "hes", "disconnect", now, event=ep.occurrence_event_id, episode_id=ep.id, command_id=cmd.id
            )
        )
    _save_actions(session, actions, result)


def _route_others(
    session: Session,
    rows: list[int],
    rule_of: list[Rule | None],
    ids: np.ndarray,
    at: np.ndarray,
    event_row: np.ndarray,
    episode_of_row: np.ndarray,
    net: _Network,
    meter: np.ndarray,
    now: datetime,
    result: RoutingResult,
    out: _Outbox,
) -> None:
    """Events of the other rules to their targets: a message to the OMS or the CIS, a work order."""
    actions: list[dict[str, Any]] = []
    for i in rows:
        rule = rule_of[i]
        if rule is None or not rule.targets:
            continue
        m, eid = int(meter[i]), int(ids[i])
        known = BY_ID.get(eid)
        priority = rule.priority or (known.priority if known else "low")
        payload: dict[str, Any] = {
            "meter_event_id": int(event_row[i]),
            "meter": net.serial[m],
            "event_id": eid,
            "cim_type": known.cim_type if known else None,
            "code": known.code if known else None,
            "occurred_at": _at(at[i]).isoformat(),
            "priority": priority,
            "episode_id": int(episode_of_row[i]) if episode_of_row[i] >= 0 else None,
        }
        event = int(event_row[i])
        for target in rule.targets:
            if target in TOPIC_EVENT:
                out.emit(TOPIC_EVENT[target], payload, net.serial[m])
                actions.append(_action(target, "notified", now, event=event, rule=rule.name))
            elif target == "wfm" and rule.work_order:
                ep = int(episode_of_row[i])
                wo = create_work_order(
                    session,
                    kind=rule.work_order,
                    meter_id=int(net.meter_id[m]),
                    service_point_id=net.service_point[m],
                    priority=priority,
                    source=f"episode:{ep}" if ep >= 0 else f"event:{event}",
                    context=payload,
                    at=now,
                    actor="event-routing",
                )
                result.work_orders.append(wo.number)
                actions.append(
                    _action("wfm", "work_order", now, event=event, rule=rule.name, work_order=wo.number)
                )
    _save_actions(session, actions, result)
