"""A simulated head-end in its own process, linked to this MDM over MQTT, for a run in simulated
time (the demo): commands go out through the command store and the serve loop, the simulator
(``m2c hes-sim run`` without pushes) carries them out, and its reports come back.

The serve loop runs on a clock the caller sets (:meth:`SimulatedField.at`): a day's commands are
requested, sent and confirmed at that day's times, so their deadlines and the reconnection times
are those of the simulated month. :meth:`SimulatedField.settle` waits until every command is in a
final state. :func:`open_field` gives ``None`` when no broker is reachable, and the caller then
carries out commands in process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from meter2cash.config import Settings
from meter2cash.hes.fleet import FleetSpec, build_sim_fleet, write_fleet_json
from meter2cash.hes.links import LinkUnavailable, MqttLink, forget_mqtt_sessions
from meter2cash.integration.hes_serve import ServeStats, serve
from meter2cash.mdm.commands.models import MeterCommand
from meter2cash.mdm.commands.states import SETTLED


@dataclass
class _View:
    """The platform as the serve loop sees it, on the field's clock."""

    settings: Settings
    sessions: sessionmaker[Session]
    clock: Callable[[], datetime]


class SimulatedField:
    """The simulator process and the serve loop of one run (see the module docstring)."""

    def __init__(
        self, settings: Settings, sessions: sessionmaker[Session], spec: FleetSpec, out_dir: Path, url: str
    ) -> None:
        self.sessions = sessions
        self._url = url
        self.hes, self.prefix = f"sim{uuid.uuid4().hex[:8]}", f"m2c{uuid.uuid4().hex[:6]}"
        self._now = datetime.now().astimezone()
        self._set = time.monotonic()
        out_dir.mkdir(parents=True, exist_ok=True)
        fleet_file = out_dir / "fleet.json"
        write_fleet_json(build_sim_fleet(spec), fleet_file)
        self._stop = threading.Event()
        self.stats = ServeStats()
        self.errors: list[BaseException] = []
        view = _View(settings, sessions, self._clock)
        # both ends' persistent sessions exist before anything is sent: the broker keeps what comes
        # for a side that is still starting
        for role in ("mdm", "hes"):
            MqttLink(url, role=role, hes=self.hes, prefix=self.prefix, connect_timeout_s=3).close()
        self._thread = threading.Thread(target=self._serve, args=(view, url), daemon=True)
        self._thread.start()
        self._sim = subprocess.Popen(
            [sys.executable, "-m", "meter2cash.cli", "hes-sim", "run", "--fleet", str(fleet_file),
             "--transport", "mqtt", "--url", url, "--hes", self.hes, "--prefix", self.prefix, "--days", "0",
             "--speed", "0", "--miss", "0", "--fail", "0.02", "--no-answer", "0", "--lost", "0",
             "--moves", "0", "--commands-only", "--idle", "3600", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        self.simulator: dict[str, Any] = {}

    def _clock(self) -> datetime:
        return self._now + timedelta(seconds=time.monotonic() - self._set)

    def _serve(self, view: _View, url: str) -> None:
        def keep(stats: ServeStats) -> None:
            self.stats = stats

        try:
            serve(view, "mqtt", hes=self.hes, prefix=self.prefix, url=url, stop=self._stop, poll_s=0.1,
                  dispatch_every=0.2, route_every=0, acquire_every=0, on_progress=keep)  # fmt: skip
        except BaseException as exc:
            self.errors.append(exc)

    def at(self, when: datetime) -> None:
        """Set the field's clock to ``when`` (it runs on from there)."""
        self._now, self._set = when, time.monotonic()

    def settle(self, timeout: float = 20.0) -> int:
        """Wait until no command waits for the head-end (every one final or in doubt, its relay to
        be read back); returns how many still wait (0 when none does)."""
        deadline = time.monotonic() + timeout
        while True:
            with self.sessions() as s:
                waiting = int(
                    s.scalar(
                        select(func.count())
                        .select_from(MeterCommand)
                        .where(MeterCommand.is_group.is_(False), MeterCommand.status.not_in(sorted(SETTLED)))
                    )
                    or 0
                )
            if waiting == 0 or time.monotonic() > deadline or self.errors or self._sim.poll() is not None:
                return waiting
            time.sleep(0.1)

    def close(self) -> None:
        """Stop the serve loop and the simulator; what the simulator did is in :attr:`simulator`."""
        self._stop.set()
        self._thread.join(30)
        if self._sim.poll() is None:
            self._sim.terminate()
        out, _ = self._sim.communicate(timeout=60)
        forget_mqtt_sessions(self._url, hes=self.hes, prefix=self.prefix)
        try:
            self.simulator = json.loads(out) if out.strip() else {}
        except ValueError:
            self.simulator = {}


def open_field(
    settings: Settings, sessions: sessionmaker[Session], spec: FleetSpec, out_dir: Path, url: str
) -> SimulatedField | None:
    """The simulated head-end linked over the MQTT broker at ``url``; ``None`` when there is none."""
    try:
        return SimulatedField(settings, sessions, spec, out_dir, url)
    except LinkUnavailable:
        return None
