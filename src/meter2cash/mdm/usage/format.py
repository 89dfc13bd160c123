"""The determinants document (docs/formats.md#determinants): read and written.

One JSON document carries bill determinants of service points over local days, from an MDM to a
CIS: an external MDM delivers it to us (:func:`parse_determinants`), and our API gives it out
(:mod:`meter2cash.integration.determinants`). Quantities are decimal strings (a whole JSON number is
accepted; a JSON number with a fraction is refused: it may have passed through a float); energy
and demand have at most 3 decimal places (Wh and W, what rating bills), shares at most 6.

Each record is validated on its own: a bad record is reported with its index and field and the
good records of the same document are kept. This module is pure: no database.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from meter2cash.core.errors import InvalidInput, Problem, error_path
from meter2cash.core.jsonsafe import loads_bounded

FORMAT = "meter2cash.determinants/1"
#: The longest span of days one record may cover.
MAX_DAYS = 400
#: TOU periods one record may name.
MAX_PERIODS = 24
#: The period of a record made without a TOU calendar.
TOTAL = "total"
#: Interval lengths [s] a record may be measured at (each divides a day).
INTERVALS = (60, 300, 600, 900, 1800, 3600)


def _decimal(places: int, upper: Decimal) -> Any:
    """A validator of a non-negative decimal with at most ``places`` decimal places, below ``upper``."""

    def check(value: Any) -> Decimal:
        if isinstance(value, bool | float):
            raise PydanticCustomError(
                "usage.bad_number",
                "write the quantity as a decimal string ('12.345'): a JSON number with a fraction"
                " may have passed through a float",
            )
        if isinstance(value, int):
            value = str(value)
        if not isinstance(value, str) or not value or value.strip() != value:
            raise PydanticCustomError("usage.bad_number", "a decimal string is expected")
        try:
            d = Decimal(value)
        except InvalidOperation:
            raise PydanticCustomError(
                "usage.bad_number", "not a decimal number: {value}", {"value": value[:40]}
            ) from None
        if not d.is_finite() or "e" in value.lower():
            raise PydanticCustomError(
                "usage.bad_number", "a plain decimal is expected, not {value}", {"value": value[:40]}
            )
        if d < 0 or d > upper:
            raise PydanticCustomError(
                "usage.bad_number",
                "{value} is outside 0 to {upper}",
                {"value": value[:40], "upper": str(upper)},
            )
        exponent = d.as_tuple().exponent
        if isinstance(exponent, int) and -exponent > places:
            raise PydanticCustomError(
                "usage.bad_number",
                "{value} has more than {places} decimal places",
                {"value": value[:40], "places": places},
            )
        return d

    return BeforeValidator(check)


#: Energy [kWh] and demand [kW]: Wh and W resolution.
Quantity = Annotated[Decimal, _decimal(3, Decimal("1e12"))]
#: A share of a record's intervals [0..1].
Share = Annotated[Decimal, _decimal(6, Decimal(1))]
Name = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class DailyKwh(_Model):
    """Energy of each local day [kWh] from ``first`` on."""

    first: date
    kwh: list[Quantity] = Field(max_length=MAX_DAYS)


class DeterminantRecord(_Model):
    """A service point's determinants over local days ``from``..``to`` (inclusive)."""

    service_point: str = Field(min_length=1, max_length=64)
    from_: date = Field(alias="from")
    to: date
    version: str = Field(min_length=1, max_length=100)
    interval_s: int
    demand_interval_s: int | None = None
    tou_periods: list[Name] = Field(min_length=1, max_length=MAX_PERIODS)
    kwh_total: Quantity
    kwh_by_period: dict[Name, Quantity]
    max_demand_kw: Quantity
    max_demand_kw_by_period: dict[Name, Quantity]
    kvah_total: Quantity | None = None
    kwh_export: Quantity | None = None
    estimated_share: Share
    missing_share: Share
    valid_intervals: int = Field(ge=0)
    daily_kwh: DailyKwh

    @model_validator(mode="after")
    def _consistent(self) -> DeterminantRecord:
        days = (self.to - self.from_).days + 1
        problems = []
        if days < 1:
            problems.append(("to", "to is before from"))
        elif days > MAX_DAYS:
            problems.append(("to", f"a record covers at most {MAX_DAYS} days, not {days}"))
        if self.interval_s not in INTERVALS:
            problems.append(("interval_s", f"interval_s is one of {', '.join(map(str, INTERVALS))}"))
        d = self.demand_interval_s
        if d is not None and (d < self.interval_s or d % self.interval_s or d > 86400):
            problems.append(
                ("demand_interval_s", "demand_interval_s is a multiple of interval_s, at most a day")
            )
        names = self.tou_periods
        if len(set(names)) != len(names):
            problems.append(("tou_periods", "a period is named twice"))
        for key in ("kwh_by_period", "max_demand_kw_by_period"):
            got = getattr(self, key)
            if set(got) != set(names):
                problems.append((key, f"names the periods {sorted(got)}, tou_periods are {sorted(names)}"))
        if not problems and sum(self.kwh_by_period.values(), Decimal(0)) != self.kwh_total:
            total = sum(self.kwh_by_period.values(), Decimal(0))
            problems.append(("kwh_by_period", f"adds up to {total}, kwh_total is {self.kwh_total}"))
        if self.daily_kwh.first != self.from_ or (days >= 1 and len(self.daily_kwh.kwh) != days):
            problems.append(
                ("daily_kwh", f"gives each of the {max(days, 0)} days from {self.from_} (first = from)")
            )
        if problems:
            where, message = problems[0]
            raise PydanticCustomError(
                "usage.inconsistent", "{where}: {message}", {"where": where, "message": message}
            )
        return self

    @property
    def days(self) -> int:
        return (self.to - self.from_).days + 1

    def to_json(self) -> dict[str, Any]:
        """The record as the document carries it (decimal strings)."""
        return self.model_dump(mode="json", by_alias=True)


