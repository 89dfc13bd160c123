"""VEE rule sets: which rules run, with which thresholds, and what a finding does.

A rule set is configuration, not code (utilities differ). It has a ``name`` and a ``version`` that
every VEE run records, so a finding can always be traced to the thresholds that produced it. Load
one from TOML with :meth:`RuleSet.from_toml`; the format is documented in ``docs/vee.md``.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from meter2cash.core.errors import InvalidInput

#: ``info``: record the finding only. ``flag``: also mark the intervals SUSPECT, keep the value.
#: ``reject``: mark the intervals REJECTED and estimate them.
Action = Literal["info", "flag", "reject"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleConfig(_Strict):
    enabled: bool = True
    action: Action = "flag"


class MissingIntervalRule(RuleConfig):
    """``vee.missing_interval``: runs of intervals with nothing received (always estimated)."""

    action: Action = "flag"


class NegativeConsumptionRule(RuleConfig):
    """``vee.negative_consumption``: a negative value on an import energy channel."""

    action: Action = "reject"


class IntervalSpikeRule(RuleConfig):
    """``vee.interval_spike``: far above the channel's typical level and above both neighbours."""

    action: Action = "reject"
    #: The typical level is this quantile of the channel's positive values over the window.
    quantile: float = Field(0.95, gt=0.0, le=1.0)
    #: A spike exceeds ``factor`` x the typical level ...
    factor: float = Field(3.0, gt=0.0)
    #: ... and an absolute floor given as an hourly rate [unit/h, e.g. kW for kWh channels] ...
    floor_per_hour: float = Field(2.0, ge=0.0)
    #: ... and ``neighbour_factor`` x the larger of its two neighbours.
    neighbour_factor: float = Field(3.0, ge=1.0)


class StuckRegisterRule(RuleConfig):
    """``vee.stuck_register``: the same non-zero value repeated for at least ``min_hours``."""

    action: Action = "reject"
    min_hours: float = Field(4.0, gt=0.0)


class ZeroRunRule(RuleConfig):
    """``vee.zero_run``: zero consumption for at least ``min_hours`` (an outage or a vacant site)."""

    action: Action = "info"
    min_hours: float = Field(4.0, gt=0.0)


class Rules(_Strict):
    missing_interval: MissingIntervalRule = MissingIntervalRule()
    negative_consumption: NegativeConsumptionRule = NegativeConsumptionRule()
    interval_spike: IntervalSpikeRule = IntervalSpikeRule()
    stuck_register: StuckRegisterRule = StuckRegisterRule()
    zero_run: ZeroRunRule = ZeroRunRule()


class EstimationConfig(_Strict):
    #: Gaps up to this long with a valid value on both sides are interpolated linearly [h].
    max_interp_hours: float = Field(2.0, ge=0.0)
    #: A like-day estimate needs at least this many valid days of the same day type.
    min_like_days: int = Field(1, ge=1)


class RuleSet(_Strict):
    """A named, versioned VEE configuration."""

    name: str = Field("default", min_length=1, max_length=64)
    version: str = Field("1", min_length=1, max_length=32)
    rules: Rules = Rules()
    estimation: EstimationConfig = EstimationConfig()

    @classmethod
    def from_mapping(cls, data: dict[str, Any], *, source: str = "rule set") -> RuleSet:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise InvalidInput(
                f"{source}: {where}: {first['msg']}",
                code="vee.rule_set_invalid",
                field=where,
                errors=len(exc.errors()),
            ) from exc

    @classmethod
    def from_toml(cls, path: str | Path) -> RuleSet:
        """Read a rule set from a TOML file (unknown keys are refused, not ignored)."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise InvalidInput(f"{path}: {exc}", code="vee.rule_set_invalid") from exc
        return cls.from_mapping(data, source=str(path))


def intervals_for(hours: float, interval_s: int) -> int:
    """The number of intervals of ``interval_s`` seconds covering ``hours`` (at least 1)."""
    return max(1, math.ceil(hours * 3600 / interval_s - 1e-9))
