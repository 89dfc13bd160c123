"""The scheduler's slots: which times a cron schedule names between two instants and what catch-up
keeps of them (expectations written out by hand), and a wrong schedule file refused with its line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger

from meter2cash.core.errors import InvalidInput
from meter2cash.integration.scheduler import MAX_CATCH_UP, due_slots, load_schedule, parse_schedule

IST = ZoneInfo("Asia/Kolkata")


def test_a_daily_job_missed_for_three_days() -> None:
    trig = CronTrigger.from_crontab("0 2 * * *", timezone=IST)
    last = datetime(2026, 12, 3, 2, 0, tzinfo=IST)  # ran at 02:00 IST on the 3rd
    now = datetime(2026, 12, 6, 9, 0, tzinfo=IST)
    missed = [datetime(2026, 12, d, 2, 0, tzinfo=IST) for d in (4, 5, 6)]
    assert due_slots(trig, last, now, "all") == missed
    assert due_slots(trig, last, now, "latest") == missed[-1:]
    assert due_slots(trig, last, now, "none") == []  # 02:00 is seven hours ago
    assert due_slots(trig, last, datetime(2026, 12, 6, 2, 0, 30, tzinfo=IST), "none") == missed[-1:]
    assert due_slots(trig, missed[-1], now, "all") == []  # nothing after the last run


def test_catching_up_all_is_bounded() -> None:
    trig = CronTrigger.from_crontab("*/5 * * * *", timezone=UTC)
    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    slots = due_slots(trig, now - timedelta(days=2), now, "all")
    assert len(slots) == MAX_CATCH_UP
    assert slots[-1] == now and slots[0] == now - timedelta(minutes=5 * (MAX_CATCH_UP - 1))


def test_a_day_whose_local_time_daylight_saving_skips_still_runs_once() -> None:
    berlin = ZoneInfo("Europe/Berlin")  # on 2026-03-29 the clocks jump from 02:00 to 03:00
    trig = CronTrigger.from_crontab("30 2 * * *", timezone=berlin)
    after, now = datetime(2026, 3, 27, 12, tzinfo=berlin), datetime(2026, 3, 31, 12, tzinfo=berlin)
    slots = [s.astimezone(UTC) for s in due_slots(trig, after, now, "all")]
    assert slots == [
        datetime(2026, 3, 28, 1, 30, tzinfo=UTC),  # 02:30 CET
        datetime(2026, 3, 29, 1, 30, tzinfo=UTC),  # no 02:30 that day: 03:30 CEST, once
        datetime(2026, 3, 30, 0, 30, tzinfo=UTC),  # 02:30 CEST
        datetime(2026, 3, 31, 0, 30, tzinfo=UTC),
    ]


def test_the_shipped_schedule_names_every_periodic_job() -> None:
    plan = load_schedule()
    assert set(plan.jobs) == {
        "command_timeouts", "order_triggers", "order_escalation", "notifications", "reacquire", "vee",
        "prepaid_daily", "collections", "bill_run", "statistics",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('version = "1"\n\n[jobs.vee]\ncron = "61 1 * * *"\n', "s.toml:3: jobs.vee.cron '61 1 * * *'"),
        ('version = "1"\n[jobs.dance]\ncron = "0 1 * * *"\n', "s.toml:2: no job 'dance'"),
        ('version = "1"\n[jobs.vee]\ncron = "0 1 * * *"\ncatch_up = "some"\n', "s.toml:2: jobs.vee.catch_up"),
        ('version = 1\n[jobs.vee]\ncron = "0 1 * * *"\n', "s.toml: version"),
    ],
)
def test_a_wrong_schedule_is_refused_with_file_line_and_reason(text: str, where: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        parse_schedule(text, "s.toml")
    assert exc.value.code == "scheduler.bad_schedule"
    assert exc.value.message.startswith(where), exc.value.message
