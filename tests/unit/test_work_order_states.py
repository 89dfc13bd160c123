"""The work order lifecycle."""

import pytest

from meter2cash.core.errors import Conflict
from meter2cash.workforce.states import FINAL, STATUSES, next_status


@pytest.mark.parametrize(
    ("status", "event", "after"),
    [
        ("open", "assign", "assigned"),
        ("assigned", "assign", "assigned"),
        ("assigned", "start", "in_progress"),
        ("in_progress", "complete", "completed"),
        ("assigned", "complete", "completed"),
        ("open", "cancel", "cancelled"),
        ("in_progress", "cancel", "cancelled"),
    ],
)
def test_allowed_moves(status, event, after):
    assert next_status(status, event) == after


@pytest.mark.parametrize(
    ("status", "event"),
    [("open", "complete"), ("open", "start"), ("in_progress", "assign"), ("completed", "cancel"),
     ("cancelled", "assign"), ("completed", "complete"), ("open", "explode")],
)  # fmt: skip
def test_refused_moves_name_the_status_and_event(status, event):
    with pytest.raises(Conflict) as exc:
        next_status(status, event)
    assert exc.value.code == "work_order.bad_transition"
    assert exc.value.data == {"status": status, "event": event}


def test_statuses_and_final_ones():
    assert STATUSES == ("open", "assigned", "in_progress", "completed", "cancelled")
    assert {"completed", "cancelled"} == FINAL
