"""Plausibility limits of readings: values no meter can physically report are refused at ingest.

A value outside the limits of its reading type (after the channel's multiplier) is a problem
``ingest.implausible_value`` and is not stored; VEE rules (spikes, negative consumption) stay for
values that are plausible but wrong. NaN and infinity are never plausible.

The limits are versioned configuration: a TOML file (format in ``docs/formats.md``) validated by
:func:`parse_limits`, stored whole as a new :class:`ReadingLimitsVersion` by :func:`put_limits`
(``m2c reading-limits load FILE``) with an audit entry. The latest stored version is in force;
without one, the built-in defaults (version ``builtin``) apply. Every problem names the version
that refused the value.

Built-in defaults by unit (overridable in the file's ``[defaults]``; a reading type listed under
``[reading_types]`` gets its own ``min``/``max``):

- energy per interval (``Wh``/``kWh``/``MWh``, ``VAh``…, ``varh``…, a reading type with an interval
  length): ``|value| <= max_power_kw x interval hours``;
- cumulative energy registers: ``0 <= value <= max_register_kwh``;
- power and demand (``W``/``kW``/``MW``, ``VA``…, ``var``…): ``|value| <= max_power_kw``;
- voltage (``V``/``kV``): ``0 .. max_voltage_v``; current (``A``/``kA``): ``0 .. max_current_a``;
- power factor (``PF``): ``-1 .. 1``; frequency (``Hz``): ``0 .. 100``;
- any other unit: finite values only.

Values in other multiples of the unit are scaled (``Wh`` limits are 1000 x the ``kWh`` ones).
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from meter2cash.audit.models import AuditEntry
from meter2cash.core.errors import Conflict, InvalidInput
from meter2cash.mdm.models import ReadingLimitsVersion, ReadingType
from meter2cash.mdm.reading_types import BY_CODE

BUILTIN_VERSION = "builtin"

#: Units per kilo-unit: energy (per kWh, kVAh, kvarh) and power (per kW, kVA, kvar).
_ENERGY = {"Wh": 1e3, "kWh": 1.0, "MWh": 1e-3, "VAh": 1e3, "kVAh": 1.0, "MVAh": 1e-3,
           "varh": 1e3, "kvarh": 1.0, "Mvarh": 1e-3}  # fmt: skip
_POWER = {"W": 1e3, "kW": 1.0, "MW": 1e-3, "VA": 1e3, "kVA": 1.0, "MVA": 1e-3,
          "var": 1e3, "kvar": 1.0, "Mvar": 1e-3}  # fmt: skip
_VOLTAGE = {"V": 1.0, "kV": 1e-3}
_CURRENT = {"A": 1.0, "kA": 1e-3}
_PF = ("PF", "pf", "cos phi", "cosφ")
_FREQUENCY = {"Hz": (0.0, 100.0)}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _finite(v: float) -> float:
    if not math.isfinite(v):
        raise ValueError("must be a finite number")
    return v


class Defaults(_Strict):
    """Limits by quantity for every reading type the file does not list."""

    #: The largest power one channel can carry [kW]: bounds energy per interval and demand.
    max_power_kw: float = Field(1_000_000.0, gt=0)
    #: The largest value of a cumulative energy register [kWh].
    max_register_kwh: float = Field(1e12, gt=0)
    max_voltage_v: float = Field(1_200_000.0, gt=0)
    max_current_a: float = Field(1_000_000.0, gt=0)

    @model_validator(mode="after")
    def _all_finite(self) -> Defaults:
        for name in type(self).model_fields:
            _finite(getattr(self, name))
        return self


class Bound(_Strict):
    """The plausible range of one reading type, in its unit (after the channel's multiplier)."""

    min: float
    max: float

    @model_validator(mode="after")
    def _ordered(self) -> Bound:
        _finite(self.min)
        _finite(self.max)
        if self.min >= self.max:
            raise ValueError(f"min {self.min} must be below max {self.max}")
        return self


class LimitsFile(_Strict):
    """The TOML structure of a limits file."""

    version: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9._-]+$")
    description: str = Field("", max_length=500)
    defaults: Defaults = Defaults()
    reading_types: dict[str, Bound] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ReadingLimits:
    """The limits in force: a version, the defaults and per-reading-type bounds."""

    version: str = BUILTIN_VERSION
    defaults: Defaults = field(default_factory=Defaults)
    reading_types: dict[str, Bound] = field(default_factory=dict)
    description: str = ""

    def bounds(self, code: str, unit: str, interval_s: int | None, accumulation: str) -> tuple[float, float]:
        """``(min, max)`` of a reading type; ``(-inf, inf)`` for a unit without a default."""
        own = self.reading_types.get(code)
        if own is not None:
            return own.min, own.max
        d = self.defaults
        if unit in _ENERGY:
            if interval_s and accumulation == "delta":
                hi = d.max_power_kw * interval_s / 3600 * _ENERGY[unit]
                return -hi, hi
            return 0.0, d.max_register_kwh * _ENERGY[unit]
        if unit in _POWER:
            return -d.max_power_kw * _POWER[unit], d.max_power_kw * _POWER[unit]
        if unit in _VOLTAGE:
            return 0.0, d.max_voltage_v * _VOLTAGE[unit]
        if unit in _CURRENT:
            return 0.0, d.max_current_a * _CURRENT[unit]
        if unit in _PF:
            return -1.0, 1.0
        if unit in _FREQUENCY:
            return _FREQUENCY[unit]
        return -math.inf, math.inf

    def to_mapping(self) -> dict[str, Any]:
        return LimitsFile(version=self.version, description=self.description, defaults=self.defaults,
                          reading_types=self.reading_types).model_dump(mode="json")  # fmt: skip


