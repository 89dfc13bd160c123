"""Workflows as configuration: each order type's states, actions, roles, SLAs and triggers in a
versioned TOML file, run as a python-statemachine machine built from it.

A workflow file (the defaults are in ``workflows/``; ``M2C_WORKFLOWS`` names a directory of a
utility's own, whose files replace the defaults of the same ``type``)::

    type = "new_connection"          # the order type
    version = "2026-12-1"            # every change is a new version; an order keeps its version
    title = "New connection"
    prefix = "NC"                    # order numbers NC-000042
    initial = "applied"

    [due_h]                          # the whole order's deadline by area class (hours), optional
    metro = 72

    [[escalation]]                   # past the state's SLA: level 1 at once, level 2 a day later
    after_h = 0
    to = "supervisor"
    notify = "supervisor@example.org"

    [states.applied]
    label = "Application received"
    sla_h = 24                       # hours an order may stay in this state (optional)
    team = "customer_service"        # the queue the order waits in while in this state

    [states.connected]
    label = "Connected"
    final = true

    [actions.verify]
    from = ["applied"]
    to = "verified"
    roles = ["customer_service", "admin"]   # who may take it
    needs = ["document_checked"]            # fields the action's data must carry
    [[actions.verify.triggers]]             # what taking it sets off
    kind = "notification"
    template = "order.verified"

Validation refuses a file with its name, the line of the offending table and the reason
(``workflow.invalid``): unknown states in an action, a final state with actions out of it, a state
no action reaches or none leaves, an unknown role or trigger kind. Taking an action checks that
the order's state allows it (``order.action_not_allowed``) and that the role may
(``order.role_forbidden``). Pure: no database, no clock.
"""

from __future__ import annotations

import builtins
import re
import tomllib
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from statemachine import State, StateMachine
from statemachine.exceptions import InvalidDefinition

from meter2cash.core.errors import Conflict, Forbidden, InvalidInput, error_path

DEFAULT_DIR = Path(__file__).with_name("workflows")
#: Staff roles an action may name (the identity layer grants them to users).
ROLES = (
    "admin",
    "operator",
    "billing",
    "collections",
    "field",
    "customer_service",
    "read_only",
    "consumer",
    "system",
)
#: What taking an action may set off (carried out by the order service).
TRIGGER_KINDS = ("command", "work_order", "notification", "billing", "contract", "settlement")
#: Area classes an order's deadline may depend on.
AREAS = ("metro", "urban", "rural")
_NAME = r"^[a-z][a-z0-9_]{0,39}$"


class StateSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    label: str = Field(min_length=1, max_length=80)
    final: bool = False
    sla_h: float | None = Field(default=None, gt=0, le=24 * 365)
    team: str = Field(default="", max_length=40)


