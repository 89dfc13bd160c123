"""The scheduler: every periodic job on the schedule of a versioned file, once per slot across any
number of scheduler processes, with a history of runs and catch-up after downtime.

``schedule.toml`` (shipped next to this module; ``M2C_SCHEDULE`` names another file) gives each
job of :data:`~meter2cash.integration.scheduled_jobs.JOBS` a cron expression in the platform's
time zone, what to do with the slots missed while no scheduler ran (``catch_up``: ``latest``,
``all`` — at most :data:`MAX_CATCH_UP` — or ``none``), whether it is enabled and its parameters.
The times are worked out by APScheduler's cron trigger (daylight-saving changes included).

A slot runs once: before running a job for a slot, a process inserts the row ``(job, slot)`` of
``scheduled_run`` and commits it; a second process that tries the same slot finds the row (a
unique key) and leaves it. The row then records the outcome, the duration and what the job did;
a job that raises is ``failed`` with the reason and the next slot runs as usual.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import tomllib
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from meter2cash.core.errors import InvalidInput, error_path
from meter2cash.db import transaction
from meter2cash.integration.scheduled_jobs import JOBS, Platform
from meter2cash.integration.scheduler_models import ScheduledRun

log = logging.getLogger(__name__)
DEFAULT_FILE = Path(__file__).with_name("schedule.toml")
#: Missed slots run at most, per job, when catching up with ``all``.
MAX_CATCH_UP = 31
#: How far back a job that never ran looks for a missed slot.
FIRST_LOOK_BACK = timedelta(days=1)


class JobSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    cron: str = Field(min_length=9, max_length=100)
    catch_up: Literal["latest", "all", "none"] = "latest"
    enabled: bool = True
    params: dict[str, Any] = Field(default_factory=dict)


class Schedule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: str = Field(min_length=1, max_length=40)
    jobs: dict[str, JobSpec]

    def trigger(self, job: str, tz: str) -> CronTrigger:
        return CronTrigger.from_crontab(self.jobs[job].cron, timezone=ZoneInfo(tz))


def _line(text: str, job: str) -> str:
    for n, line in enumerate(text.splitlines(), start=1):
        if line.strip().startswith(f"[jobs.{job}]"):
            return f":{n}"
    return ""


def parse_schedule(text: str, source: str = "schedule") -> Schedule:
    """A schedule from TOML text; ``scheduler.bad_schedule`` names the file, line and reason."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{source}: {exc}", code="scheduler.bad_schedule") from None
    try:
        schedule = Schedule.model_validate(doc)
    except ValidationError as exc:
        e = exc.errors(include_url=False)[0]
        where = error_path(e["loc"])
        job = where.split(".")[1] if where.startswith("jobs.") else ""
        raise InvalidInput(
            f"{source}{_line(text, job)}: {where}: {e['msg']}", code="scheduler.bad_schedule", field=where
        ) from None
    for job, spec in schedule.jobs.items():
        if job not in JOBS:
            raise InvalidInput(
                f"{source}{_line(text, job)}: no job {job!r} (jobs: {', '.join(sorted(JOBS))})",
                code="scheduler.bad_schedule",
                field=f"jobs.{job}",
            )
        try:
            CronTrigger.from_crontab(spec.cron)
        except ValueError as exc:
            raise InvalidInput(
                f"{source}{_line(text, job)}: jobs.{job}.cron {spec.cron!r}: {exc}",
                code="scheduler.bad_schedule",
                field=f"jobs.{job}.cron",
            ) from None
    return schedule


@lru_cache(maxsize=4)
def load_schedule(path: str | None = None) -> Schedule:
    """The schedule in ``path`` (default: the shipped ``schedule.toml``)."""
    file = Path(path) if path else DEFAULT_FILE
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read schedule {file}: {exc}", code="scheduler.bad_schedule") from None
    return parse_schedule(text, str(file))


def due_slots(trigger: CronTrigger, after: datetime, now: datetime, catch_up: str) -> list[datetime]:
    """The slots of ``trigger`` after ``after`` up to ``now``, as ``catch_up`` keeps them: the
    latest only, all (the last :data:`MAX_CATCH_UP`), or none but one at ``now`` itself."""
    slots: list[datetime] = []
    nxt = trigger.get_next_fire_time(None, after + timedelta(microseconds=1))
    while nxt is not None and nxt <= now:
        slots.append(nxt)
        nxt = trigger.get_next_fire_time(nxt, nxt + timedelta(microseconds=1))
    if catch_up == "latest":
        return slots[-1:]
    if catch_up == "none":
        return [s for s in slots[-1:] if now - s < timedelta(minutes=1)]
    return slots[-MAX_CATCH_UP:]


