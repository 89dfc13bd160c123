"""How the simulated head-end answers commands: queued → acknowledged → executed | failed.

A command is queued a second after it arrives, acknowledged by the meter 2–15 s later and executed
3–45 s after that (a firmware upgrade 3–10 minutes), all in simulated time. A share ``fail`` of
commands fails, a share ``no_answer`` is never answered (the MDM times out) and for a share
``lost_answer`` the meter acts but its final answer is lost (the MDM's command is in doubt until a
read-back settles it). A command whose ``deadline`` passes first is reported ``timed_out``.
Reports are stamped on the command's clock (its ``sent_at`` plus the simulated seconds since it
arrived), so a command's history reads in order whatever date the simulation is at.

What each command does and answers (``result`` of the ``executed`` report):

- ``connect`` / ``disconnect``: the relay; event 302 / 301 when it moves; ``{"relay": state}``.
- ``read``: ``{"profile": "relay"}`` → ``{"relay": state}``; the instantaneous profile → a
  ProfileMessage (kW, kVA, V, I, PF, per phase on three-phase meters); block load, daily or billing
  profile over ``from``/``to`` → ProfileMessages of what the meter stored; ``"events"`` → an
  EventsMessage of its event log. Data messages carry ``correlation_id`` = the command's
  ``message_id``; the result counts the rows (or events).
- ``reacquire``: ``{"channel": code, "from", "to"}` → the stored block-load rows of the window
  (register channels: the daily profile), as for a read.
- ``time_sync``: the clock drift is cleared; ``{"clock": iso}``.
- ``configure``: ``load_limit_kw``, ``tou`` or ``{"reset": "md"}``; the result echoes it.
- ``credit_update``: adds ``amount`` to the meter's credit; ``{"credit": "…"}``.
- ``payment_mode``: ``{"payment_mode": mode}``. ``firmware``: ``{"firmware": version}``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import numpy as np

from meter2cash.hes import protocol as p
from meter2cash.hes.sim_messages import (
    BILLING_COLUMNS,
    BLOCK_COLUMNS,
    BLOCK_DECIMALS,
    DAILY_COLUMNS,
    events_message,
    iso,
    profile_messages,
    report,
)

if TYPE_CHECKING:
    from meter2cash.hes.sim import SimEngine

INSTANT_COLUMNS = ["1.0.1.7.0.255", "1.0.9.7.0.255", "1.0.12.7.0.255", "1.0.11.7.0.255", "1.0.13.7.0.255"]
PHASE_COLUMNS = [
    "1.0.32.7.0.255", "1.0.52.7.0.255", "1.0.72.7.0.255",  # voltage R, Y, B
    "1.0.31.7.0.255", "1.0.51.7.0.255", "1.0.71.7.0.255",  # current R, Y, B
    "1.0.33.7.0.255", "1.0.53.7.0.255", "1.0.73.7.0.255",  # power factor R, Y, B
]  # fmt: skip
REGISTER_CHANNELS = ("kwh_import_register", "kvah_import_register")


class CommandFailed(Exception):
    """The meter could not do what the command asked; the message is the report's detail."""


