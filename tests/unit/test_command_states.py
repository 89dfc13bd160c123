"""The command lifecycle (against a hand-written table and the machine itself), group outcomes
(against a reference written apart), duplicate reports and the retry schedule."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from statemachine.exceptions import TransitionNotAllowed

from meter2cash.core.errors import Conflict, InvalidInput
from meter2cash.mdm.commands.states import (
    EVENTS,
    FINAL,
    MACHINE_EVENT,
    STATUSES,
    CommandLifecycle,
    RetryPolicy,
    apply_report,
    group_outcome,
    next_status,
    reachable,
)

# the lifecycle as written in docs/hes.md, one line per allowed move
TABLE = {
    ("requested", "queue"): "queued",
    ("requested", "send"): "sent",
    ("queued", "send"): "sent",
    ("sent", "acknowledge"): "acknowledged",
    ("sent", "execute"): "executed",
    ("acknowledged", "execute"): "executed",
    ("in_doubt", "execute"): "executed",
    ("requested", "fail"): "failed",
    ("queued", "fail"): "failed",
    ("sent", "fail"): "failed",
    ("acknowledged", "fail"): "failed",
    ("in_doubt", "fail"): "failed",
    ("requested", "time_out"): "timed_out",
    ("queued", "time_out"): "timed_out",
    ("sent", "time_out"): "timed_out",
    ("acknowledged", "time_out"): "timed_out",
    ("requested", "cancel"): "cancelled",
    ("queued", "cancel"): "cancelled",
    ("sent", "lose"): "in_doubt",
    ("acknowledged", "lose"): "in_doubt",
}
ALL_STATUSES = [
    "requested",
    "queued",
    "sent",
    "acknowledged",
    "in_doubt",
    "executed",
    "failed",
    "timed_out",
    "cancelled",
]
ALL_EVENTS = ["queue", "send", "acknowledge", "execute", "fail", "time_out", "cancel", "lose"]
statuses = st.sampled_from(ALL_STATUSES)
events = st.sampled_from(ALL_EVENTS)


def test_the_lifecycle_is_the_documented_one():
    assert sorted(STATUSES) == sorted(ALL_STATUSES)
    assert sorted(EVENTS) == sorted(ALL_EVENTS)
    assert {"executed", "failed", "timed_out", "cancelled"} == FINAL
    for status in ALL_STATUSES:
        for event in ALL_EVENTS:
            if (status, event) in TABLE:
                assert next_status(status, event) == TABLE[status, event]
            else:
                with pytest.raises(Conflict) as info:
                    next_status(status, event)
                assert info.value.code == "command.bad_transition"


def test_unknown_names_are_bad_transitions():
    for status, event in [("requested", "explode"), ("lost", "send"), ("", "")]:
        with pytest.raises(Conflict) as info:
            next_status(status, event)
        assert info.value.code == "command.bad_transition"


def test_the_statuses_the_database_holds_still_move_as_before():
    before = {
        "requested": ("sent", "failed", "timed_out"),
        "sent": ("acknowledged", "executed", "failed", "timed_out"),
        "acknowledged": ("executed", "failed", "timed_out"),
    }
    for status, targets in before.items():
        assert set(targets) <= set(reachable(status))
    for final in ("executed", "failed", "timed_out", "cancelled"):
        assert reachable(final) == ()


@given(statuses, st.lists(events, max_size=12))
def test_the_pure_function_and_the_machine_agree(start, sequence):
    machine = CommandLifecycle(start_value=start)
    status = start
    for event in sequence:
        try:
            expected = next_status(status, event)
        except Conflict:
            with pytest.raises(TransitionNotAllowed):
                machine.send(MACHINE_EVENT.get(event, event))
            continue
        machine.send(MACHINE_EVENT.get(event, event))
        status = expected
        assert machine.current_state_value == status


@given(statuses, st.lists(events, max_size=20))
def test_a_final_state_is_never_left(start, sequence):
    status, final_seen = start, None
    for event in sequence:
        with contextlib.suppress(Conflict):
            status = next_status(status, event)
        if final_seen is not None:
            assert status == final_seen
        elif status in {"executed", "failed", "timed_out", "cancelled"}:
            final_seen = status
    for event in ALL_EVENTS:
        if final_seen is not None:
            with pytest.raises(Conflict):
                next_status(final_seen, event)


def test_in_doubt_is_settled_by_a_late_report_and_nothing_else():
    assert apply_report("sent", "in_doubt") == "in_doubt"
    assert apply_report("in_doubt", "executed") == "executed"
    assert apply_report("in_doubt", "failed") == "failed"
    for reported in ("timed_out", "cancelled"):
        with pytest.raises(Conflict):
            apply_report("in_doubt", reported)
    for late in ("queued", "sent", "acknowledged"):  # progress it is already past: stale, nothing
        assert apply_report("in_doubt", late) is None


def test_a_progress_report_that_arrives_late_changes_nothing():
    # the order a command goes: requested, queued, sent, acknowledged, then the rest
    later = {
        "queued": ("sent", "acknowledged", "in_doubt", "executed", "failed", "timed_out", "cancelled"),
        "sent": ("acknowledged", "in_doubt", "executed", "failed", "timed_out", "cancelled"),
        "acknowledged": ("in_doubt", "executed", "failed", "timed_out", "cancelled"),
    }
    for reported, currents in later.items():
        for current in currents:
            assert apply_report(current, reported) is None, (current, reported)
    # but a final outcome never goes back to another
    with pytest.raises(Conflict):
        apply_report("executed", "failed")
    with pytest.raises(Conflict):
        apply_report("cancelled", "executed")


def test_cancel_only_before_sending():
    assert apply_report("requested", "cancelled") == "cancelled"
    assert apply_report("queued", "cancelled") == "cancelled"
    for status in ("sent", "acknowledged", "in_doubt", "executed"):
        with pytest.raises(Conflict):
            apply_report(status, "cancelled")


def _report(status: str, reported: str) -> str:
    """The status after a report; a refused report leaves the command as it was."""
    try:
        return apply_report(status, reported) or status
    except Conflict:
        return status


@given(st.lists(statuses, max_size=10), statuses)
def test_a_duplicate_report_changes_nothing(earlier, reported):
    status = "requested"
    for r in earlier:
        status = _report(status, r)
    once = _report(status, reported)
    assert _report(once, reported) == once
    if once == reported:
        assert apply_report(once, reported) is None


def test_a_report_of_the_current_status_is_nothing_to_do():
    for status in ALL_STATUSES:
        assert apply_report(status, status) is None
    with pytest.raises(Conflict):
        apply_report("requested", "switched_off")


def _reference_outcome(children: list[str]) -> str:
    waiting = {"requested", "queued", "sent", "acknowledged"}
    done = [c for c in children if c not in waiting]
    if len(done) < len(children):
        return "pending"
    if set(done) == {"executed"}:
        return "success"
    if "executed" in done:
        return "partial"
    return "failed"


@given(st.lists(statuses, min_size=1, max_size=30))
def test_a_group_outcome_follows_its_children(children):
    assert group_outcome(children) == _reference_outcome(children)


def test_group_outcomes_by_hand():
    assert group_outcome(["executed", "executed"]) == "success"
    assert group_outcome(["executed", "sent"]) == "pending"
    assert group_outcome(["executed", "cancelled"]) == "partial"
    assert group_outcome(["executed", "in_doubt"]) == "partial"
    assert group_outcome(["in_doubt", "timed_out", "cancelled", "failed"]) == "failed"
    assert group_outcome(iter(["executed"])) == "success"
    with pytest.raises(InvalidInput) as empty:
        group_outcome([])
    assert empty.value.code == "command.empty_group"
    with pytest.raises(InvalidInput):
        group_outcome(["executed", "vanished"])


T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def test_backoff_by_hand():
    policy = RetryPolicy(
        attempts=8,
        first_wait=timedelta(seconds=30),
        factor=2,
        cap=timedelta(minutes=5),
        deadline=T0 + timedelta(hours=1),
    )
    waits = [policy.next_attempt_at(n, T0) for n in range(1, 9)]
    assert waits == [
        T0 + timedelta(seconds=30),
        T0 + timedelta(seconds=60),
        T0 + timedelta(seconds=120),
        T0 + timedelta(seconds=240),
        T0 + timedelta(seconds=300),
        T0 + timedelta(seconds=300),
        T0 + timedelta(seconds=300),
        None,  # eight attempts made
    ]
    # 4 min after the last attempt ended at 10:57 would be 11:01, past the 11:00 deadline
    assert policy.next_attempt_at(4, T0 + timedelta(minutes=57)) is None
    assert policy.next_attempt_at(4, T0 + timedelta(minutes=56)) == T0 + timedelta(hours=1)


def test_retry_times_are_timezone_aware():
    with pytest.raises(InvalidInput) as naive_deadline:
        RetryPolicy(3, timedelta(seconds=1), 2, timedelta(seconds=10), datetime(2026, 12, 1, 11))
    assert naive_deadline.value.code == "command.naive_time"
    policy = RetryPolicy(3, timedelta(seconds=1), 2, timedelta(seconds=10), T0)
    with pytest.raises(InvalidInput):
        policy.next_attempt_at(1, datetime(2026, 12, 1, 9))
    ist = timezone(timedelta(hours=5, minutes=30))
    assert policy.next_attempt_at(1, datetime(2026, 12, 1, 15, 29, 0, tzinfo=ist)) == T0 - timedelta(
        seconds=59
    )


def test_a_retry_policy_refuses_nonsense():
    for bad in (
        dict(attempts=0),
        dict(first_wait=timedelta(0)),
        dict(first_wait=timedelta(minutes=2)),  # above the cap
        dict(factor=0.5),
        dict(factor=float("inf")),
    ):
        args = dict(
            attempts=3, first_wait=timedelta(seconds=1), factor=2.0, cap=timedelta(minutes=1), deadline=T0
        )
        with pytest.raises(InvalidInput) as info:
            RetryPolicy(**(args | bad))
        assert info.value.code == "command.bad_retry_policy"


@given(
    attempts=st.integers(1, 60),
    first_s=st.integers(1, 3600),
    factor=st.floats(1, 10, allow_nan=False),
    cap_s=st.integers(1, 86_400),
    deadline_s=st.integers(0, 7 * 86_400),
    attempt=st.integers(1, 80),
    now_s=st.integers(0, 7 * 86_400),
)
def test_backoff_never_passes_the_cap_or_the_deadline(
    attempts, first_s, factor, cap_s, deadline_s, attempt, now_s
):
    first, cap = timedelta(seconds=min(first_s, cap_s)), timedelta(seconds=cap_s)
    deadline, now = T0 + timedelta(seconds=deadline_s), T0 + timedelta(seconds=now_s)
    policy = RetryPolicy(attempts, first, factor, cap, deadline)
    at = policy.next_attempt_at(attempt, now)
    if attempt >= attempts:
        assert at is None
    if at is not None:
        assert now + first <= at <= now + cap
        assert at <= deadline
    # waits grow with each attempt until the cap
    assert policy.wait_after(attempt) <= policy.wait_after(attempt + 1) <= cap
