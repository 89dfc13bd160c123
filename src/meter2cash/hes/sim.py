"""The fleet simulator's engine: a head-end and its meters in simulated time.

:class:`SimEngine` advances one block (the capture period, 15 or 30 minutes) per :meth:`step`:

- each meter's energy from the demo's load shapes (:func:`meter2cash.hes.fleet.consumer_day_kwh`),
  zero while its relay is open or its DT is out; the DT and feeder boundary meters measure their
  consumers plus losses (:func:`meter2cash.hes.fleet.boundary_energy`); registers, maximum demand
  and load violations follow, all on whole arrays;
- every ``push_every_s`` each DCU pushes its meters' block-load rows since its last push (the
  clock of a row is the END of its block); at local midnight the daily profile (cumulative
  registers) and the day's medium/low-priority events; at a month's first midnight the billing
  profile, and the maximum demand is reset;
- a share ``miss`` of pushes is lost, and now and then a DCU is down for hours: what was not
  delivered stays in the meters' memory and is answered by ``reacquire`` commands;
- events (IS 15959 IDs): outages on DTs (every meter of the DT sends 101 within seconds, then 102),
  voltage and current events, magnet and cover-open tampers, relay operations, load violations;
  high-priority events are pushed when they happen;
- commands are answered after simulated delays (:mod:`meter2cash.hes.sim_commands`).

Messages go out through ``send(kind, payload)``; everything is deterministic from the fleet's and
the run's seeds.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from meter2cash.hes import protocol as p
from meter2cash.hes.fleet import CONSUMER, DT_METER, SimFleet, boundary_energy, consumer_day_kwh
from meter2cash.hes.sim_messages import (
    BILLING_COLUMNS,
    BLOCK_COLUMNS,
    BLOCK_DECIMALS,
    DAILY_COLUMNS,
    BillingEntry,
    LoggedEvent,
    MeterMemory,
    events_message,
    iso,
    profile_messages,
    pushed_at_once,
    utc,
)
from meter2cash.mdm.events.catalogue import LOAD_VIOLATION

Send = Callable[[str, bytes], None]

#: The event ID the simulated meters log a load violation under: the catalogue's, once it has one.
#: Until then 0, with ``data.event`` = ``event.load_violation`` naming it.
LOAD_VIOLATION_ID = LOAD_VIOLATION.is15959_id or 0
#: Random events per meter and day: (occurrence, restoration or None, chance, minutes (lo, hi),
#: only on three-phase meters).
RANDOM_EVENTS: tuple[tuple[int, int | None, float, tuple[int, int], bool], ...] = (
    (1, 2, 0.003, (5, 60), True),  # R-phase voltage missing
    (3, 4, 0.003, (5, 60), True),  # Y-phase voltage missing
    (5, 6, 0.003, (5, 60), True),  # B-phase voltage missing
    (7, 8, 0.01, (5, 60), False),  # over voltage
    (11, 12, 0.02, (10, 120), True),  # voltage unbalance
    (51, 52, 0.002, (5, 30), True),  # R-phase current reverse
    (63, 64, 0.03, (10, 120), True),  # current unbalance
    (67, 68, 0.01, (5, 30), False),  # over current
    (201, 202, 0.002, (5, 60), False),  # magnet
    (251, None, 0.001, (0, 0), False),  # cover open
)


@dataclass(frozen=True)
class SimConfig:
    """How the head-end and its network behave in a run."""

    hes: str = "hes"
    #: Share of DCU pushes lost (communication failures).
    miss: float = 0.02
    #: Chance a DCU is down for 2–8 hours, per DCU and day.
    dcu_outage: float = 0.02
    #: Share of commands the meter fails, never answers, or whose final answer is lost.
    fail: float = 0.01
    no_answer: float = 0.005
    lost_answer: float = 0.005
    #: Share of firmware upgrades that fail on top of ``fail``.
    firmware_fail: float = 0.05
    push_every_s: int = 3600
    #: Outages per DT and day.
    outage_rate: float = 0.05
    #: Factor on the chances of :data:`RANDOM_EVENTS` (0: none).
    event_rate: float = 1.0
    #: Chance a meter moves to another DCU, per meter and day.
    move_rate: float = 0.002
    memory_days: int = 35
    #: Report ``queued`` when a command arrives (before ``acknowledged``).
    report_queued: bool = True
    #: Push on schedule (network, profiles, event logs); ``False``: only answer commands.
    pushes: bool = True
    seed: int = 7


@dataclass
class SimStats:
    sent: Counter[str] = field(default_factory=Counter)
    intervals: int = 0
    pushes: int = 0
    missed_pushes: int = 0
    block_rows: int = 0
    events: Counter[int] = field(default_factory=Counter)
    commands: Counter[str] = field(default_factory=Counter)
    replies: Counter[str] = field(default_factory=Counter)
    #: Messages given up waiting for the MDM's reply (sim_run's window).
    unanswered: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "messages_sent": dict(self.sent),
            "intervals": self.intervals,
            "pushes": self.pushes,
            "missed_pushes": self.missed_pushes,
            "block_rows": self.block_rows,
            "events": {str(k): v for k, v in sorted(self.events.items())},
            "commands": dict(self.commands),
            "replies": dict(self.replies),
            "unanswered": self.unanswered,
        }


class SimEngine:
    """The simulated head-end (see the module's doc). ``now`` is simulated epoch seconds."""

    def __init__(self, fleet: SimFleet, cfg: SimConfig, send: Send) -> None:
        from meter2cash.hes.sim_commands import CommandExecutor

        self.fleet, self.cfg, self._send = fleet, cfg, send
        spec = fleet.spec
        self.tz = ZoneInfo(spec.tz)
        self.interval = spec.interval_s
        self.slots = spec.slots
        self.t0 = int(spec.start_utc().timestamp())
        self.now = self.t0
        self.k = 0  #: the next block to simulate
        self.rng = np.random.default_rng([spec.seed, cfg.seed, 3])
        self.stats = SimStats()
        n = len(fleet)
        self.memory = MeterMemory(n, self.slots, cfg.memory_days)
        self._day_kwh = np.zeros((fleet.n_consumers, self.slots))
        self._day = -1
        self._out_from = np.full(len(fleet.dt_codes), -1, np.int64)
        self._out_to = np.full(len(fleet.dt_codes), -1, np.int64)
        self._dcu_down_from = np.zeros(len(fleet.dcu_codes), np.int64)
        self._dcu_down_until = np.zeros(len(fleet.dcu_codes), np.int64)
        self._violating = np.zeros(n, bool)
        self._last_push_k = 0
        self._scheduled: list[tuple[int, int, LoggedEvent]] = []  #: (epoch, seq, event) heap
        self._pending: list[tuple[int, int, Callable[[], None]]] = []  #: (epoch, seq, action) heap
        self._seq = itertools.count()
        self._daily_events: list[LoggedEvent] = []
        self._urgent: list[LoggedEvent] = []
        self.commands = CommandExecutor(self)

    # --- sending --------------------------------------------------------------------------------

    def send(self, message: p.Message) -> None:
        """Send one message (after the high-priority events logged before it); a profile's
        block-load rows are counted."""
        if self._urgent and message.kind != "events":
            self.flush_events()
        if (
            isinstance(message, p.ProfileMessage)
            and message.profile == p.BLOCK_LOAD
            and not message.correlation_id
        ):
            self.stats.block_rows += sum(len(m.rows) for m in message.meters)
        self.stats.sent[message.kind] += 1
        self._send(message.kind, p.dump(message))

    def wrap_send(self, through: Send) -> Send:
        """Send every message through ``through`` from now on; the sender it replaces is returned
        (for ``through`` to pass each message on to)."""
        inner, self._send = self._send, through
        return inner

    def at(self, epoch: int, action: Callable[[], None]) -> None:
        """Do ``action`` when simulated time reaches ``epoch``."""
        heapq.heappush(self._pending, (int(epoch), next(self._seq), action))

    def next_due(self) -> int | None:
        return self._pending[0][0] if self._pending else None

    def advance_to(self, epoch: int) -> None:
        """Run what is due up to ``epoch`` (commands' answers, scheduled changes) and move there."""
        while self._pending and self._pending[0][0] <= epoch:
            due, _, action = heapq.heappop(self._pending)
            self.now = max(self.now, due)
            action()
            self.flush_events()
        self.now = max(self.now, epoch)

    def log_event(self, meter: int, event_id: int, true_at: int, data: dict[str, Any] | None = None) -> None:
        """Log an event in the meter's memory, stamped by its own clock; a high-priority one is
        pushed at once (with the others of the same moment), the rest with the next daily
        event-log read."""
        ev = LoggedEvent(meter, event_id, int(true_at + round(float(self.fleet.drift_s[meter]))), data or {})
        self.memory.events.append(ev)
        self.stats.events[event_id] += 1
        (self._urgent if pushed_at_once(event_id) else self._daily_events).append(ev)

    def flush_events(self) -> None:
        """Push the high-priority events logged since the last push, in one message."""
        if not self._urgent:
            return
        evs, self._urgent = self._urgent, []
        first = evs[0]
        self.send(
            events_message(
                message_id=f"{self.cfg.hes}-ev-{self.fleet.serial[first.meter]}-{first.event_id}-{first.at}-{len(evs)}",
                sender=self.cfg.hes,
                sent_at=max(self.now, max(ev.at for ev in evs)),
                events=evs,
                names=self.names,
                tz=self.tz,
            )
        )

    def dcu_down(self, meter: int, at: int) -> bool:
        """Whether the DCU meter row ``meter`` talks through is down at ``at``."""
        d = int(self.fleet.dcu_of[meter])
        return d >= 0 and bool(self._dcu_down_from[d] <= at < self._dcu_down_until[d])

    def names(self, meter: int) -> tuple[str, str]:
        """The serial of meter row ``meter`` and the DCU it talks through now."""
        return self.fleet.serial[meter], self.fleet.dcu_code(meter)

    # --- the start ------------------------------------------------------------------------------

    def start(self) -> None:
        """Announce the network (every meter ↔ DCU, service point ↔ DT and DT ↔ feeder link) and push
        the daily profile of the first midnight (nothing when the run only answers commands)."""
        if not self.cfg.pushes:
            return
        f = self.fleet
        at = utc(self.t0)
        changes = [
            p.NetworkChange(link="meter_dcu", child=f.serial[i], parent=f.dcu_code(i), effective_at=at)
            for i in range(len(f))
            if f.dcu_of[i] >= 0
        ]
        changes += [
            p.NetworkChange(
                link="service_point_dt", child=sp["code"], parent=sp["transformer"], effective_at=at
            )
            for sp in f.consumers.bundle["service_points"]
        ]
        changes += [
            p.NetworkChange(
                link="dt_feeder", child=c, parent=f.feeder_codes[int(f.feeder_of_dt[i])], effective_at=at
            )
            for i, c in enumerate(f.dt_codes)
        ]
        for part in range(0, len(changes), 5000):
            self.send(
                p.NetworkMessage(
                    message_id=f"{self.cfg.hes}-net-{self.t0}-{part // 5000}",
                    sent_at=at,
                    sender=self.cfg.hes,
                    changes=changes[part : part + 5000],
                )
            )
        self._push_daily(0, self.t0)

    # --- one block ------------------------------------------------------------------------------

    def step(self) -> None:
        """Simulate the next block: its energy, events and the pushes due at its end."""
        f, k = self.fleet, self.k
        day, slot = divmod(k, self.slots)
        bs = self.t0 + k * self.interval
        be = bs + self.interval
        if slot == 0:
            self._begin_day(day, bs)
        n = f.n_consumers
        # the DTs' supply during the block: the share of it without an outage
        overlap = np.clip(np.minimum(self._out_to, be) - np.maximum(self._out_from, bs), 0, None)
        up_dt = 1.0 - overlap / self.interval
        cons = np.round(self._day_kwh[:, slot] * f.connected[:n] * up_dt[f.dt_of[:n]], 3)
        dt_kwh, fd_kwh = boundary_energy(
            cons, f.dt_of[:n], f.dt_loss + f.dt_theft, f.feeder_of_dt, f.feeder_loss
        )
        kwh = np.concatenate([cons, dt_kwh, fd_kwh])
        pf = np.clip(f.pf * self.rng.normal(1.0, 0.01, len(f)), 0.5, 1.0)
        kvah = np.round(kwh / pf, 3)
        up = np.where(f.dt_of >= 0, up_dt[np.maximum(f.dt_of, 0)], 1.0)
        level = np.where(f.dt_of >= 0, f.dt_voltage[np.maximum(f.dt_of, 0)], 1.0)
        volts = np.round(f.nominal_v * level * self.rng.normal(1.0, 0.008, len(f)) * up, 1)
        kw = kwh * 3600.0 / self.interval
        with np.errstate(divide="ignore", invalid="ignore"):
            amps = np.where(volts > 0, kw * 1000.0 / (volts * pf) / np.where(f.three_phase, 3, 1), 0.0)
        block = self.memory.day(day)
        block[:, slot, 0], block[:, slot, 1] = kwh, kvah
        block[:, slot, 2], block[:, slot, 3] = volts, np.round(amps, 2)
        f.kwh_reg += kwh
        f.kvah_reg += kvah
        f.period_kwh += kwh
        f.period_kvah += kvah
        higher = kw > f.md_kw
        f.md_kw = np.where(higher, np.round(kw, 3), f.md_kw)
        f.md_at = np.where(higher, be, f.md_at)
        # load violation: demand above the load limit (else the sanctioned load)
        limit = f.limit_kw()
        over = kw > limit
        for i in np.nonzero(over & ~self._violating)[0].tolist():
            self.log_event(
                i,
                LOAD_VIOLATION_ID,
                be,
                {
                    "event": LOAD_VIOLATION.code,
                    "demand_kw": round(float(kw[i]), 3),
                    "limit_kw": float(limit[i]),
                },
            )
        self._violating = over
        self._outage_events(bs, be)
        while self._scheduled and self._scheduled[0][0] < be:
            _, _, ev = heapq.heappop(self._scheduled)
            self.log_event(ev.meter, ev.event_id, ev.at, ev.data)
        self.flush_events()
        self.stats.intervals += 1
        self.k = k + 1
        self.advance_to(be)
        if (be - self.t0) % self.cfg.push_every_s == 0 or (be - self.t0) % 86400 == 0:
            self._push_blocks(self._last_push_k, self.k, be)
            self._last_push_k = self.k
        if (be - self.t0) % 86400 == 0:
            self._push_daily(day + 1, be)

    def _outage_events(self, bs: int, be: int) -> None:
        f = self.fleet
        starts = np.nonzero((self._out_from >= bs) & (self._out_from < be))[0]
        ends = np.nonzero((self._out_to >= bs) & (self._out_to < be))[0]
        for dts, event_id, spread in ((starts, 101, 5), (ends, 102, 30)):
            for dt in dts.tolist():
                t = int(self._out_from[dt] if event_id == 101 else self._out_to[dt])
                meters = np.nonzero((f.dt_of == dt) & (f.kind != 2))[0]
                delays = self.rng.integers(0, spread, len(meters))
                for i, d in zip(meters.tolist(), delays.tolist(), strict=True):
                    self.log_event(i, event_id, t + d)

    # --- a new day ------------------------------------------------------------------------------

    def _begin_day(self, day: int, t: int) -> None:
        f, cfg, rng = self.fleet, self.cfg, self.rng
        self._day = day
        self._day_kwh = consumer_day_kwh(f, day)
        f.drift_s += f.drift_rate
        if day > 0 and (f.spec.start_date + timedelta(days=day)).day == 1:
            self._close_billing(t)
        n_dt = len(f.dt_codes)
        # DT outages: one at most a day, 5 minutes to 3 hours
        has = rng.random(n_dt) < cfg.outage_rate
        start = t + rng.integers(0, 86400 - 3600, n_dt)
        length = rng.integers(300, 3 * 3600, n_dt)
        ongoing = self._out_to > t  # an outage from the day before goes on
        self._out_from = np.where(ongoing, self._out_from, np.where(has, start, -1))
        self._out_to = np.where(ongoing, self._out_to, np.where(has, start + length, -1))
        # DCUs down for hours: their pushes are lost
        down = rng.random(len(f.dcu_codes)) < cfg.dcu_outage
        self._dcu_down_from = np.where(down, t + rng.integers(0, 12 * 3600, len(down)), 0)
        self._dcu_down_until = np.where(
            down, self._dcu_down_from + rng.integers(2 * 3600, 8 * 3600, len(down)), 0
        )
        # random events of the day
        n = f.n_consumers
        for occ, rest, chance, (lo, hi), three in RANDOM_EVENTS:
            p_day = np.full(n, chance * cfg.event_rate)
            if occ == 201:  # magnets are five times as common behind the DTs with theft
                p_day = p_day * np.where(f.dt_theft[f.dt_of[:n]] > 0, 5.0, 1.0)
            hit = rng.random(n) < p_day
            if three:
                hit &= f.three_phase[:n]
            for i in np.nonzero(hit)[0].tolist():
                when = t + int(rng.integers(0, 86400))
                self._schedule(LoggedEvent(i, occ, when, {}))
                if rest is not None:
                    self._schedule(LoggedEvent(i, rest, when + 60 * int(rng.integers(lo, hi + 1)), {}))
        low = np.nonzero((f.dt_voltage[f.dt_of[:n]] < 0.96) & (rng.random(n) < 0.3 * cfg.event_rate))[0]
        for i in low.tolist():
            when = t + int(rng.integers(0, 86400))
            self._schedule(LoggedEvent(i, 9, when, {}))
            self._schedule(LoggedEvent(i, 10, when + 60 * int(rng.integers(10, 90)), {}))
        # meters that move to another DCU
        if len(f.dcu_codes) > 1:
            for i in np.nonzero(rng.random(n) < cfg.move_rate)[0].tolist():
                self.at(t + int(rng.integers(0, 86400)), partial(self._move, i))

    def schedule_outage(self, dt: int, start: int, end: int) -> None:
        """Cut the supply of DT ``dt`` from ``start`` to ``end`` (epoch seconds, within the current
        simulated day): its meters lose their energy and send 101, then 102 on restoration."""
        self._out_from[dt], self._out_to[dt] = start, end

    def schedule_dcu_outage(self, dcu: int, start: int, end: int) -> None:
        """Take DCU ``dcu`` down from ``start`` to ``end`` (within the current simulated day): its
        pushes are lost and commands to its meters fail."""
        self._dcu_down_from[dcu], self._dcu_down_until[dcu] = start, end

    def _schedule(self, ev: LoggedEvent) -> None:
        heapq.heappush(self._scheduled, (ev.at, next(self._seq), ev))

    def _move(self, i: int) -> None:
        f = self.fleet
        f.dcu_of[i] = (int(f.dcu_of[i]) + 1) % len(f.dcu_codes)
        change = p.NetworkChange(
            link="meter_dcu", child=f.serial[i], parent=f.dcu_code(i), effective_at=utc(self.now)
        )
        self.send(
            p.NetworkMessage(
                message_id=f"{self.cfg.hes}-net-move-{f.serial[i]}-{self.now}",
                sent_at=utc(self.now),
                sender=self.cfg.hes,
                changes=[change],
            )
        )

    def _close_billing(self, t: int) -> None:
        """The month's billing entry, pushed; then the maximum demand is reset."""
        f = self.fleet
        with np.errstate(divide="ignore", invalid="ignore"):
            avg_pf = np.where(f.period_kvah > 0, np.round(f.period_kwh / f.period_kvah, 3), np.nan)
        f.md_reset_count += 1
        entry = BillingEntry(
            t, f.kwh_reg.copy(), f.kvah_reg.copy(), f.md_kw.copy(), avg_pf, f.md_reset_count.copy()
        )
        self.memory.billing.append(entry)
        self._push_profile(
            p.BILLING, BILLING_COLUMNS, (3, 3, 3, 3, 0), [t], billing_values(entry)[:, None, :], t, "bp", None
        )
        f.md_kw[:] = 0.0
        f.md_at[:] = t
        f.md_reset_at[:] = t
        f.period_kwh[:] = 0.0
        f.period_kvah[:] = 0.0

    # --- pushes ---------------------------------------------------------------------------------

    def _push_blocks(self, k0: int, k1: int, at: int) -> None:
        if not self.cfg.pushes:
            return
        ks, values = self.memory.window(k0, k1)
        ends = (self.t0 + (ks + 1) * self.interval).tolist()
        self._push_profile(p.BLOCK_LOAD, BLOCK_COLUMNS, BLOCK_DECIMALS, ends, values, at, "bl", self.interval)

    def _push_daily(self, day: int, at: int) -> None:
        if not self.cfg.pushes:
            return
        f = self.fleet
        self.memory.daily[day] = np.stack([f.kwh_reg, f.kvah_reg], axis=1).copy()
        self._push_profile(
            p.DAILY, DAILY_COLUMNS, (3, 3), [at], self.memory.daily[day][:, None, :], at, "dp", 86400
        )
        if self._daily_events:
            evs, self._daily_events = self._daily_events, []
            self.send(
                events_message(
                    message_id=f"{self.cfg.hes}-evlog-{at}",
                    sender=self.cfg.hes,
                    sent_at=at,
                    events=evs,
                    names=self.names,
                    tz=self.tz,
                )
            )

    def _push_profile(
        self,
        profile: str,
        columns: list[str],
        decimals: tuple[int, ...],
        clocks_epoch: list[int],
        values: np.ndarray,
        at: int,
        tag: str,
        period: int | None,
    ) -> None:
        """One push per DCU (feeder meters: one of their own); a share is lost."""
        f = self.fleet
        clocks = [iso(c, self.tz) for c in clocks_epoch]
        order = np.argsort(f.dcu_of, kind="stable")
        groups = np.split(order, np.nonzero(np.diff(f.dcu_of[order]))[0] + 1)
        for members in groups:
            d = int(f.dcu_of[members[0]])
            self.stats.pushes += 1
            down = d >= 0 and self._dcu_down_from[d] <= at < self._dcu_down_until[d]
            if down or self.rng.random() < self.cfg.miss:
                self.stats.missed_pushes += 1
                continue
            name = f.dcu_codes[d] if d >= 0 else "direct"
            for msg in profile_messages(
                id_prefix=f"{self.cfg.hes}-{tag}-{name}-{at}",
                sender=self.cfg.hes,
                sent_at=at,
                profile=profile,
                columns=columns,
                decimals=decimals,
                meters=[self.names(i) for i in members.tolist()],
                clocks=clocks,
                values=values[members],
                capture_period_s=period,
            ):
                self.send(msg)


def billing_values(entry: BillingEntry) -> np.ndarray:
    """The billing profile's values of every meter, ``(meters, 5)`` in :data:`BILLING_COLUMNS` order."""
    return np.stack([entry.kwh, entry.kvah, entry.md_kw, entry.avg_pf, entry.resets.astype(float)], axis=1)


__all__ = ["CONSUMER", "DT_METER", "LOAD_VIOLATION_ID", "SimConfig", "SimEngine", "SimStats"]