@dataclass(slots=True)
class ParsedDeterminants:
    """A document read: its sender and zone, the good records with their index in the document,
    and a problem for each bad record."""

    source: str
    timezone: str
    records: list[tuple[int, DeterminantRecord]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.records) + len({p.line for p in self.problems})


def _bad_document(message: str) -> InvalidInput:
    return InvalidInput(message, code="usage.bad_document")


def parse_determinants(data: bytes | str | Mapping[str, Any], *, max_depth: int = 64) -> ParsedDeterminants:
    """Read a determinants document. A document that is not one (not JSON, not an object, another
    ``format``, no ``source``, an unknown ``timezone``, ``determinants`` not a list) raises
    ``usage.bad_document``; each bad record is a problem (``usage.bad_record``,
    ``usage.bad_number``, ``usage.inconsistent``) naming its index and field."""
    if isinstance(data, bytes | str):
        try:
            doc = loads_bounded(data, max_depth)
        except json.JSONDecodeError as exc:
            raise _bad_document(f"not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
        except UnicodeDecodeError as exc:
            raise _bad_document(f"not UTF-8 text: byte offset {exc.start}") from None
    else:
        doc = data
    if not isinstance(doc, Mapping):
        raise _bad_document("a determinants document is a JSON object")
    if doc.get("format") != FORMAT:
        raise _bad_document(f"format must be {FORMAT!r}, not {str(doc.get('format'))[:60]!r}")
    source, tz, records = doc.get("source"), doc.get("timezone"), doc.get("determinants")
    if not isinstance(source, str) or not 1 <= len(source) <= 100:
        raise _bad_document("source names the sending MDM (1 to 100 characters)")
    if not isinstance(tz, str) or not valid_zone(tz):
        raise _bad_document(f"timezone {str(tz)[:60]!r} is not an IANA time zone")
    if not isinstance(records, list):
        raise _bad_document("determinants must be a list of records")
    unknown = set(doc) - {"format", "source", "timezone", "determinants", "problems"}
    if not isinstance(doc.get("problems", []), list):
        raise _bad_document("problems, when given, is a list (what the sender could not give)")
    if unknown:
        raise _bad_document(f"unknown fields {sorted(unknown)}")
    out = ParsedDeterminants(source, tz)
    for i, item in enumerate(records):
        try:
            out.records.append((i, DeterminantRecord.model_validate(item)))
        except ValidationError as exc:
            for err in exc.errors():
                kind = str(err["type"])
                where = error_path(tuple(err["loc"]))
                if kind == "usage.inconsistent":
                    where = str(err.get("ctx", {}).get("where", where))
                fld = f"determinants[{i}].{where}" if where else f"determinants[{i}]"
                code = kind if kind.startswith("usage.") else "usage.bad_record"
                msg = str(err["msg"]).removeprefix("Value error, ")
                out.problems.append(Problem(code, msg, line=i, field=fld))
    return out


def valid_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def document(source: str, tz: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    """A determinants document of ``records`` (as :meth:`DeterminantRecord.to_json` writes them)."""
    return {"format": FORMAT, "source": source, "timezone": tz, "determinants": records}
