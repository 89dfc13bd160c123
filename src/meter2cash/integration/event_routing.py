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

from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast

import numpy as np
from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from meter2cash.cis.parties.models import ServicePoint
from meter2cash.core.timeutil import ensure_aware
from meter2cash.db_bulk import insert_rows
from meter2cash.db_query import id_filters
from meter2cash.integration.load_violations import Violation, record_load_violations
from meter2cash.integration.routing_actions import (
    DISPOSITIONS,
    Network,
    Outbox,
    RoutingResult,
    at_time,
    check_valid_tampers,
    epoch,
    open_outages,
    outages_of,
    route_others,
    route_tampers,
    settle_outages,
)
from meter2cash.mdm.events.catalogue import BY_ID
from meter2cash.mdm.events.models import EventEpisode, EventRoutingState, TamperFlag
from meter2cash.mdm.events.routing_config import RoutingRules, Rule, load_rules
from meter2cash.mdm.events.routing_rules import (
    ALONE,
    CLOSES,
    DUPLICATE,
    OCCURRENCE,
    OPENS,
    ORPHAN,
    RESTORATION,
    event_roles,
    pair_events,
)
from meter2cash.mdm.models import DCU, DistributionTransformer, Installation, Meter, MeterEvent

STATE = "meter_event"
#: How long routing waits at a gap in the event ids before taking it as a rolled-back insert.
GAP_GRACE = timedelta(minutes=5)
# handlers of an event, by its pair's occurrence ID
_OUTAGE, _LOAD, _RULE, _NONE = 0, 1, 2, 3
__all__ = ["DISPOSITIONS", "RoutingResult", "route_events"]


def _state(session: Session) -> EventRoutingState:
    stmt = select(EventRoutingState).where(EventRoutingState.name == STATE).with_for_update()
    state = session.scalar(stmt)
    if state is None:
        state = EventRoutingState(name=STATE, last_event_id=0, rules_version="")
        session.add(state)
        session.flush()
    return state


def _network(session: Session, meter_ids: Sequence[int]) -> Network:
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
    return Network(np.asarray(meter_ids, dtype=np.int64), serial, dt, feeder, sp)


def _parse_id(code: str) -> int:
    return int(code) if code.isdigit() and len(code) < 6 else -1


def _before_fresh_gap(rows: Sequence[Any], state: EventRoutingState, now: datetime, grace: timedelta) -> int:
    """How many of ``rows`` (ids ascending after the cursor) to route now: up to the first gap in
    the ids that is not older than ``grace``.

    An id missing after the cursor belongs to an insert not committed yet (a concurrent ingest on
    PostgreSQL commits in any order) or rolled back. Routing past it would skip the event for good
    if it commits later, so routing waits there; a gap still open ``grace`` after it was first
    noticed is taken as rolled back and passed. Before the first run, ids may start anywhere.
    """
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    prev = np.concatenate([[state.last_event_id], ids[:-1]])
    gaps = np.flatnonzero(ids != prev + 1)
    if state.last_event_id == 0:
        gaps = gaps[gaps > 0]
    for k in gaps.tolist():
        missing = int(prev[k]) + 1
        if state.gap_horizon is not None and missing <= state.gap_horizon and state.gap_seen_at is not None:
            if now - ensure_aware(state.gap_seen_at) >= grace:
                continue
            return k
        state.gap_horizon, state.gap_seen_at = int(ids[-1]), now
        return k
    return len(rows)


