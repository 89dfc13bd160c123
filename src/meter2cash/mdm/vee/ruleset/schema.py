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
#: ``reject``: mark the intervals REJECTED and estimate them. ``exception``: mark them SUSPECT and
#: open an exception in the work queue for a person to resolve.
Action = Literal["info", "flag", "reject", "exception"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleConfig(_Strict):
    enabled: bool = True
    action: Action = "flag"
    #: Priority of the exceptions this rule opens (action ``exception``): 1 most urgent .. 5.
    priority: int = Field(3, ge=1, le=5)


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


class RegisterIncreaseRule(RuleConfig):
    """``vee.register_decrease`` / ``vee.register_rollover``: cumulative registers never decrease."""

    action: Action = "exception"
    #: Register capacity (e.g. 1e6 for six digits); a wrap from >90% to <10% of it is a rollover.
    rollover: float | None = Field(1_000_000.0, gt=0.0)


class SumCheckRule(RuleConfig):
    """``vee.sum_check``: a complete day's interval sum against the register advance."""

    action: Action = "flag"
    tolerance: float = Field(0.01, ge=0.0)
    tolerance_rel: float = Field(0.02, ge=0.0)


class HighLowUsageRule(RuleConfig):
    """``vee.high_usage`` / ``vee.low_usage``: a day's use against the channel's history."""

    action: Action = "info"
    high_factor: float = Field(3.0, gt=1.0)
    low_factor: float = Field(0.2, ge=0.0, lt=1.0)
    min_history_days: int = Field(3, ge=1)


class DynamicComparisonRule(RuleConfig):
    """``vee.dynamic_comparison``: an interval against mean and deviation of its slot of day."""

    action: Action = "info"
    z: float = Field(6.0, gt=0.0)
    floor_per_hour: float = Field(1.0, ge=0.0)
    min_history_days: int = Field(5, ge=2)


class MetadataRule(RuleConfig):
    """``vee.interval_size``, ``vee.unit_of_measure``, ``vee.multiplier``: channel set-up checks."""

    action: Action = "exception"
    #: Multipliers (CT/PT ratios) a channel may have; empty = any positive one.
    allowed_multipliers: tuple[float, ...] = ()


class InactiveMeasurementRule(RuleConfig):
    """``vee.inactive_measurement``: data while the meter was not installed."""

    action: Action = "reject"


class DuplicateImdRule(RuleConfig):
    """``vee.duplicate_imd``: an interval received twice with differing values."""

    action: Action = "flag"


class ReplacementRule(RuleConfig):
    """Final measurement replacement: ``vee.estimate_replaced`` and ``vee.edit_kept``."""

    action: Action = "info"
    #: Keep a person's edit when newer data arrives for the interval (the edit wins).
    keep_edits: bool = True


class ProlongedEstimationRule(RuleConfig):
    """``vee.prolonged_estimation``: a channel estimated for too long."""

    action: Action = "exception"
    max_hours: float = Field(72.0, gt=0.0)


class Rules(_Strict):
    missing_interval: MissingIntervalRule = MissingIntervalRule()
    negative_consumption: NegativeConsumptionRule = NegativeConsumptionRule()
    interval_spike: IntervalSpikeRule = IntervalSpikeRule()
    stuck_register: StuckRegisterRule = StuckRegisterRule()
    zero_run: ZeroRunRule = ZeroRunRule()
    register_increase: RegisterIncreaseRule = RegisterIncreaseRule()
    sum_check: SumCheckRule = SumCheckRule()
    high_low_usage: HighLowUsageRule = HighLowUsageRule()
    dynamic_comparison: DynamicComparisonRule = DynamicComparisonRule()
    metadata: MetadataRule = MetadataRule()
    inactive_measurement: InactiveMeasurementRule = InactiveMeasurementRule()
    duplicate_imd: DuplicateImdRule = DuplicateImdRule()
    replacement: ReplacementRule = ReplacementRule()
    prolonged_estimation: ProlongedEstimationRule = ProlongedEstimationRule()


class EstimationConfig(_Strict):
    #: Gaps up to this long with a valid value on both sides are interpolated linearly [h].
    max_interp_hours: float = Field(2.0, ge=0.0)
    #: A like-day estimate needs at least this many valid days of the same day type.
    min_like_days: int = Field(1, ge=1)
    #: Holidays (``holidays`` package country code, optional subdivision) count as weekend days.
    holiday_country: str | None = "IN"
    holiday_subdiv: str | None = None
    #: Use the learned estimator (trained on the channel's own history) for gaps beyond
    #: ``max_interp_hours`` when there is enough history; like-day otherwise.
    learned: bool = True
    #: A stored learned model older than this is retrained at the next run that needs it [days].
    learned_max_age_days: float = Field(30.0, gt=0.0)


class Eligibility(_Strict):
    """Which channels a rule set applies to; an empty list means any. Among the eligible rule
    sets of a channel the one with the highest ``priority`` wins (then the name)."""

    reading_types: tuple[str, ...] = ()
    customer_classes: tuple[str, ...] = ()
    priority: int = 0

    def matches(self, reading_type: str, customer_class: str | None) -> bool:
        if self.reading_types and reading_type not in self.reading_types:
            return False
        return not self.customer_classes or customer_class in self.customer_classes


class RuleSet(_Strict):
    """A named, versioned VEE configuration."""

    name: str = Field("default", min_length=1, max_length=64)
    version: str = Field("1", min_length=1, max_length=32)
    description: str = ""
    #: Recorded power outages count: inside one, zeros are valid, nothing received is a zero
    #: flagged ``OUTAGE`` (not an estimate), and no rule finds those intervals (docs/vee.md,
    #: "Outages"). Off: outages are not read and every interval is judged alike.
    outage_aware: bool = True
    eligibility: Eligibility = Eligibility()
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

    @property
    def label(self) -> str:
        """``name@version``, as recorded with every finding."""
        return f"{self.name}@{self.version}"

    def to_mapping(self) -> dict[str, Any]:
        """The rule set as a JSON/TOML-shaped mapping (round-trips through :meth:`from_mapping`)."""
        return self.model_dump(mode="json")

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
