"""Order workflows from their configuration files: every shipped file is valid, a wrong file is
refused with its name, line and reason, and an order moves only as its workflow allows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meter2cash.cis.orders.workflow import DEFAULT_DIR, ROLES, load_workflows, parse_workflow
from meter2cash.core.errors import Conflict, Forbidden, InvalidInput

WORKFLOWS = load_workflows()
ORDER_TYPES = (
    "new_connection", "temporary_supply", "load_change", "tariff_change", "temporary_disconnection",
    "meter_exchange", "prepaid_migration", "move_in", "move_out", "agreement_closure",
)  # fmt: skip

SMALL = """\
type = "small"
version = "1"
title = "Small"
prefix = "SM"
initial = "open"

[states.open]
label = "Open"

[states.done]
label = "Done"
final = true

[actions.finish]
from = ["open"]
to = "done"
roles = ["operator"]
"""


def test_every_order_type_has_a_shipped_workflow() -> None:
    assert sorted(WORKFLOWS) == sorted(ORDER_TYPES)
    assert len({w.prefix for w in WORKFLOWS.values()}) == len(WORKFLOWS)


def test_a_new_connection_goes_from_application_to_connected() -> None:
    wf = WORKFLOWS["new_connection"]
    state = wf.initial
    steps = [
        ("verify", "customer_service", {"verified_by": "clerk 7"}),
        ("order_installation", "operator", {}),
        ("report_installation", "field", {"meter": "SM1", "transformer": "DT1", "feeder": "F1",
                                          "first_reading": "12.5"}),
        ("verify_read", "system", {}),
        ("confirm", "billing", {}),
    ]  # fmt: skip
    for action, role, data in steps:
        state = wf.take(state, action, role, data)
    assert state == "connected"
    assert wf.allowed(state) == []
    kinds = [t.kind for t in wf.actions["confirm"].triggers]
    assert kinds == ["contract", "notification"]


def test_an_action_the_state_does_not_allow_is_refused_with_a_stable_code() -> None:
    wf = WORKFLOWS["new_connection"]
    with pytest.raises(Conflict) as exc:
        wf.take("applied", "confirm", "billing")
    assert exc.value.code == "order.action_not_allowed"
    assert "verify" in exc.value.message  # what it may do instead
    with pytest.raises(Conflict):
        wf.take("connected", "cancel", "operator")


def test_a_role_that_may_not_take_an_action_is_refused() -> None:
    wf = WORKFLOWS["new_connection"]
    with pytest.raises(Forbidden) as exc:
        wf.take("applied", "verify", "field")
    assert (exc.value.code, exc.value.http_status) == ("order.role_forbidden", 403)
    assert wf.take("applied", "verify", "admin", {"verified_by": "x"}) == "verified"


def test_an_action_without_the_data_it_needs_is_refused() -> None:
    wf = WORKFLOWS["new_connection"]
    with pytest.raises(InvalidInput) as exc:
        wf.take("installation_ordered", "report_installation", "field", {"meter": "SM1"})
    assert exc.value.code == "order.missing_data"
    assert "transformer, feeder, first_reading" in exc.value.message


def test_deadlines_by_area_and_state() -> None:
    wf = WORKFLOWS["new_connection"]
    t = datetime(2026, 12, 1, 9, tzinfo=UTC)
    assert [wf.order_due(t, a) for a in ("metro", "urban", "rural")] == [
        t + timedelta(days=3), t + timedelta(days=7), t + timedelta(days=15)
    ]  # fmt: skip
    assert wf.state_due("applied", t) == t + timedelta(hours=24)
    assert wf.state_due("connected", t) is None
    assert WORKFLOWS["move_out"].order_due(t, "metro") == t + timedelta(hours=168)  # its default


@pytest.mark.parametrize(
    ("change", "line", "reason"),
    [
        (('to = "done"', 'to = "closed"'), 16, "to 'closed': no such state"),
        (('roles = ["operator"]', 'roles = ["janitor"]'), 17, "role 'janitor'"),
        (('initial = "open"', 'initial = "nowhere"'), 5, "'nowhere' is not one of the states"),
        (('label = "Done"\nfinal = true', 'label = "Done"'), 10, "no action leaves this state"),
        (('[actions.finish]\nfrom = ["open"]', '[actions.finish]\nfrom = ["done"]'), 15, "a final state"),
        (('prefix = "SM"', 'prefix = "sm1"'), 4, "prefix"),
        (('version = "1"', "version = 1"), 2, "version"),
        (('label = "Open"', 'label = "Open'), 8, "line 8"),
    ],
)
def test_a_wrong_workflow_file_is_refused_with_file_line_and_reason(change, line, reason) -> None:
    old, new = change
    assert old in SMALL
    with pytest.raises(InvalidInput) as exc:
        parse_workflow(SMALL.replace(old, new), "small.toml")
    assert exc.value.code == "workflow.invalid"
    assert exc.value.message.startswith(f"small.toml:{line}:"), exc.value.message
    assert reason in exc.value.message


def test_a_state_nothing_leads_to_is_refused() -> None:
    text = SMALL + '\n[states.orphan]\nlabel = "Orphan"\nfinal = true\n'
    with pytest.raises(InvalidInput, match=r"small.toml:19: states.orphan: no action leads"):
        parse_workflow(text, "small.toml")


def test_a_utilitys_directory_replaces_the_shipped_file_of_the_same_type(tmp_path) -> None:
    own = (DEFAULT_DIR / "tariff_change.toml").read_text().replace('version = "2026-12-1"', 'version = "u-7"')
    (tmp_path / "tariff.toml").write_text(own)
    (tmp_path / "small.toml").write_text(SMALL)
    flows = load_workflows(tmp_path)
    assert flows["tariff_change"].version == "u-7"
    assert flows["new_connection"].version == "2026-12-2"
    assert "small" in flows


@settings(max_examples=200, deadline=None)
@given(
    order_type=st.sampled_from(ORDER_TYPES),
    steps=st.lists(st.tuples(st.integers(0, 20), st.sampled_from(ROLES)), max_size=12),
)
def test_an_order_never_reaches_a_state_its_workflow_does_not_allow(order_type, steps) -> None:
    """Any sequence of actions by any roles: each move that is accepted is one the file lists
    (its source among the action's ``from``, its target the action's ``to``, the role among its
    roles or admin); each one the file does not list is refused."""
    wf = WORKFLOWS[order_type]
    names = list(wf.actions)
    state = wf.initial
    for pick, role in steps:
        action = names[pick % len(names)]
        spec = wf.actions[action]
        listed = state in spec.sources and (role in spec.roles or role == "admin")
        data = dict.fromkeys(spec.needs, "x")
        try:
            after = wf.take(state, action, role, data)
        except (Conflict, Forbidden):
            assert not listed
            continue
        assert listed
        assert after == spec.to
        state = after
    assert state in wf.states
