"""What event routing does with what the kernels found: outages opened, grown and restored for
the OMS, tamper flags, inspection work orders and disconnects, messages to a rule's targets, and
the record of every action (``event_action``). Used by :mod:`.event_routing`; flushes, never
commits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.orm import Session

from meter2cash.core.timeutil import ensure_aware
from meter2cash.db_query import id_filters
from meter2cash.events.models import OutboxMessage
from meter2cash.mdm.commands.service import issue_command
from meter2cash.mdm.events.catalogue import BY_ID
from meter2cash.mdm.events.models import EventAction, EventEpisode, Outage, TamperFlag
from meter2cash.mdm.events.routing_config import RoutingRules, Rule
from meter2cash.mdm.events.routing_rules import LEVELS, coalesce_outages
from meter2cash.mdm.models import DistributionTransformer, Feeder, Meter
from meter2cash.workforce.service import create_work_order

#: ``<target>.outage.<what>`` for each target of the outage rules: ``oms.outage.started``,
#: ``oms.outage.updated`` (more meters joined), ``oms.outage.restored``; ``cis.outage.*`` alike.
OUTAGE_TOPIC = "{target}.outage.{what}"
TOPIC_TAMPER = "cis.tamper"
TOPIC_EVENT = {"oms": "oms.meter_event", "cis": "cis.meter_event"}
#: What became of an event: each event of a batch has exactly one.
DISPOSITIONS = (
    "outage", "restored", "tamper", "load_violation", "routed", "duplicate", "orphan", "no_action", "unknown",
)  # fmt: skip


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
class Network:
    """Per meter index of the batch: meter id, serial, transformer, feeder, service point."""

    meter_id: np.ndarray
    serial: list[str]
    dt: np.ndarray
    feeder: np.ndarray
    service_point: list[int | None]


def action(
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


def save_actions(session: Session, actions: list[dict[str, Any]], result: RoutingResult) -> None:
    if actions:
        session.execute(insert(EventAction), actions)
        result.actions += len(actions)
    session.flush()


def epoch(ts: datetime) -> int:
    return int(ensure_aware(ts).timestamp())


def at_time(seconds: int) -> datetime:
    return datetime.fromtimestamp(int(seconds), UTC)


class Outbox:
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


def outages_of(session: Session, episode_ids: list[int]) -> set[int]:
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


def open_outages(
    session: Session,
    rules: RoutingRules,
    net: Network,
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
    open_now: dict[tuple[str, int], int] = {}
    for oid, lv, dt, feeder, m in session.execute(
        select(Outage.id, Outage.level, Outage.dt_id, Outage.feeder_id, Outage.meter_id)
        .where(Outage.restored_at.is_(None))
        .order_by(Outage.id)
    ).all():
        node = dt if lv == "dt" else feeder if lv == "feeder" else m
        if node is not None:
            open_now[(lv, node)] = oid
    ids = np.empty(len(storm), dtype=np.int64)
    for k in range(len(storm)):
        level, group = LEVELS[int(storm.level[k])], int(storm.group[k])
        where = int(net.meter_id[group]) if level == "meter" else group
        if (level, where) not in open_now:
            outage = Outage(
                level=level,
                started_at=at_time(storm.started_at[k]),
                meters_affected=0,
                meters_restored=0,
                dt_id=where if level == "dt" else None,
                feeder_id=where if level == "feeder" else None,
                meter_id=where if level == "meter" else None,
            )
            session.add(outage)
            session.flush()
            started.add(outage.id)
            open_now[(level, where)] = outage.id
        ids[k] = open_now[(level, where)]
    return ids[storm.outage]


def settle_outages(
    session: Session,
    rules: RoutingRules,
    outage_ids: list[int],
    started: set[int],
    now: datetime,
    result: RoutingResult,
    out: Outbox,
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
        for target in rules.outage.targets:
            out.emit(
                OUTAGE_TOPIC.format(target=target, what=what),
                _outage_payload(o, dts, feeders, serials),
                str(o.id),
            )
            actions.append(
                action(target, f"outage_{what}", now, outage=o.id, meters_affected=o.meters_affected)
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
    save_actions(session, actions, result)


def route_tampers(
    session: Session,
    rows: list[int],
    rule_of: list[Rule | None],
    at: np.ndarray,
    episode_of_row: np.ndarray,
    event_row: np.ndarray,
    net: Network,
    meter: np.ndarray,
    now: datetime,
    result: RoutingResult,
    out: Outbox,
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
            kind=ep.kind, from_at=at_time(at[i]), to_at=ep.closed_at, valid=False,
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
            payload = {**detail, "from": at_time(at[i]).isoformat(), "service_point_id": net.service_point[m]}
            out.emit(TOPIC_TAMPER, payload, str(episode))
            actions.append(action("cis", "tamper_flag", now, event=event, **detail))
        if "wfm" in rule.targets and rule.work_order:
            wo = create_work_order(
                session,
                kind=rule.work_order,
                meter_id=int(net.meter_id[m]),
                service_point_id=net.service_point[m],
                priority=rule.priority or BY_ID[ep.event_id].priority,
                source=f"episode:{episode}",
                context={"meter": net.serial[m], "event": ep.kind, "occurred_at": at_time(at[i]).isoformat()},
                at=now,
                actor="event-routing",
            )
            result.work_orders.append(wo.number)
            actions.append(action("wfm", "work_order", now, event=event, work_order=wo.number, **detail))
    save_actions(session, actions, result)


def check_valid_tampers(
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
            action(
                "hes", "disconnect", now, event=ep.occurrence_event_id, episode_id=ep.id, command_id=cmd.id
            )
        )
    save_actions(session, actions, result)


def route_others(
    session: Session,
    rows: list[int],
    rule_of: list[Rule | None],
    ids: np.ndarray,
    at: np.ndarray,
    event_row: np.ndarray,
    episode_of_row: np.ndarray,
    net: Network,
    meter: np.ndarray,
    now: datetime,
    result: RoutingResult,
    out: Outbox,
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
            "occurred_at": at_time(at[i]).isoformat(),
            "priority": priority,
            "episode_id": int(episode_of_row[i]) if episode_of_row[i] >= 0 else None,
        }
        event = int(event_row[i])
        for target in rule.targets:
            if target in TOPIC_EVENT:
                out.emit(TOPIC_EVENT[target], payload, net.serial[m])
                actions.append(action(target, "notified", now, event=event, rule=rule.name))
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
                    action("wfm", "work_order", now, event=event, rule=rule.name, work_order=wo.number)
                )
    save_actions(session, actions, result)
