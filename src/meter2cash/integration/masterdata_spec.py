"""Master-data bundle records: the entities, their fields, and validation of one record (pure).

A bundle holds one array per entity; every record names the records it depends on by their natural
key (a feeder's ``code``, a person's ``key``, a meter's ``serial``…). :func:`validate_record` turns
one raw record (from JSON or a CSV row) into typed values, or into :class:`Problem` objects with
the line and field of each fault. Nothing here touches the database.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from meter2cash.cis.parties.constants import CUSTOMER_CLASSES, PAYMENT_MODES
from meter2cash.cis.parties.models import Account, Person, Premise, ServiceAgreement, ServicePoint
from meter2cash.core.errors import InvalidInput, Problem
from meter2cash.core.timeutil import check_date
from meter2cash.db import Base
from meter2cash.mdm.models import DCU, DistributionTransformer, Feeder, Installation, Meter
from meter2cash.mdm.reading_types import BY_CODE

PHASES = ("single", "three")
#: Digits a decimal may have before the point: what the exact columns hold with room to spare.
MAX_DIGITS = 12
#: The largest sanctioned load [kW] or contract demand [kVA] of one agreement (a large industrial
#: consumer is tens of MW): beyond it a value is a slip of the keyboard.
MAX_LOAD = Decimal(1_000_000)
#: The largest distribution-transformer capacity [kVA] and meter multiplier (CT × PT ratio).
MAX_CAPACITY = Decimal(1_000_000)
MAX_MULTIPLIER = Decimal(1_000_000)
#: A decimal as written: optional sign, digits, optional fraction (no exponent).
_PLAIN = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")


class FieldError(ValueError):
    """One bad field value: a stable code (``masterdata.<reason>``) and a message."""

    def __init__(self, code: str, message: str, **data: Any) -> None:
        super().__init__(message)
        self.code = f"masterdata.{code}"
        self.message = message
        self.data = data


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of a bundle record.

    ``kind`` is ``str``, ``choice``, ``ref`` (natural key of a record of entity ``ref``),
    ``decimal`` (``scale`` decimal places at most, never negative, at most ``maximum``),
    ``date``, ``datetime`` (ISO 8601 with an offset) or ``channels``. Dates and timestamps lie in
    the window of :func:`~meter2cash.core.timeutil.check_date`. ``column`` is the model attribute
    it is stored in.
    """

    name: str
    kind: str = "str"
    required: bool = False
    column: str | None = None
    ref: str | None = None
    choices: tuple[str, ...] = ()
    scale: int = 3
    max_len: int = 200
    default: Any = None
    maximum: Decimal | None = None

    @property
    def attr(self) -> str:
        return self.column or self.name


@dataclass(frozen=True, slots=True)
class EntitySpec:
    """One array of a bundle: its model, natural key field and fields, in load order."""

    name: str
    model: type[Base]
    key: str
    fields: tuple[FieldSpec, ...]
    #: Entity name written to the audit log.
    audit_name: str

    @property
    def key_attr(self) -> str:
        return next(f.attr for f in self.fields if f.name == self.key)

    def field(self, name: str) -> FieldSpec:
        return next(f for f in self.fields if f.name == name)


def _key(name: str, max_len: int = 64) -> FieldSpec:
    return FieldSpec(name, required=True, max_len=max_len)


def _text(name: str, max_len: int = 200) -> FieldSpec:
    return FieldSpec(name, max_len=max_len, default="")