class TriggerSpec(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    kind: str


class EscalationLevel(BaseModel):
    """A level of escalation: ``after_h`` hours past the state's SLA the order goes up to ``to``
    (a role or a named person's queue), with a notice to ``notify`` (an e-mail address) if set."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    after_h: float = Field(ge=0, le=24 * 365)
    to: str = Field(min_length=1, max_length=40)
    notify: str = Field(default="", max_length=200)


class ActionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    sources: list[str] = Field(alias="from", min_length=1)
    to: str
    label: str = Field(default="", max_length=80)
    roles: list[str] = Field(min_length=1)
    needs: list[str] = Field(default_factory=list)
    triggers: list[TriggerSpec] = Field(default_factory=list)


class Workflow(BaseModel):
    """One order type's workflow, as validated from its file."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: str = Field(pattern=_NAME)
    version: str = Field(min_length=1, max_length=40)
    title: str = Field(min_length=1, max_length=80)
    prefix: str = Field(pattern=r"^[A-Z]{2,6}$")
    initial: str
    due_h: dict[str, float] = Field(default_factory=dict)
    #: Levels of escalation of an order past its state's SLA, in order of ``after_h``.
    escalation: list[EscalationLevel] = Field(default_factory=list, max_length=9)
    states: dict[str, StateSpec] = Field(min_length=2)
    actions: dict[str, ActionSpec] = Field(min_length=1)

    @cached_property
    def machine(self) -> builtins.type[StateMachine]:
        """The python-statemachine machine of this workflow (one event per action)."""
        states = {
            name: State(name=spec.label, value=name, initial=name == self.initial, final=spec.final)
            for name, spec in self.states.items()
        }
        attrs: dict[str, Any] = dict(states)
        for name, action in self.actions.items():
            moves = [states[src].to(states[action.to]) for src in action.sources]
            combined = moves[0]
            for more in moves[1:]:
                combined = combined | more
            attrs[name] = combined
        return builtins.type(f"Workflow_{self.type}", (StateMachine,), attrs)

    @cached_property
    def final(self) -> frozenset[str]:
        return frozenset(n for n, s in self.states.items() if s.final)

    def allowed(self, state: str, role: str | None = None) -> list[str]:
        """The actions an order in ``state`` may take (by ``role``, when given), in file order."""
        return [
            name
            for name, a in self.actions.items()
            if state in a.sources and (role is None or role in a.roles or role == "admin")
        ]

    def take(self, state: str, action: str, role: str, data: dict[str, Any] | None = None) -> str:
        """The state after ``action`` on an order in ``state`` by ``role``: the machine moves, or
        :class:`Conflict` ``order.action_not_allowed``; :class:`Forbidden` ``order.role_forbidden``;
        :class:`InvalidInput` ``order.missing_data`` names the fields the action needs."""
        spec = self.actions.get(action)
        if spec is None:
            raise InvalidInput(
                f"{self.type} has no action {action!r} (actions: {', '.join(self.actions)})",
                code="order.unknown_action",
                field="action",
            )
        if role != "admin" and role not in spec.roles:
            raise Forbidden(
                f"role {role!r} may not {action} a {self.type} order (roles: {', '.join(spec.roles)})",
                code="order.role_forbidden",
                action=action,
                role=role,
            )
        machine = self.machine(start_value=state)
        if action not in {e.id for e in machine.allowed_events}:
            raise Conflict(
                f"a {self.type} order in {state} cannot {action}"
                f" (it may: {', '.join(self.allowed(state)) or 'nothing, it is closed'})",
                code="order.action_not_allowed",
                state=state,
                action=action,
            )
        missing = [f for f in spec.needs if (data or {}).get(f) in (None, "")]
        if missing:
            raise InvalidInput(
                f"{action} needs {', '.join(missing)}", code="order.missing_data", field=missing[0]
            )
        machine.send(action)
        return str(machine.current_state_value)

    def state_due(self, state: str, entered_at: datetime) -> datetime | None:
        """When an order that entered ``state`` at ``entered_at`` is past that state's SLA."""
        sla = self.states[state].sla_h
        return None if sla is None or state in self.final else entered_at + timedelta(hours=sla)

    def order_due(self, created_at: datetime, area: str | None) -> datetime | None:
        """The whole order's deadline for its area class, when the workflow sets one."""
        hours = self.due_h.get(area or "") or self.due_h.get("default")
        return None if hours is None else created_at + timedelta(hours=hours)


def _line_of(text: str, table: str, key: str = "") -> int | None:
    """The line (1-based) in ``text`` of ``key`` inside ``[table]`` (of the table's header when
    the key is not there), or of a top-level ``table = …``."""
    header = re.compile(r"^[ \t]*\[\[?[ \t]*" + re.escape(table) + r"[ \t]*[\].]", re.M).search(text)
    if header is None and "." in table:
        return _line_of(text, table.rsplit(".", 1)[0], key)
    if header is None:
        top = re.compile(r"^[ \t]*" + re.escape(table) + r"[ \t]*=", re.M).search(text)
        return None if top is None else text.count("\n", 0, top.start()) + 1
    at = header.start()
    if key:
        nxt = re.compile(r"^[ \t]*\[", re.M).search(text, header.end())
        end = nxt.start() if nxt else len(text)
        found = re.compile(r"^[ \t]*" + re.escape(key) + r"[ \t]*=", re.M).search(text, header.end(), end)
        if found is not None:
            at = found.start()
    return text.count("\n", 0, at) + 1


def _refuse(source: str, text: str, where: str, why: str, key: str = "") -> InvalidInput:
    line = _line_of(text, where, key) if where else None
    at = f"{source}:{line}" if line else source
    return InvalidInput(
        f"{at}: {where + ': ' if where else ''}{why}",
        code="workflow.invalid",
        file=source,
        line=line,
        field=f"{where}.{key}" if key else where,
    )


def parse_workflow(text: str, source: str = "workflow") -> Workflow:
    """A workflow from TOML text; ``workflow.invalid`` names the file, the line and the reason."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise InvalidInput(
            f"{source}:{m.group(1) if m else '?'}: {exc}",
            code="workflow.invalid",
            file=source,
            line=int(m.group(1)) if m else None,
        ) from None
    try:
        wf = Workflow.model_validate(doc)
    except ValidationError as exc:
        e = exc.errors(include_url=False)[0]
        where = error_path(e["loc"])
        raise _refuse(source, text, where, e["msg"]) from None
    _check(wf, source, text)
    try:
        wf.machine  # noqa: B018 - built once here, so that a file the library refuses is refused now
    except InvalidDefinition as exc:
        raise _refuse(source, text, "", f"not a valid state machine: {exc}") from None
    return wf


def _check(wf: Workflow, source: str, text: str) -> None:
    names = re.compile(_NAME)
    for name in [*wf.states, *wf.actions]:
        if not names.match(name):
            raise _refuse(source, text, name, "names are lower case letters, digits and _")
    if wf.initial not in wf.states:
        raise _refuse(source, text, "initial", f"{wf.initial!r} is not one of the states")
    if wf.states[wf.initial].final:
        raise _refuse(source, text, "initial", "the initial state cannot be final")
    for area in wf.due_h:
        if area not in (*AREAS, "default"):
            raise _refuse(source, text, "due_h", f"{area!r} is not an area class ({', '.join(AREAS)})")
    hours = [level.after_h for level in wf.escalation]
    if hours != sorted(set(hours)):
        raise _refuse(
            source, text, "escalation", "levels must come in order of after_h, each later than the last"
        )
    reached = {wf.initial}
    left: set[str] = set()
    for name, a in wf.actions.items():
        where = f"actions.{name}"
        for src in a.sources:
            if src not in wf.states:
                raise _refuse(source, text, where, f"from {src!r}: no such state", "from")
            if wf.states[src].final:
                raise _refuse(source, text, where, f"from {src!r}: a final state has no actions", "from")
            left.add(src)
        if a.to not in wf.states:
            raise _refuse(source, text, where, f"to {a.to!r}: no such state", "to")
        reached.add(a.to)
        for role in a.roles:
            if role not in ROLES:
                raise _refuse(source, text, where, f"role {role!r} is not one of {', '.join(ROLES)}", "roles")
        for t in a.triggers:
            if t.kind not in TRIGGER_KINDS:
                raise _refuse(
                    source, text, where, f"trigger {t.kind!r} is not one of {', '.join(TRIGGER_KINDS)}"
                )
    for name, spec in wf.states.items():
        if name not in reached:
            raise _refuse(source, text, f"states.{name}", "no action leads to this state")
        if not spec.final and name not in left:
            raise _refuse(source, text, f"states.{name}", "no action leaves this state and it is not final")


def load_workflows(directory: str | Path | None = None) -> dict[str, Workflow]:
    """The shipped workflows, each replaced by the file of the same ``type`` in ``directory``."""
    out: dict[str, Workflow] = {}
    dirs = [DEFAULT_DIR] + ([Path(directory)] if directory else [])
    for d in dirs:
        if not d.is_dir():
            raise InvalidInput(f"workflow directory {d} does not exist", code="workflow.invalid", file=str(d))
        for file in sorted(d.glob("*.toml")):
            wf = parse_workflow(file.read_text(encoding="utf-8"), str(file))
            out[wf.type] = wf
    return out


__all__ = [
    "AREAS",
    "ROLES",
    "TRIGGER_KINDS",
    "ActionSpec",
    "EscalationLevel",
    "StateSpec",
    "TriggerSpec",
    "Workflow",
    "load_workflows",
    "parse_workflow",
]