class CommandExecutor:
    """Answers the commands an engine receives (see the module's doc)."""

    def __init__(self, engine: SimEngine) -> None:
        self.engine = engine
        self.rng = np.random.default_rng([engine.fleet.spec.seed, engine.cfg.seed, 4])
        #: Simulated time each command arrived, by its message id.
        self._arrived: dict[str, int] = {}

    def _report(self, cmd: p.CommandMessage, status: str, **kw: Any) -> None:
        """Report a step, stamped on the command's clock: its ``sent_at`` plus the simulated time
        since it arrived (the simulated date may be far from the MDM's)."""
        e = self.engine
        at = int(cmd.sent_at.timestamp()) + e.now - self._arrived.get(cmd.message_id, e.now)
        e.send(report(cmd, status, at=at, sender=e.cfg.hes, **kw))

    def receive(self, cmd: p.CommandMessage) -> None:
        """Take a command now; its answers follow in simulated time."""
        e, cfg = self.engine, self.engine.cfg
        e.stats.commands["received"] += 1
        meter = e.fleet.index.get(cmd.meter)
        draw = float(self.rng.random())
        t = e.now
        self._arrived[cmd.message_id] = t
        if draw < cfg.no_answer:
            e.stats.commands["unanswered"] += 1
            return
        if cfg.report_queued:
            e.at(t + 1, lambda: self._report(cmd, "queued"))
        ack = t + 1 + int(self.rng.integers(2, 16))
        done = (
            ack
            + int(self.rng.integers(3, 46))
            + (int(self.rng.integers(180, 601)) if cmd.action == "firmware" else 0)
        )
        # the deadline on the command's clock, in simulated time from its arrival
        allowed = int((cmd.deadline - cmd.sent_at).total_seconds()) if cmd.deadline is not None else None
        if allowed is not None and t + allowed < done:
            e.at(t + max(allowed, 1), lambda: self._timed_out(cmd))
            return
        if meter is None:
            e.at(ack, lambda: self._fail(cmd, f"meter {cmd.meter} is not behind this head-end"))
            return
        if e.dcu_down(meter, t):
            dcu = e.fleet.dcu_code(meter)
            e.at(ack, lambda: self._fail(cmd, f"{dcu} does not answer: the meter cannot be reached"))
            return
        e.at(ack, lambda: self._report(cmd, "acknowledged"))
        if draw < cfg.no_answer + cfg.fail:
            e.at(done, lambda: self._fail(cmd, "the meter did not execute the command"))
        elif draw < cfg.no_answer + cfg.fail + cfg.lost_answer:
            e.at(done, lambda: self._execute(cmd, meter, answer=False))
        else:
            e.at(done, lambda: self._execute(cmd, meter, answer=True))

    def _timed_out(self, cmd: p.CommandMessage) -> None:
        self.engine.stats.commands["timed_out"] += 1
        self._report(cmd, "timed_out", detail="no answer from the meter before the deadline")

    def _fail(self, cmd: p.CommandMessage, detail: str) -> None:
        self.engine.stats.commands["failed"] += 1
        self._report(cmd, "failed", detail=detail)

    def _execute(self, cmd: p.CommandMessage, meter: int, *, answer: bool) -> None:
        try:
            result = getattr(self, f"_do_{cmd.action}")(cmd, meter)
        except CommandFailed as exc:
            self._fail(cmd, str(exc))
            return
        if answer:
            self.engine.stats.commands["executed"] += 1
            self._report(cmd, "executed", result=result)
        else:
            self.engine.stats.commands["answer_lost"] += 1

    # --- the actions ----------------------------------------------------------------------------

    def _relay(self, meter: int) -> str:
        return "connected" if self.engine.fleet.connected[meter] else "disconnected"

    def _switch(self, meter: int, on: bool) -> dict[str, Any]:
        f = self.engine.fleet
        if f.kind[meter] != 0:
            raise CommandFailed("a boundary meter has no load switch")
        if bool(f.connected[meter]) != on:
            f.connected[meter] = on
            self.engine.log_event(meter, 302 if on else 301, self.engine.now)
        return {"relay": self._relay(meter)}

    def _do_connect(self, cmd: p.CommandMessage, meter: int) -> dict[str, Any]:
        return self._switch(meter, True)

    def _do_disconnect(self, cmd: p.CommandMessage, meter: int) -> dict[str, Any]:
        return self._switch(meter, False)

    def _do_read(self, cmd: p.CommandMessage, meter: int) -> dict[str, Any]:
        what = str(cmd.params.get("profile", p.INSTANTANEOUS))
        if what == "relay":
            return {"relay": self._relay(meter)}
        if what == "events":
            return self._events(cmd, meter)
        if what == p.INSTANTANEOUS:
            return self._instantaneous(cmd, meter)
        if what == p.BLOCK_LOAD:
            return self._blocks(cmd, meter)
        if what == p.DAILY:
            return self._daily(cmd, meter)
        if what == p.BILLING:
            return self._billing(cmd, meter)
        raise CommandFailed(f"the meter has no profile {what}")

    def _do_reacquire(self, cmd: p.CommandMessage, meter: int) -> dict[str, Any]:
        if str(cmd.params.get("channel", "")) in REGISTER_CHANNELS:
            return self._daily(cmd, meter)
        return self._blocks(cmd, meter)

    def _window(self, cmd: p.CommandMessage, default_s: int = 86400) -> tuple[int, int]:
        e = self.engine
        try:
            lo = (
                int(datetime.fromisoformat(cmd.params["from"]).timestamp())
                if cmd.params.get("from")
                else None
            )
            hi = int(datetime.fromisoformat(cmd.params["to"]).timestamp()) if cmd.params.get("to") else None
        except (TypeError, ValueError):
            raise CommandFailed("from/to are not ISO 8601 times") from None
        hi = e.now if hi is None else hi
        return (hi - default_s if lo is None else lo), hi

    def _blocks(self, cmd: p.CommandMessage, meter: int) -> dict[str, Any]:
        """The stored blocks that START in ``[from, to)``, stamped with their end."""
        e = self.engine
        lo, hi = self._window(cmd)
        k0 = max(0, -(-(lo - e.t0) // e.interval))
        k1 = max(k0, -(-(hi - e.t0) // e.interval))
        ks, values = e.memory.window(k0, min(k1, e.k))
        clocks = [iso(c, e.tz) for c in (e.t0 + (ks + 1) * e.interval).tolist()]
        return self._answer_profile(
            cmd, meter, p.BLOCK_LOAD, BLOCK_COLUMNS, BLOCK_DECIMALS, clocks, values, e.interval
        )

    def _daily(self, cmd: p.CommandMessage, meter: int) -> dict[str, Any]:
        e = self.engine
        lo, hi = self._window(cmd, 7 * 86400)
        days = sorted(d for d in e.memory.daily if lo <= e.t0 + d * 86400 <= hi)
        values = (
            np.stack([e.memory.daily[d] for d in days], axis=1) if days else np.zeros((len(e.fleet), 0, 2))
        )
        clocks = [iso(e.t0 + d * 86400, e.tz) for d in days]
        return self._answer_profile(cmd, meter, p.DAILY, DAILY_COLUMNS, (3, 3), clocks, values, 86400)

    def _billing(self, cmd: p.CommandMessage, meter: int) -> dict[str, Any]:
        from meter2cash.hes.sim import billing_values

        e = self.engine
        entries = e.memory.billing
        values = (
            np.stack([billing_values(b) for b in entries], axis=1)
            if entries
            else np.zeros((len(e.fleet), 0, 5))
        )
        clocks = [iso(b.at, e.tz) for b in entries]
        return self._answer_profile(
            cmd, meter, p.BILLING, BILLING_COLUMNS, (3, 3, 3, 3, 0), clocks, values, None
        )

    def _answer_profile(
        self,
        cmd: p.CommandMessage,
        meter: int,
        profile: str,
        columns: list[str],
        decimals: tuple[int, ...],
        clocks: list[str],
        values: np.ndarray,
        period: int | None,
    ) -> dict[str, Any]:
        e = self.engine
        rows = 0
        for msg in profile_messages(
            id_prefix=f"ans-{cmd.message_id}",
            sender=e.cfg.hes,
            sent_at=e.now,
            profile=profile,
            columns=columns,
            decimals=decimals,
            meters=[(cmd.meter, e.fleet.dcu_code(meter))],
            clocks=clocks,
            values=values[meter : meter + 1],
            capture_period_s=period,
            correlation_id=cmd.message_id,
        ):
            rows += sum(len(m.rows) for m in msg.meters)
            e.send(msg)
        return {"rows": rows}

    def _instantaneous(self, cmd: p.CommandMessage, meter: int) -> dict[str, Any]:
        e, f = self.engine, self.engine.fleet
        _, last = e.memory.window(max(0, e.k - 1), e.k)
        kwh, _, volts, amps = (last[meter, -1] if last.shape[1] else np.zeros(4)).tolist()
        kw = (
            round(kwh * 3600.0 / e.interval * float(self.rng.normal(1.0, 0.05)), 3)
            if f.connected[meter]
            else 0.0
        )
        pf = float(f.pf[meter])
        values = [kw, round(kw / pf, 3), volts, amps, pf]
        columns = list(INSTANT_COLUMNS)
        if f.three_phase[meter]:
            split = self.rng.normal(1.0, 0.03, 3)
            values += (
                [round(volts * s, 1) for s in split] + [round(amps * s, 2) for s in split[::-1]] + [pf] * 3
            )
            columns += PHASE_COLUMNS
        clock = iso(e.now + round(float(f.drift_s[meter])), e.tz)
        msg = p.ProfileMessage(
            message_id=f"ans-{cmd.message_id}",
            sent_at=datetime.fromtimestamp(e.now, e.tz),
            sender=e.cfg.hes,
            profile=p.INSTANTANEOUS,
            columns=[p.CLOCK, *columns],
            meters=[p.ProfileMeter(meter=cmd.meter, dcu=f.dcu_code(meter), rows=[[clock, *values]])],
            correlation_id=cmd.message_id,
        )
        e.send(msg)
        return {"rows": 1}

    def _events(self, cmd: p.CommandMessage, meter: int) -> dict[str, Any]:
        e = self.engine
        lo, hi = self._window(cmd)
        evs = [ev for ev in e.memory.events if ev.meter == meter and lo <= ev.at < hi]
        e.send(
            events_message(
                message_id=f"ans-{cmd.message_id}",
                sender=e.cfg.hes,
                sent_at=e.now,
                events=evs,
                names=e.names,
                tz=e.tz,
                correlation_id=cmd.message_id,
            )
        )
        return {"events": len(evs)}

    def _do_time_sync(self, cmd: p.CommandMessage, meter: int) -> dict[str, Any]:
        e = self.engine
        e.fleet.drift_s[meter] = 0.0
        return {"clock": iso(e.now, e.tz)}

    def _do_configure(self, cmd: p.CommandMessage, meter: int) -> dict[str, Any]:
        e, f, params = self.engine, self.engine.fleet, cmd.params
        result: dict[str, Any] = {}
        if "load_limit_kw" in params:
            try:
                limit = float(Decimal(str(params["load_limit_kw"])))
            except InvalidOperation:
                raise CommandFailed(f"load_limit_kw {params['load_limit_kw']!r} is not a number") from None
            if not limit > 0:
                raise CommandFailed("load_limit_kw must be above zero")
            f.load_limit_kw[meter] = limit
            result["load_limit_kw"] = params["load_limit_kw"]
        if "tou" in params:
            if not isinstance(params["tou"], dict):
                raise CommandFailed("tou must be an object")
            f.tou[meter] = dict(params["tou"])
            result["tou"] = params["tou"]
        if "reset" in params:
            if params["reset"] != "md":
                raise CommandFailed(f"the meter cannot reset {params['reset']!r}")
            f.md_kw[meter] = 0.0
            f.md_at[meter] = f.md_reset_at[meter] = e.now
            f.md_reset_count[meter] += 1
            result.update(reset="md", md_reset_count=int(f.md_reset_count[meter]))
        if not result:
            raise CommandFailed("nothing to configure: give load_limit_kw, tou or reset")
        return result

    def _do_credit_update(self, cmd: p.CommandMessage, meter: int) -> dict[str, Any]:
        f = self.engine.fleet
        try:
            amount = Decimal(str(cmd.params.get("amount")))
        except InvalidOperation:
            raise CommandFailed(f"amount {cmd.params.get('amount')!r} is not a decimal") from None
        if not amount.is_finite():
            raise CommandFailed("amount must be a finite decimal")
        f.credit[meter] += amount
        return {"credit": str(f.credit[meter])}

    def _do_payment_mode(self, cmd: p.CommandMessage, meter: int) -> dict[str, Any]:
        mode = cmd.params.get("mode")
        if mode not in ("prepaid", "postpaid"):
            raise CommandFailed(f"payment mode {mode!r} is neither prepaid nor postpaid")
        self.engine.fleet.prepaid[meter] = mode == "prepaid"
        return {"payment_mode": mode}

    def _do_firmware(self, cmd: p.CommandMessage, meter: int) -> dict[str, Any]:
        version = cmd.params.get("version")
        if not isinstance(version, str) or not version:
            raise CommandFailed("firmware needs a version")
        if self.rng.random() < self.engine.cfg.firmware_fail:
            raise CommandFailed("the image failed verification on the meter; the old firmware runs on")
        self.engine.fleet.firmware[meter] = version
        return {"firmware": version}
