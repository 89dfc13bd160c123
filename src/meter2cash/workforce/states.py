"""The lifecycle of a work order, a python-statemachine machine::

    open ──assign──▶ assigned ──start──▶ in_progress ──complete──▶ completed      (final)
    assigned ──assign──▶ assigned (another crew)        assigned ──complete──▶ completed
    open, assigned, in_progress ──cancel──▶ cancelled                              (final)

A WFM may report a completion without having reported the start: ``complete`` is allowed from
``assigned`` as well. Pure: no Session, no clock.
"""

from __future__ import annotations

from statemachine import State, StateMachine

from meter2cash.core.errors import Conflict

#: The kinds of field work.
KINDS = (
    "tamper_inspection",
    "meter_fault",
    "disconnect_manual",
    "reconnect_manual",
    "outage_inspection",
    "meter_inspection",
    "meter_installation",
    "meter_exchange",
)


class WorkOrderLifecycle(StateMachine):
    """The states and moves of one work order (see the module docstring)."""

    open = State(initial=True)
    assigned = State()
    in_progress = State()
    completed = State(final=True)
    cancelled = State(final=True)

    assign = open.to(assigned) | assigned.to(assigned)
    start = assigned.to(in_progress)
    complete = assigned.to(completed) | in_progress.to(completed)
    cancel = open.to(cancelled) | assigned.to(cancelled) | in_progress.to(cancelled)


def _moves() -> dict[tuple[str, str], str]:
    return {
        (t.source.id, event.id): t.target.id
        for state in WorkOrderLifecycle.states
        for t in state.transitions
        for event in t.events
    }


_MOVES = _moves()
STATUSES: tuple[str, ...] = tuple(s.id for s in WorkOrderLifecycle.states)
EVENTS: tuple[str, ...] = tuple(dict.fromkeys(e for _, e in _MOVES))
FINAL: frozenset[str] = frozenset(s.id for s in WorkOrderLifecycle.states if s.final)


def next_status(current: str, event: str) -> str:
    """The status after ``event`` on a work order in ``current``; ``work_order.bad_transition``
    (:class:`Conflict`) when the lifecycle does not allow it."""
    target = _MOVES.get((current, event))
    if target is None:
        raise Conflict(
            f"a work order that is {current} cannot {event.replace('_', ' ')}",
            code="work_order.bad_transition",
            status=current,
            event=event,
        )
    return target