def route_events(
    session: Session,
    *,
    now: datetime,
    rules: RoutingRules | None = None,
    limit: int = 50_000,
    gap_grace: timedelta = GAP_GRACE,
) -> RoutingResult:
    """Route the events stored after the cursor (at most ``limit``, in id order, up to a gap in
    the ids younger than ``gap_grace``); see the module docstring. Open tamper episodes are
    checked against the rules' validity on every run, so a magnet that persists becomes a
    disconnect on a later run even without new events."""
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
    rows = rows[: _before_fresh_gap(rows, state, now, gap_grace)]
    out = Outbox()
    if rows:
        _route_batch(session, rows, rules, now, result, out)
        result.cursor = int(rows[-1][0])
    check_valid_tampers(session, rules, now, result, set())
    result.messages += out.flush(session)
    state.last_event_id = result.cursor
    if state.gap_horizon is not None and result.cursor >= state.gap_horizon:
        state.gap_horizon = state.gap_seen_at = None
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
    out: Outbox,
) -> None:
    """Pair, de-duplicate and coalesce one batch of events (with the episodes still open), then
    act on it; counts every event's disposition in ``result``."""
    n_new = len(rows)
    result.events = n_new
    event_row = np.array([r[0] for r in rows], dtype=np.int64)
    meter_ids, meter_idx = np.unique(np.array([r[1] for r in rows], dtype=np.int64), return_inverse=True)
    at = np.array([epoch(r[2]) for r in rows], dtype=np.int64)
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
    all_at = np.concatenate([at, np.array([epoch(p[3]) for p in prior], dtype=np.int64)])
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
        outage_of_row[fails] = open_outages(session, rules, net, all_meter[fails], all_at[fails], started)
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
            "opened_at": at_time(all_at[i]),
            "closed_at": at_time(all_at[closer[i]]) if closer[i] >= 0 else None,
            "occurrence_event_id": int(event_row[i]),
            "restoration_event_id": int(event_row[closer[i]]) if closer[i] >= 0 else None,
            "outage_id": int(outage_of_row[i]) if outage_of_row[i] >= 0 else None,
        }
        for i in opens
    ]
    episode_of_row = np.full(all_ids.size, -1, dtype=np.int64)
    episode_of_row[is_prior] = prior_episode[is_prior]
    if ep_rows:
        episode_of_row[opens] = _insert_episodes(session, ep_rows)
    result.episodes_opened = len(ep_rows)
    result.episodes_closed = int(np.count_nonzero(disp == CLOSES))

    # restorations of episodes opened before this batch
    late = [i for i in np.flatnonzero(is_prior) if closer[i] >= 0]
    if late:
        session.execute(
            update(EventEpisode),
            [{"id": int(prior_episode[i]), "closed_at": at_time(all_at[closer[i]]),
              "restoration_event_id": int(event_row[closer[i]])} for i in late],
        )  # fmt: skip
        touched |= outages_of(session, [int(prior_episode[i]) for i in late])
        tf = cast(Table, TamperFlag.__table__)
        session.connection().execute(
            update(tf).where(tf.c.episode_id == bindparam("ep")).values(to_at=bindparam("closed")),
            [{"ep": int(prior_episode[i]), "closed": at_time(all_at[closer[i]])} for i in late],
        )
    touched |= {int(outage_of_row[i]) for i in opens if outage_of_row[i] >= 0}
    settle_outages(session, rules, sorted(touched - {-1}), started, now, result, out)

    # tampers, load violations and the other rules, on the events of this batch
    new = ~is_prior
    kept = new & ((disp == OPENS) | (disp == ALONE) | (disp == CLOSES))
    tampers = np.flatnonzero(kept & tamper_rule & (disp != CLOSES)).tolist()
    route_tampers(
        session, tampers, rule_of, all_at, episode_of_row, event_row, net, all_meter, now, result, out
    )
    loads = np.flatnonzero(kept & (handler == _LOAD) & (role != RESTORATION)).tolist()
    if loads:
        lv = record_load_violations(
            session,
            [
                Violation(int(net.meter_id[all_meter[i]]), at_time(all_at[i]), None, "event", event)
                for i, event in zip(loads, event_row[loads].tolist(), strict=True)
            ],
            rules.load_violation,
            now=now,
        )  # fmt: skip
        result.load_violations += lv.recorded
    others = np.flatnonzero(kept & (handler == _RULE) & ~tamper_rule).tolist()
    route_others(
        session, others, rule_of, all_ids, all_at, event_row, episode_of_row, net, all_meter, now, result, out
    )
    check_valid_tampers(session, rules, now, result, {int(episode_of_row[i]) for i in tampers})

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


def _insert_episodes(session: Session, rows: list[dict[str, Any]]) -> np.ndarray:
    """Insert episodes in one statement (``COPY`` on PostgreSQL); their ids, in the rows' order
    (found again by their occurrence, which is unique)."""
    insert_rows(session, cast(Table, EventEpisode.__table__), rows)
    occurrence = [r["occurrence_event_id"] for r in rows]
    found: dict[int, int] = {}
    for where in id_filters(session, EventEpisode.occurrence_event_id, occurrence):
        found.update(
            session.execute(select(EventEpisode.occurrence_event_id, EventEpisode.id).where(where)).all()
        )
    return np.array([found[o] for o in occurrence], dtype=np.int64)


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
