"""The simulated head-end answers re-read commands with ordinary reading files.

A re-read command (``hes.reread_requested``, see :mod:`meter2cash.mdm.vee.rereads`) names a meter,
a channel and a window. The simulator reads the meter again: it delivers the window's intervals
from its clean simulated load (the values before fault injection) as a CSV file in the format
:mod:`.delivery` writes, which then goes through normal ingestion. Meters or windows the simulator
has no load for, and channels other than the 15-minute kWh load profile, are not answered (the
request fails after its timeout).

:class:`SimulatedHes` holds the clean load; :meth:`SimulatedHes.from_state` rebuilds it from the
parameters a demo saved (:func:`save_state`), since the load is generated from seeds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy.orm import Session, sessionmaker

from meter2cash.core.errors import NotFound
from meter2cash.hes.delivery import CHANNEL, _csv_rows
from meter2cash.hes.simulator import INTERVAL_S, FleetConfig, build_fleet, simulate_load
from meter2cash.mdm.vee.rereads import ANSWER_PREFIX
from meter2cash.mdm.vee.ruleset.store import CustomerClasses

#: Where a demo leaves the simulator's parameters, under ``var_dir``.
STATE_FILE = Path("demo") / "hes" / "simulator.json"


@dataclass
class SimulatedHes:
    """Clean 15-minute load [kWh] of ``serials`` (row ``i``) from ``start_utc`` on."""

    serials: list[str]
    clean: npt.NDArray[np.float64]
    start_utc: datetime
    interval_s: int = INTERVAL_S

    def window(
        self, serial: str, start: datetime, end: datetime
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]] | None:
        """Epoch seconds and clean values of ``serial`` in ``[start, end)``, or ``None`` if unknown."""
        try:
            row = self.serials.index(serial)
        except ValueError:
            return None
        t0 = int(self.start_utc.timestamp())
        lo = max(0, (int(start.timestamp()) - t0) // self.interval_s)
        hi = min(self.clean.shape[1], (int(end.timestamp()) - t0) // self.interval_s)
        if hi <= lo:
            return None
        epoch = t0 + np.arange(lo, hi, dtype=np.int64) * self.interval_s
        return epoch, self.clean[row, lo:hi]

    def answer(self, commands: list[dict[str, Any]], out_dir: Path) -> list[Path]:
        """One reading file per command it can answer (named after the request), in ``out_dir``."""
        out_dir.mkdir(parents=True, exist_ok=True)
        files = []
        for cmd in commands:
            if cmd.get("channel") != CHANNEL:  # it simulates the 15-minute kWh load profile only
                continue
            got = self.window(
                cmd["meter"],
                datetime.fromisoformat(cmd["window_start"]),
                datetime.fromisoformat(cmd["window_end"]),
            )
            if got is None:
                continue
            epoch, values = got
            frame = _csv_rows(np.array([cmd["meter"]]), epoch, values[None, :], channel=cmd["channel"])
            path = out_dir / f"{ANSWER_PREFIX}{cmd['request_id']}-{cmd['meter']}.csv"
            frame.to_csv(path, index=False, float_format="%.3f")
            files.append(path)
        return files

    @classmethod
    def from_state(cls, path: Path) -> SimulatedHes:
        """Rebuild the simulator a demo saved with :func:`save_state` (``hes.simulator_state_missing``)."""
        if not path.exists():
            raise NotFound(
                f"no simulator state at {path}: run m2c demo first or give --state",
                code="hes.simulator_state_missing",
                path=str(path),
            )
        st = json.loads(path.read_text())
        fleet = build_fleet(
            FleetConfig(meters=st["meters"], seed=st["fleet_seed"]),
            datetime.fromisoformat(st["start_utc"]).date(),
            st["tz"],
        )
        start = datetime.fromisoformat(st["start_utc"])
        clean = simulate_load(fleet, start, st["n_intervals"], st["tz"], seed=st["load_seed"])
        return cls(list(fleet.serials), clean, start)


def save_state(
    path: Path,
    *,
    meters: int,
    fleet_seed: int,
    load_seed: int,
    start_utc: datetime,
    n_intervals: int,
    tz: str,
) -> None:
    """Remember how the simulated load was generated, so ``m2c hes answer-rereads`` can rebuild it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "meters": meters,
        "fleet_seed": fleet_seed,
        "load_seed": load_seed,
        "start_utc": start_utc.isoformat(),
        "n_intervals": n_intervals,
        "tz": tz,
    }
    path.write_text(json.dumps(state, indent=1))


def answer_round(
    sessions: sessionmaker[Session],
    *,
    hes: SimulatedHes | None = None,
    state_path: Path | None = None,
    out_dir: Path,
    source: str = "hes-reread",
    timeout_hours: float | None = None,
) -> dict[str, int]:
    """One round of the simulated head-end: send the pending re-read requests, answer every sent
    one it has load for with a reading file, ingest the files (one transaction each) and complete
    the requests whose data arrived (and fail those older than ``timeout_hours``, default
    :data:`~meter2cash.mdm.vee.rereads.TIMEOUT_HOURS`). Commits."""
    from meter2cash.db import transaction
    from meter2cash.mdm.ingest import ingest_paths
    from meter2cash.mdm.vee.rereads import TIMEOUT_HOURS, complete_rereads, send_rereads, sent_commands

    timeout = TIMEOUT_HOURS if timeout_hours is None else timeout_hours

    with transaction(sessions) as session:
        sent = send_rereads(session)
        commands = sent_commands(session)
    if not commands:
        return {"sent": sent, "answered": 0, "files": 0, "completed": 0, "failed": 0}
    if hes is None:
        if state_path is None:
            raise ValueError("give the simulator or the path of its saved state")
        hes = SimulatedHes.from_state(state_path)
    files = hes.answer(commands, out_dir)
    results = ingest_paths(sessions, files, source=source)
    with transaction(sessions) as session:
        done = complete_rereads(session, timeout_hours=timeout)
    return {
        "sent": sent,
        "answered": len(files),
        "files": sum(1 for r in results if r.error is None),
        **done,
    }


def demo_rereads(
    sessions: sessionmaker[Session],
    hes: SimulatedHes,
    out_dir: Path,
    *,
    start: datetime,
    end: datetime,
    tz: str,
    customer_classes: CustomerClasses | None = None,
) -> dict[str, int]:
    """The demo's operator asks the head-end to read again the intervals of every open exception
    on interval data; the simulated head-end answers, and VEE validates the re-read days (rule sets
    chosen with ``customer_classes``, see :func:`~meter2cash.mdm.vee.service.run_vee`)."""
    from sqlalchemy import select

    from meter2cash.db import transaction
    from meter2cash.mdm.vee import work_queue as queue
    from meter2cash.mdm.vee.models import VeeException
    from meter2cash.mdm.vee.service import run_vee

    with transaction(sessions) as session:
        ids = session.scalars(
            select(VeeException.id)
            .where(VeeException.status.in_(("open", "assigned")), VeeException.slot_count > 0)
            .order_by(VeeException.id)
        ).all()
        for xid in ids:
            queue.resolve(session, xid, "reread", actor="demo", reason="read the meter again")
    out = answer_round(sessions, hes=hes, out_dir=out_dir)
    with transaction(sessions) as session:
        run_vee(session, start=start, end=end, tz=tz, customer_classes=customer_classes)
    return {"requested": len(ids), **out}
