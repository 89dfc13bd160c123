"""Event routing rules: versioned configuration, a TOML file validated by pydantic.

The package ships ``meter2cash/mdm/events/routing.toml`` (documented in docs/hes.md#event-routing).
A utility edits a copy and routes with it (``m2c events route --rules FILE``); no code changes.
:meth:`RoutingRules.rule_for` answers the rule an event follows: the first rule naming its IS 15959
ID, else the first rule of its category, else none ("no action").
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from meter2cash.core.errors import InvalidInput, error_path
from meter2cash.mdm.events.catalogue import BY_ID, CATEGORIES, PRIORITIES
from meter2cash.workforce.states import KINDS

Target = Literal["oms", "wfm", "cis", "sms"]
Category = Literal["voltage", "current", "power", "tamper", "relay", "load", "other"]
Priority = Literal["high", "medium", "low"]
Minutes = Annotated[int, Field(ge=0, le=7 * 24 * 60)]
EventId = Annotated[int, Field(ge=1, le=65_535)]
assert set(CATEGORIES) == set(Category.__args__)  # type: ignore[attr-defined]
assert set(PRIORITIES) == set(Priority.__args__)  # type: ignore[attr-defined]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _unique(values: list[Any], what: str) -> None:
    if len(set(values)) != len(values):
        raise ValueError(f"{what} are listed more than once")


class OutageRules(_Strict):
    """Which events open an outage, how a storm is coalesced and where outages go."""

    event_ids: list[EventId] = Field(default_factory=lambda: [101], min_length=1)
    level: Literal["dt", "feeder"] = "dt"
    window_minutes: Minutes = 5
    targets: list[Literal["oms", "cis"]] = Field(default_factory=lambda: list[Literal["oms", "cis"]](["oms"]))

    @model_validator(mode="after")
    def _check(self) -> OutageRules:
        _unique(self.targets, "targets")
        for i in self.event_ids:
            event = BY_ID.get(i)
            if event is None or event.restored_by is None:
                raise ValueError(f"event {i} is not a catalogued occurrence with a restoration")
        return self


class LoadViolationRules(_Strict):
    """The meter's own load-violation events, the tolerance and where violations go."""

    event_ids: list[EventId] = Field(default_factory=list)
    tolerance_percent: Annotated[int, Field(ge=0, le=1000)] = 0
    targets: list[Literal["cis", "sms"]] = Field(
        default_factory=lambda: list[Literal["cis", "sms"]](["cis", "sms"])
    )

    @model_validator(mode="after")
    def _check(self) -> LoadViolationRules:
        _unique(self.targets, "targets")
        return self


class Rule(_Strict):
    """How events of some IDs, or of a category, are routed."""

    name: str = Field(min_length=1, max_length=64)
    ids: list[EventId] = Field(default_factory=list)
    category: Category | None = None
    targets: list[Target] = Field(default_factory=list)
    #: The priority of the routed item (the catalogue's priority of the event when not given).
    priority: Priority | None = None
    #: The work order a ``wfm`` target opens (a kind of :data:`meter2cash.workforce.states.KINDS`).
    work_order: str | None = None
    #: Record a tamper flag for the service point (for assessment billing).
    tamper: bool = False
    #: A tamper is valid for disconnection once it persisted this long (0: at once); none: never.
    valid_after_minutes: Minutes | None = None
    #: The same meter and ID again less than this after the previous report is a duplicate.
    dedupe_minutes: Minutes = 0

    @model_validator(mode="after")
    def _check(self) -> Rule:
        if not self.ids and self.category is None:
            raise ValueError("a rule names event ids or a category")
        _unique(self.targets, "targets")
        _unique(self.ids, "ids")
        if "sms" in self.targets:
            raise ValueError("sms goes only to load violations ([load_violation] targets)")
        if self.work_order is not None and self.work_order not in KINDS:
            raise ValueError(f"unknown work order kind {self.work_order!r} (one of {', '.join(KINDS)})")
        if ("wfm" in self.targets) != (self.work_order is not None):
            raise ValueError("a wfm target and a work_order kind go together")
        if self.valid_after_minutes is not None and not self.tamper:
            raise ValueError("valid_after_minutes applies to tamper rules only")
        return self


class RoutingRules(_Strict):
    """One version of the routing rules."""

    version: str = Field(min_length=1, max_length=32)
    description: str = Field("", max_length=500)
    outage: OutageRules = Field(default_factory=OutageRules)
    load_violation: LoadViolationRules = Field(default_factory=LoadViolationRules)
    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> RoutingRules:
        _unique([r.name for r in self.rules], "rule names")
        special = set(self.outage.event_ids) | set(self.load_violation.event_ids)
        for r in self.rules:
            clash = special & set(r.ids)
            if clash:
                raise ValueError(
                    f"rule {r.name}: ids {sorted(clash)} are routed as outages or load violations"
                )
        return self

    def rule_for(self, is15959_id: int, category: str) -> Rule | None:
        """The rule of an event: the first naming its ID, else the first of its category."""
        for r in self.rules:
            if is15959_id in r.ids:
                return r
        return next((r for r in self.rules if not r.ids and r.category == category), None)

    def rule_by_name(self) -> dict[str, Rule]:
        return {r.name: r for r in self.rules}


def parse_rules(data: dict[str, Any], *, source: str = "routing rules") -> RoutingRules:
    """Validated rules from a mapping (the TOML structure); every problem is reported at once
    as ``events.rules_invalid`` with its field path."""
    try:
        return RoutingRules.model_validate(data)
    except ValidationError as exc:
        problems = [{"field": error_path(tuple(e["loc"])), "message": e["msg"]} for e in exc.errors()]
        raise InvalidInput(
            f"{source} are not valid: "
            + "; ".join(f"{p['field'] or '(top)'}: {p['message']}" for p in problems),
            code="events.rules_invalid",
            problems=problems,
        ) from None


def load_rules(path: Path | str | None = None) -> RoutingRules:
    """The rules of a TOML file, or the packaged default (``events.rules_invalid`` for a file
    that is not valid TOML or not valid rules)."""
    if path is None:
        text = resources.files("meter2cash.mdm.events").joinpath("routing.toml").read_text(encoding="utf-8")
        source = "routing.toml"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(
                f"cannot read {path}: {exc}", code="events.rules_unreadable", file=str(path)
            ) from None
        source = str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{source} is not TOML: {exc}", code="events.rules_invalid", problems=[]) from None
    return parse_rules(data, source=source)