@dataclass(frozen=True, slots=True)
class RunRecord:
    job: str
    slot: datetime
    status: str
    duration_s: float
    result: dict[str, Any]
    error: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "slot": self.slot.isoformat(),
            "status": self.status,
            "duration_s": round(self.duration_s, 3),
            "result": self.result,
            "error": self.error,
        }


def _runner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:100]


def claim(platform: Platform, job: str, slot: datetime) -> int | None:
    """Claim ``(job, slot)`` for this process (committed at once); ``None`` when another has."""
    try:
        with transaction(platform.sessions) as s:
            row = ScheduledRun(
                job=job, slot=slot, status="running", runner=_runner(), started_at=platform.clock()
            )
            s.add(row)
            s.flush()
            return int(row.id)
    except IntegrityError:
        return None


def run_slot(platform: Platform, schedule: Schedule, job: str, slot: datetime) -> RunRecord | None:
    """Run ``job`` for ``slot`` unless another process claimed it; its record."""
    run_id = claim(platform, job, slot)
    if run_id is None:
        return None
    started = time.monotonic()
    result: dict[str, Any] = {}
    error = ""
    try:
        result = JOBS[job](platform, slot, dict(schedule.jobs[job].params))
    except Exception as exc:  # recorded as failed; the next slot runs as usual
        error = f"{type(exc).__name__}: {exc}"[:1000]
        log.warning("scheduled job %s for %s failed: %s", job, slot.isoformat(), error)
    took = time.monotonic() - started
    status = "failed" if error else "done"
    with transaction(platform.sessions) as s:
        row = s.get(ScheduledRun, run_id)
        assert row is not None
        row.status, row.finished_at, row.duration_s = status, platform.clock(), took
        row.result, row.error = _jsonable(result), error
    return RunRecord(job, slot, status, took, result, error)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)


def last_slots(platform: Platform) -> dict[str, datetime]:
    """The latest slot each job was run (or claimed) for."""
    stmt = select(ScheduledRun.job, func.max(ScheduledRun.slot)).group_by(ScheduledRun.job)
    with platform.sessions() as s:
        return {str(job): slot for job, slot in s.execute(stmt).all()}


def run_due(platform: Platform, schedule: Schedule, now: datetime | None = None) -> list[RunRecord]:
    """Run every enabled job's due slots (oldest first) that no other process has run; the runs
    this process made."""
    now = now or platform.clock()
    last = last_slots(platform)
    done: list[RunRecord] = []
    for job, spec in schedule.jobs.items():
        if not spec.enabled:
            continue
        after = last.get(job) or now - FIRST_LOOK_BACK
        for slot in due_slots(schedule.trigger(job, platform.settings.timezone), after, now, spec.catch_up):
            record = run_slot(platform, schedule, job, slot)
            if record is not None:
                done.append(record)
    return done


def next_runs(
    platform: Platform, schedule: Schedule, now: datetime | None = None
) -> dict[str, datetime | None]:
    now = now or platform.clock()
    return {
        job: schedule.trigger(job, platform.settings.timezone).get_next_fire_time(None, now)
        for job in schedule.jobs
    }


def serve(
    platform: Platform,
    schedule: Schedule,
    *,
    stop: threading.Event | None = None,
    tick_s: float = 5.0,
    on_run: Any = None,
) -> int:
    """Run due jobs until ``stop`` is set, looking every ``tick_s`` seconds (a slot is run within
    a tick of its time); how many runs this process made."""
    stop = stop or threading.Event()
    made = 0
    while not stop.is_set():
        for record in run_due(platform, schedule):
            made += 1
            if on_run is not None:
                on_run(record)
        stop.wait(tick_s)
    return made


__all__ = [
    "MAX_CATCH_UP",
    "RunRecord",
    "Schedule",
    "claim",
    "due_slots",
    "load_schedule",
    "next_runs",
    "parse_schedule",
    "run_due",
    "run_slot",
    "serve",
]