ENTITIES: tuple[EntitySpec, ...] = (
    EntitySpec("feeders", Feeder, "code", (_key("code"), _text("name"), _text("substation")), "feeder"),
    EntitySpec(
        "transformers",
        DistributionTransformer,
        "code",
        (
            _key("code"),
            _text("name"),
            FieldSpec("feeder", "ref", required=True, column="feeder_id", ref="feeders"),
            FieldSpec("capacity_kva", "decimal", scale=6, maximum=MAX_CAPACITY),
        ),
        "distribution_transformer",
    ),
    EntitySpec(
        "dcus",
        DCU,
        "code",
        (_key("code"), _text("name"), FieldSpec("transformer", "ref", column="dt_id", ref="transformers")),
        "dcu",
    ),
    EntitySpec(
        "persons",
        Person,
        "key",
        (
            _key("key"),
            FieldSpec("name", required=True),
            _text("phone", 32),
            _text("email"),
        ),
        "person",
    ),
    EntitySpec(
        "accounts",
        Account,
        "number",
        (
            _key("number", 32),
            FieldSpec("person", "ref", required=True, column="person_id", ref="persons"),
            FieldSpec("customer_class", "choice", choices=CUSTOMER_CLASSES, default="residential"),
        ),
        "account",
    ),
    EntitySpec(
        "premises",
        Premise,
        "code",
        (_key("code"), _text("address", 300), _text("city", 100), _text("postcode", 16)),
        "premise",
    ),
    EntitySpec(
        "service_points",
        ServicePoint,
        "code",
        (
            _key("code"),
            FieldSpec("premise", "ref", required=True, column="premise_id", ref="premises"),
            FieldSpec("transformer", "ref", column="dt_id", ref="transformers"),
        ),
        "service_point",
    ),
    EntitySpec(
        "meters",
        Meter,
        "serial",
        (
            _key("serial"),
            _text("manufacturer", 100),
            _text("model", 100),
            FieldSpec("phase", "choice", choices=PHASES, default="single"),
            FieldSpec("dcu", "ref", column="dcu_id", ref="dcus"),
            FieldSpec("channels", "channels", default=()),
        ),
        "meter",
    ),
    EntitySpec(
        "installations",
        Installation,
        "meter",
        (
            FieldSpec("meter", "ref", required=True, column="meter_id", ref="meters"),
            FieldSpec("service_point", "ref", required=True, column="service_point_id", ref="service_points"),
            FieldSpec("installed_at", "datetime", required=True),
            FieldSpec("install_read_kwh", "decimal", scale=3),
            FieldSpec("removed_at", "datetime"),
            FieldSpec("removal_read_kwh", "decimal", scale=3),
        ),
        "installation",
    ),
    EntitySpec(
        "service_agreements",
        ServiceAgreement,
        "number",
        (
            _key("number", 32),
            FieldSpec("account", "ref", required=True, column="account_id", ref="accounts"),
            FieldSpec("service_point", "ref", required=True, column="service_point_id", ref="service_points"),
            FieldSpec("tariff_code", required=True, max_len=64),
            FieldSpec("payment_mode", "choice", choices=PAYMENT_MODES, default="postpaid"),
            FieldSpec("sanctioned_load_kw", "decimal", scale=3, default=Decimal(0), maximum=MAX_LOAD),
            FieldSpec("contract_demand_kva", "decimal", scale=3, maximum=MAX_LOAD),
            FieldSpec("start_date", "date", required=True),
            FieldSpec("end_date", "date"),
            FieldSpec("terms", "terms"),
        ),
        "service_agreement",
    ),
)

ENTITY: dict[str, EntitySpec] = {e.name: e for e in ENTITIES}


# --- field parsers ----------------------------------------------------------------------------


def _parse_str(f: FieldSpec, v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, str | int):
        raise FieldError("invalid_value", f"{f.name} must be text, not {type(v).__name__}")
    s = str(v).strip()
    if len(s) > f.max_len:
        raise FieldError("too_long", f"{f.name} has {len(s)} characters; at most {f.max_len} allowed")
    return s


def _parse_choice(f: FieldSpec, v: Any) -> str:
    s = _parse_str(f, v).lower()
    if s not in f.choices:
        raise FieldError(
            "invalid_choice", f"{f.name} {s!r} is not one of {', '.join(f.choices)}", allowed=list(f.choices)
        )
    return s


