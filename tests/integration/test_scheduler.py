"""The scheduler on SQLite and PostgreSQL: due slots run once each, the history records them,
catch-up after downtime, a failing job recorded with its reason, and two scheduler processes
started together running every slot exactly once between them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from meter2cash.integration.scheduler import parse_schedule, run_due
from meter2cash.integration.scheduler_models import ScheduledRun

NOW = datetime(2026, 12, 7, 10, 0, 20, tzinfo=UTC)
SCHEDULE = """
version = "t-1"

[jobs.order_triggers]
cron = "* * * * *"
catch_up = "latest"

[jobs.prepaid_daily]
cron = "0 2 * * *"
catch_up = "all"

[jobs.statistics]
cron = "0 3 * * *"
catch_up = "latest"

[jobs.reacquire]
cron = "0 * * * *"
catch_up = "latest"
params = { days = "two" }
"""


def _rows(platform) -> list[tuple[str, datetime, str]]:
    with platform.sessions() as s:
        return [(r.job, r.slot, r.status) for r in s.scalars(select(ScheduledRun).order_by(ScheduledRun.id))]


def test_due_slots_run_once_and_a_downtime_is_caught_up(platform):
    plan = parse_schedule(SCHEDULE)
    platform.clock = lambda: NOW  # Asia/Kolkata: 15:30 local
    first = run_due(platform, plan)
    ist = timedelta(hours=5, minutes=30)
    assert [(r.job, r.slot.astimezone(UTC), r.status) for r in first] == [
        ("order_triggers", datetime(2026, 12, 7, 10, 0, tzinfo=UTC), "done"),
        ("prepaid_daily", datetime(2026, 12, 7, 2, 0, tzinfo=UTC) - ist, "done"),  # 02:00 IST today
        ("statistics", datetime(2026, 12, 7, 3, 0, tzinfo=UTC) - ist, "done"),
        ("reacquire", datetime(2026, 12, 7, 10, 0, tzinfo=UTC) - timedelta(minutes=30), "failed"),
    ]
    assert first[1].result["day"] == "2026-12-06"  # the prepaid run charges the day before
    assert "ValueError" in first[3].error and "two" in first[3].error
    assert run_due(platform, plan) == []  # nothing new is due
    # three days later: the daily prepaid run catches up every day missed, the rest the latest
    platform.clock = lambda: NOW + timedelta(days=3)
    later = Counter(r.job for r in run_due(platform, plan))
    assert later == {"order_triggers": 1, "prepaid_daily": 3, "statistics": 1, "reacquire": 1}
    rows = _rows(platform)
    assert len(rows) == len({(job, slot) for job, slot, _ in rows}) == 10
    days = sorted(slot for job, slot, _ in rows if job == "prepaid_daily")
    assert [d.astimezone(UTC) for d in days] == [
        datetime(2026, 12, d, 20, 30, tzinfo=UTC) for d in (6, 7, 8, 9)
    ]


def test_two_scheduler_processes_run_each_slot_once_between_them(platform, db_url, tmp_path):
    schedule = tmp_path / "schedule.toml"
    schedule.write_text(
        'version = "t-2"\n[jobs.order_triggers]\ncron = "* * * * *"\ncatch_up = "all"\n'
        '[jobs.command_timeouts]\ncron = "* * * * *"\ncatch_up = "all"\n'
    )
    env = {**os.environ, "M2C_DATABASE_URL": db_url, "M2C_TIMEZONE": "UTC"}
    cmd = [
        sys.executable,
        "-m",
        "meter2cash.cli",
        "scheduler",
        "run",
        "--once",
        "--schedule",
        str(schedule),
        "--json",
    ]
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=180) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    made = [[(r["job"], r["slot"]) for r in json.loads(out)] for out, _ in outs]
    rows = _rows(platform)
    # every slot was run by one of them: the catch-up of 31 minutes of each job, no slot twice
    assert len(rows) >= 2 * 31
    assert all(status == "done" for _, _, status in rows)
    assert not set(made[0]) & set(made[1])
    assert len(made[0]) + len(made[1]) == len(rows) == len({(j, s) for j, s, _ in rows})