def parse_limits(data: dict[str, Any] | bytes | str, *, source: str = "limits") -> ReadingLimits:
    """Validate a limits file (TOML text or bytes, or its mapping); :class:`InvalidInput`
    ``limits.invalid`` names the first bad field."""
    if isinstance(data, bytes | str):
        try:
            text = data.decode("utf-8") if isinstance(data, bytes) else data
            data = tomllib.loads(text)
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise InvalidInput(f"{source}: not a UTF-8 TOML file: {exc}", code="limits.invalid") from exc
    try:
        body = LimitsFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "file"
        raise InvalidInput(
            f"{source}: {where}: {first['msg']}", code="limits.invalid", field=where, errors=len(exc.errors())
        ) from exc
    return ReadingLimits(body.version, body.defaults, dict(body.reading_types), body.description)


def current_limits(session: Session) -> ReadingLimits:
    """The latest stored limits, or the built-in defaults."""
    body = session.scalar(select(ReadingLimitsVersion.body).order_by(ReadingLimitsVersion.id.desc()).limit(1))
    return ReadingLimits() if body is None else parse_limits(body, source="stored reading limits")


def put_limits(session: Session, limits: ReadingLimits, *, actor: str = "cli") -> bool:
    """Store ``limits`` as the version in force, with an audit entry; ``False`` when it is the
    version in force already (nothing changes). Refused: a reading type that does not exist
    (``limits.unknown_reading_type``), a version used before with other content
    (``limits.version_exists``). Does not commit."""
    known = set(BY_CODE) | set(session.scalars(select(ReadingType.code)))
    unknown = sorted(set(limits.reading_types) - known)
    if unknown:
        raise InvalidInput(
            f"no reading type {', '.join(unknown)}; limits name reading-type codes such as kwh_import_15m",
            code="limits.unknown_reading_type",
            field="reading_types",
            codes=unknown,
        )
    current = current_limits(session)
    body = limits.to_mapping()
    used = session.scalar(
        select(ReadingLimitsVersion.body).where(ReadingLimitsVersion.version == limits.version)
    )
    if used is not None or limits.version == BUILTIN_VERSION:
        if current.version == limits.version and current.to_mapping() == body:
            return False
        raise Conflict(
            f"reading limits version {limits.version} was used before; give the file a new version",
            code="limits.version_exists",
            version=limits.version,
        )
    session.add(ReadingLimitsVersion(version=limits.version, body=body, created_by=actor))
    session.add(
        AuditEntry(
            actor=actor,
            action="limits.saved",
            entity="reading_limits",
            entity_id=limits.version,
            before=current.to_mapping(),
            after=body,
        )
    )
    session.flush()
    return True