def parse_decimal(name: str, v: Any, scale: int, maximum: Decimal | None = None) -> Decimal:
    """A non-negative decimal from a string or an integer (floats are refused: they are inexact),
    in plain notation with at most :data:`MAX_DIGITS` digits before the point and ``scale``
    places; above ``maximum`` it is ``masterdata.out_of_range``."""
    if isinstance(v, float):
        raise FieldError("invalid_decimal", f'{name} {v!r} is a float; give decimals as strings, e.g. "{v}"')
    if isinstance(v, bool) or not isinstance(v, str | int):
        raise FieldError("invalid_decimal", f"{name} must be a decimal string or an integer")
    text = str(v).strip()
    if len(text) > MAX_DIGITS + 20 or not _PLAIN.fullmatch(text):
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise FieldError("invalid_decimal", f"{name} {shown!r} is not a decimal number such as 5.5")
    try:
        d = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
        raise FieldError("invalid_decimal", f"{name} {v!r} is not a decimal number") from None
    if d < 0:
        raise FieldError("invalid_decimal", f"{name} {v!r} must not be negative")
    if d.as_tuple().exponent < -scale:  # type: ignore[operator]
        raise FieldError("invalid_decimal", f"{name} {v!r} has more than {scale} decimal places")
    if len(text.lstrip("+").split(".")[0].lstrip("0")) > MAX_DIGITS:
        raise FieldError(
            "invalid_decimal", f"{name} {v!r} has more than {MAX_DIGITS} digits before the point"
        )
    if maximum is not None and d > maximum:
        raise FieldError(
            "out_of_range", f"{name} {v} is above the largest allowed, {maximum:,}", maximum=str(maximum)
        )
    return d


def _parse_decimal(f: FieldSpec, v: Any) -> Decimal:
    return parse_decimal(f.name, v, f.scale, f.maximum)


def in_window(name: str, day: date) -> date:
    """``day`` when it lies in the window of :func:`~meter2cash.core.timeutil.check_date`."""
    try:
        return check_date(day, name, code="masterdata.date_out_of_range")
    except InvalidInput as exc:
        raise FieldError("date_out_of_range", exc.message) from None


def _parse_date(f: FieldSpec, v: Any) -> date:
    if isinstance(v, date) and not isinstance(v, datetime):
        return in_window(f.name, v)
    try:
        day = date.fromisoformat(str(v).strip())
    except ValueError:
        raise FieldError("invalid_date", f"{f.name} {v!r} is not an ISO date (YYYY-MM-DD)") from None
    return in_window(f.name, day)


def _parse_datetime(f: FieldSpec, v: Any) -> datetime:
    if isinstance(v, datetime):
        ts = v
    else:
        try:
            ts = datetime.fromisoformat(str(v).strip())
        except ValueError:
            raise FieldError("invalid_datetime", f"{f.name} {v!r} is not an ISO 8601 timestamp") from None
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise FieldError(
            "naive_datetime", f"{f.name} {v!r} has no time zone; give an offset such as +05:30 or Z"
        )
    in_window(f.name, ts.date())  # before converting: year 1 or 9999 overflow in UTC
    return ts.astimezone(UTC)


def _parse_channels(f: FieldSpec, v: Any) -> tuple[dict[str, Any], ...]:
    """Channels as a list of ``{reading_type, multiplier}`` or the text ``code[:multiplier];…``."""
    items: list[Any]
    if isinstance(v, str):
        items = []
        for part in v.replace(",", ";").split(";"):
            if part.strip():
                code, _, factor = part.strip().partition(":")
                items.append({"reading_type": code.strip(), "multiplier": factor.strip() or 1})
    elif isinstance(v, list | tuple):
        items = list(v)
    else:
        raise FieldError("invalid_channels", "channels must be a list of {reading_type, multiplier}")
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, item in enumerate(items, 1):
        if not isinstance(item, dict) or not isinstance(item.get("reading_type"), str):
            raise FieldError("invalid_channels", f"channel {i} needs a reading_type code", channel=i)
        code = item["reading_type"].strip()
        if code not in BY_CODE:
            raise FieldError(
                "unknown_reading_type",
                f"channel {i}: {code!r} is not in the reading-type catalogue",
                reading_type=code,
            )
        if code in seen:
            raise FieldError("invalid_channels", f"channel {i}: {code} is listed twice", reading_type=code)
        seen.add(code)
        given = item.get("multiplier")
        mult = (
            Decimal(1)
            if given is None or given == ""
            else parse_decimal("multiplier", given, 6, MAX_MULTIPLIER)
        )
        if mult == 0:
            raise FieldError("invalid_channels", f"channel {i}: multiplier must be above zero")
        out.append({"reading_type": code, "multiplier": mult})
    return tuple(out)


