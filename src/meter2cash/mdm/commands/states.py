"""The lifecycle of a head-end command, its group outcome and its retry schedule.

The lifecycle is a state machine (:class:`CommandLifecycle`, python-statemachine)::

    requested ──queue──▶ queued
    requested, queued ──send──▶ sent ──acknowledge──▶ acknowledged
    sent, acknowledged ──execute──▶ executed                              (final)
    requested, queued, sent, acknowledged, in_doubt ──fail──▶ failed      (final)
    requested, queued, sent, acknowledged ──time_out──▶ timed_out         (final)
    requested, queued ──cancel──▶ cancelled                               (final)
    sent, acknowledged ──lose──▶ in_doubt
    in_doubt ──execute──▶ executed;  in_doubt ──fail──▶ failed

``in_doubt`` is the outcome when the answer was lost: the command went out (``sent`` or
``acknowledged``) and no final report came before its deadline. It is **not** final: the meter
may have acted, so a late report of ``executed`` or ``failed`` still settles it (a relay state is
confirmed by a report or a read-back, never assumed). Nothing else moves it: it is never sent
again, cancelled or timed out. A command can be cancelled only before it is sent.

Each event leads to one status, so a head-end report names the status it reports
(:func:`apply_report`); a report of the status a command already has is a duplicate message and
changes nothing. Everything here is pure: no Session, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from statemachine import State, StateMachine

from meter2cash.core.errors import Conflict, InvalidInput


class CommandLifecycle(StateMachine):
    """The states and moves of one command (see the module docstring for the diagram)."""

    requested = State(initial=True)
    queued = State()
    sent = State()
    acknowledged = State()
    in_doubt = State()
    executed = State(final=True)
    failed = State(final=True)
    timed_out = State(final=True)
    cancelled = State(final=True)

    queue = requested.to(queued)
    # the event ``send``: the machine's own method for firing events is called send
    dispatch = requested.to(sent) | queued.to(sent)
    acknowledge = sent.to(acknowledged)
    execute = sent.to(executed) | acknowledged.to(executed) | in_doubt.to(executed)
    fail = (
        requested.to(failed)
        | queued.to(failed)
        | sent.to(failed)
        | acknowledged.to(failed)
        | in_doubt.to(failed)
    )
    time_out = (
        requested.to(timed_out) | queued.to(timed_out) | sent.to(timed_out) | acknowledged.to(timed_out)
    )
    cancel = requested.to(cancelled) | queued.to(cancelled)
    lose = sent.to(in_doubt) | acknowledged.to(in_doubt)


#: The lifecycle's event names that differ from the machine's.
MACHINE_EVENT: dict[str, str] = {"send": "dispatch"}
_LIFECYCLE_EVENT = {machine: event for event, machine in MACHINE_EVENT.items()}


def _moves() -> dict[tuple[str, str], str]:
    """(status, event) → next status, read once from the machine's definition, which must give
    each event one target status (a reported status then names its event)."""
    moves: dict[tuple[str, str], str] = {}
    target_of: dict[str, str] = {}
    for state in CommandLifecycle.states:
        for transition in state.transitions:
            for machine_event in transition.events:
                event = _LIFECYCLE_EVENT.get(machine_event.id, machine_event.id)
                moves[(transition.source.id, event)] = transition.target.id
                if target_of.setdefault(event, transition.target.id) != transition.target.id:
                    raise TypeError(f"event {event} leads to more than one status")
    return moves


_MOVES = _moves()

#: Every status a command can have.
STATUSES: tuple[str, ...] = tuple(s.id for s in CommandLifecycle.states)
#: Every event of the lifecycle.
EVENTS: tuple[str, ...] = tuple(dict.fromkeys(event for _, event in _MOVES))
#: Statuses nothing moves out of.
FINAL: frozenset[str] = frozenset(s.id for s in CommandLifecycle.states if s.final)
#: Statuses still waiting for the head-end: a deadline may time them out.
WAITING: frozenset[str] = frozenset(src for src, event in _MOVES if event == "time_out")
#: The status each event leads to (one each), so a reported status names its event.
EVENT_FOR: dict[str, str] = {target: event for (_, event), target in _MOVES.items()}


def next_status(current: str, event: str) -> str:
    """The status after ``event`` on a command in ``current``; ``command.bad_transition``
    (:class:`Conflict`) when the lifecycle does not allow it, or either name is unknown."""
    target = _MOVES.get((current, event))
    if target is None:
        raise Conflict(
            f"a command in {current} cannot {event}",
            code="command.bad_transition",
            status=current,
            event=event,
        )
    return target


def reachable(current: str) -> tuple[str, ...]:
    """The statuses one event takes a command in ``current`` to (none from a final status)."""
    return tuple(target for (src, _), target in _MOVES.items() if src == current)


#: How far along its way a command is: a progress report (queued, sent, acknowledged) for a
#: command already further along is stale — messages overtake each other — and changes nothing.
PROGRESS: dict[str, int] = {"requested": 0, "queued": 1, "sent": 2, "acknowledged": 3}


def _rank(status: str) -> int:
    return PROGRESS.get(status, 4)  # in_doubt and the final statuses are past every progress step


def apply_report(current: str, reported: str) -> str | None:
    """The status a head-end report of ``reported`` leaves a command in ``current`` with;
    ``None`` when the report is the status the command already has (a duplicate message) or a
    progress report (queued, sent, acknowledged) the command is already past (a stale message
    that arrived late): nothing to do, nothing re-stamped. ``command.bad_transition`` when the
    move is not allowed."""
    if reported == current:
        return None
    if reported in PROGRESS and reported != "requested" and _rank(current) > PROGRESS[reported]:
        return None
    event = EVENT_FOR.get(reported)
    if event is None:
        raise Conflict(
            f"a command in {current} cannot go to {reported}",
            code="command.bad_transition",
            status=current,
            reported=reported,
        )
    return next_status(current, event)


#: Statuses that end the wait of a group for its child: the final ones and ``in_doubt``.
SETTLED: frozenset[str] = FINAL | {"in_doubt"}


def group_outcome(children_statuses: Iterable[str]) -> str:
    """The outcome of a group command from the statuses of its children.

    ``pending`` while any child is still waiting for the head-end (not in :data:`SETTLED`);
    then ``success`` when every child executed, ``failed`` when none did and ``partial`` otherwise.
    A cancelled, timed-out or in-doubt child counts as not executed: a group only succeeds where
    every meter confirmed. An in-doubt child settled later by a late report changes the outcome
    it gives. A group without children is ``command.empty_group`` (:class:`InvalidInput`).
    """
    statuses = list(children_statuses)
    if not statuses:
        raise InvalidInput("a group command has no children", code="command.empty_group")
    unknown = sorted(set(statuses) - set(STATUSES))
    if unknown:
        raise InvalidInput(f"unknown command statuses {unknown}", code="command.unknown_status")
    if any(s not in SETTLED for s in statuses):
        return "pending"
    executed = sum(s == "executed" for s in statuses)
    if executed == len(statuses):
        return "success"
    return "failed" if executed == 0 else "partial"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When to try a command again: exponential backoff under a cap, within a number of
    attempts and before a deadline.

    The wait after attempt *n* (1 = the first try) is ``first_wait × factor^(n−1)``, never more
    than ``cap``; attempt *n + 1* is ``now`` + that wait, provided *n* < ``attempts`` and that time
    is not after ``deadline`` (timezone-aware).
    """

    attempts: int
    first_wait: timedelta
    factor: float
    cap: timedelta
    deadline: datetime

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise InvalidInput("a retry policy allows at least one attempt", code="command.bad_retry_policy")
        if not timedelta(0) < self.first_wait <= self.cap:
            raise InvalidInput(
                "the first wait must be positive and within the cap", code="command.bad_retry_policy"
            )
        if not (math.isfinite(self.factor) and self.factor >= 1):
            raise InvalidInput("the backoff factor must be at least 1", code="command.bad_retry_policy")
        _aware(self.deadline, "deadline")

    def wait_after(self, attempt: int) -> timedelta:
        """The wait after attempt ``attempt`` (≥ 1) before the next, capped."""
        if attempt < 1:
            raise InvalidInput("attempts count from 1", code="command.bad_attempt")
        steps = attempt - 1
        # compare exponents first: factor^steps may overflow a float long before the cap is reached
        if self.factor > 1 and steps * math.log(self.factor) >= math.log(self.cap / self.first_wait):
            return self.cap
        return min(self.first_wait * (self.factor**steps), self.cap)

    def next_attempt_at(self, attempt: int, now: datetime) -> datetime | None:
        """When to make attempt ``attempt + 1`` after attempt ``attempt`` ended at ``now``;
        ``None`` when the attempts are used up or that time would be after the deadline."""
        _aware(now, "now")
        if attempt >= self.attempts:
            return None
        at = now + self.wait_after(attempt)
        return at if at <= self.deadline else None


def _aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(f"{name} must be timezone-aware", code="command.naive_time")