def _parse_terms(f: FieldSpec, v: Any) -> tuple[dict[str, Any], ...]:
    """Contract terms as a list of ``{effective_from, sanctioned_load_kw, contract_demand_kva,
    reason}`` or the CSV text ``date:kW[:kVA];…``, by date."""
    items: list[Any]
    if isinstance(v, str):
        items = []
        for part in v.split(";"):
            if part.strip():
                bits = [b.strip() for b in part.split(":")]
                if len(bits) not in (2, 3):
                    raise FieldError("invalid_terms", f"term {part.strip()!r} is not date:kW or date:kW:kVA")
                items.append(
                    dict(
                        zip(
                            ("effective_from", "sanctioned_load_kw", "contract_demand_kva"),
                            bits,
                            strict=False,
                        )
                    )
                )
    elif isinstance(v, list | tuple):
        items = list(v)
    else:
        raise FieldError("invalid_terms", "terms must be a list of {effective_from, sanctioned_load_kw, ...}")
    out: dict[date, dict[str, Any]] = {}
    for i, item in enumerate(items, 1):
        if (
            not isinstance(item, dict)
            or _blank(item.get("effective_from"))
            or _blank(item.get("sanctioned_load_kw"))
        ):
            raise FieldError("invalid_terms", f"term {i} needs effective_from and sanctioned_load_kw", term=i)
        try:
            day = date.fromisoformat(str(item["effective_from"]).strip())
        except ValueError:
            raise FieldError(
                "invalid_terms", f"term {i}: {item['effective_from']!r} is not an ISO date", term=i
            ) from None
        in_window(f"term {i} effective_from", day)
        kw = parse_decimal(f"term {i} sanctioned_load_kw", item["sanctioned_load_kw"], 3, MAX_LOAD)
        kva_raw = item.get("contract_demand_kva")
        kva = (
            None if _blank(kva_raw) else parse_decimal(f"term {i} contract_demand_kva", kva_raw, 3, MAX_LOAD)
        )
        if day in out:
            raise FieldError("invalid_terms", f"term {i}: a second term from {day}", term=i)
        reason = item.get("reason") or ""
        if not isinstance(reason, str):
            raise FieldError("invalid_terms", f"term {i}: reason must be text", term=i)
        mode = item.get("payment_mode")
        if not _blank(mode) and mode not in PAYMENT_MODES:
            raise FieldError(
                "invalid_terms", f"term {i}: payment_mode {mode!r} is not one of {', '.join(PAYMENT_MODES)}",
                term=i,
            )  # fmt: skip
        tariff = item.get("tariff_code")
        if not _blank(tariff) and (not isinstance(tariff, str) or len(tariff.strip()) > 64):
            raise FieldError("invalid_terms", f"term {i}: tariff_code must be a code of up to 64 characters",
                             term=i)  # fmt: skip
        out[day] = {
            "effective_from": day,
            "sanctioned_load_kw": kw,
            "contract_demand_kva": kva,
            "payment_mode": None if _blank(mode) else mode,
            "tariff_code": None if _blank(tariff) else str(tariff).strip(),
            "reason": reason,
        }
    return tuple(out[d] for d in sorted(out))


def check_terms(rec: dict[str, Any]) -> str | None:
    """A service agreement's terms against its dates and columns: the first term starts on
    ``start_date``, none after ``end_date``, and the columns (taken from the latest term when
    not given) equal the latest term. Fills the columns; returns what is wrong, if anything."""
    terms = rec.get("terms")
    if not terms or "start_date" not in rec:
        return None
    if terms[0]["effective_from"] != rec["start_date"]:
        return (
            f"the first term must start on start_date {rec['start_date']}, not {terms[0]['effective_from']}"
        )
    end = rec.get("end_date")
    if end is not None and terms[-1]["effective_from"] > end:
        return f"a term starts after end_date {end}"
    # A term without a payment mode or tariff carries the one before it; the first takes the
    # record's (the latest term's when the record gives none).
    for col, default in (("payment_mode", "postpaid"), ("tariff_code", None)):
        given = [t[col] for t in terms if t.get(col) is not None]
        carried = rec.get(col) if not given or terms[0].get(col) is None else None
        carried = carried if carried is not None else (given[-1] if given else default)
        if carried is None:
            return f"the terms need a {col} (or the record's)"
        for t in terms:
            carried = t[col] = t.get(col) or carried
    latest = terms[-1]
    for col in ("sanctioned_load_kw", "contract_demand_kva", "payment_mode", "tariff_code"):
        if col in rec and rec[col] != latest[col]:
            return f"{col} {rec[col]} differs from the latest term's {latest[col]}"
        if latest[col] is not None:
            rec[col] = latest[col]
    return None


PARSERS: dict[str, Callable[[FieldSpec, Any], Any]] = {
    "str": _parse_str,
    "ref": _parse_str,
    "choice": _parse_choice,
    "decimal": _parse_decimal,
    "date": _parse_date,
    "datetime": _parse_datetime,
    "channels": _parse_channels,
    "terms": _parse_terms,
}


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


def tariff_codes(rec: dict[str, Any]) -> list[tuple[str, str]]:
    """``(field, tariff code)`` an agreement record names: its own and its terms' (as given)."""
    out = [("tariff_code", rec["tariff_code"])] if rec.get("tariff_code") else []
    out += [("terms", t["tariff_code"]) for t in rec.get("terms") or () if t.get("tariff_code")]
    return list(dict.fromkeys(out))


def unknown_tariffs(
    named: list[tuple[str, str]], tariffs: Collection[str], *, line: int, source: str
) -> list[Problem]:
    """``masterdata.unknown_tariff`` for each code in ``named`` that is not in ``tariffs``."""
    return [
        Problem(
            "masterdata.unknown_tariff",
            f"tariff {code!r} is not loaded; load the tariff file first (m2c tariff load)",
            line,
            field,
            source,
            {"tariff_code": code},
        )
        for field, code in named
        if code not in tariffs
    ]


def validate_record(
    spec: EntitySpec, raw: Any, *, line: int, source: str, tariffs: Collection[str] | None = None
) -> tuple[dict[str, Any] | None, list[Problem]]:
    """Typed values of one raw record, or ``None`` and every problem found in it.

    Blank values (``None``, empty text) count as not given. Unknown fields are ignored. With
    ``tariffs`` (the codes of the tariffs loaded), a service agreement's ``tariff_code`` and its
    terms' must be among them.
    """
    if not isinstance(raw, dict):
        msg = f"a {spec.name} record must be an object, not {type(raw).__name__}"
        return None, [Problem("masterdata.not_an_object", msg, line, None, source)]
    clean: dict[str, Any] = {}
    problems: list[Problem] = []
    for f in spec.fields:
        v = raw.get(f.name)
        if _blank(v):
            if f.required:
                problems.append(
                    Problem("masterdata.missing_field", f"{f.name} is required", line, f.name, source)
                )
            continue
        try:
            clean[f.name] = PARSERS[f.kind](f, v)
        except FieldError as exc:
            problems.append(Problem(exc.code, exc.message, line, f.name, source, exc.data))
    for first, last in (("start_date", "end_date"), ("installed_at", "removed_at")):
        if first in clean and last in clean and clean[last] < clean[first]:
            msg = f"{last} {clean[last].isoformat()} is before {first} {clean[first].isoformat()}"
            problems.append(Problem("masterdata.invalid_period", msg, line, last, source))
    named = tariff_codes(clean) if spec.name == "service_agreements" else []
    if spec.name == "service_agreements" and not problems and (wrong := check_terms(clean)):
        problems.append(Problem("masterdata.invalid_terms", wrong, line, "terms", source))
    if tariffs is not None:
        problems += unknown_tariffs(named, tariffs, line=line, source=source)
    return (None if problems else clean), problems


def record_key(spec: EntitySpec, rec: dict[str, Any]) -> str:
    """The natural key of a validated record (installations: ``serial@installed_at``)."""
    if spec.name == "installations":
        return f"{rec['meter']}@{rec['installed_at'].isoformat()}"
    return str(rec[spec.key])


def raw_key(spec: EntitySpec, raw: Any) -> str | None:
    """The natural key of a raw record, when it has a usable one (to mark it rejected)."""
    if spec.name == "installations" or not isinstance(raw, dict):
        return None
    v = raw.get(spec.key)
    return str(v).strip() if isinstance(v, str | int) and not isinstance(v, bool) else None


def to_json(value: Any) -> Any:
    """A JSON-friendly form of a typed value (decimals as plain strings, ISO dates)."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value else "0"
    if isinstance(value, float):
        return to_json(Decimal(repr(value)))
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value
