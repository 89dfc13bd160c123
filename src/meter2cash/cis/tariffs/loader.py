"""Reading tariff files, storing their versions, and finding the version in effect on a day.

``store_tariff`` and ``tariff_version_for`` take a Session and never commit (the caller owns the
transaction).
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from meter2cash.cis.tariffs.definitions import CHECKS_FAILED, TariffDefinition, TariffVersionDef
from meter2cash.cis.tariffs.models import TariffVersion
from meter2cash.core.errors import Conflict, InvalidInput, NotFound, Problem, error_path


class TariffFileError(InvalidInput):
    """A tariff file that cannot be read or does not validate; ``problems`` name each field."""

    code = "tariff.invalid"

    def __init__(self, message: str, problems: list[Problem], *, code: str | None = None) -> None:
        super().__init__(message, code=code, problems=[p.to_dict() for p in problems])
        self.problems = problems


def parse_tariff(text: str, source: str = "<tariff>") -> TariffDefinition:
    """Parse and validate tariff TOML text; raise :class:`TariffFileError` naming every bad field."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        problem = Problem("tariff.syntax", f"not valid TOML: {exc}", source=source)
        raise TariffFileError(f"{source}: not valid TOML: {exc}", [problem], code="tariff.syntax") from exc
    return tariff_from_dict(data, source)


#: Stable codes of pydantic's own error types (ours carry their code as their type).
_CODES = {
    "extra_forbidden": "tariff.unknown_field",
    "missing": "tariff.missing_field",
    "literal_error": "tariff.bad_choice",
    "greater_than": "tariff.out_of_range",
    "greater_than_equal": "tariff.out_of_range",
    "less_than": "tariff.out_of_range",
    "less_than_equal": "tariff.out_of_range",
    "date_type": "tariff.bad_date",
    "date_parsing": "tariff.bad_date",
    "date_from_datetime_parsing": "tariff.bad_date",
    "date_from_datetime_inexact": "tariff.bad_date",
}


def problems_of(exc: ValidationError, source: str) -> list[Problem]:
    """Every fault of a validation, each with its stable code and field path; a version's failed
    checks (:data:`CHECKS_FAILED`) are listed one by one."""
    problems = []
    for err in exc.errors():
        where = error_path(tuple(err["loc"])) or "(file)"
        kind = str(err["type"])
        if kind == CHECKS_FAILED:
            for p in err.get("ctx", {}).get("problems", []):
                field = f"{where}.{p['field']}" if where != "(file)" else p["field"]
                problems.append(Problem(p["code"], p["message"], field=field, source=source))
            continue
        msg = str(err["msg"]).removeprefix("Value error, ")
        if kind == "extra_forbidden":
            msg = "unknown field (check the spelling; see docs/tariffs.md)"
        code = kind if kind.startswith("tariff.") else _CODES.get(kind, "tariff.invalid")
        problems.append(Problem(code, msg, field=where, source=source))
    return problems


def _file_error(source: str, problems: list[Problem], what: str = "invalid tariff") -> TariffFileError:
    lines = "\n".join(f"  {p.field}: {p.message} ({p.code})" for p in problems)
    return TariffFileError(f"{source}: {what}:\n{lines}", problems)


def tariff_from_dict(data: dict[str, Any], source: str = "<tariff>") -> TariffDefinition:
    """Validate a tariff's data; raise :class:`TariffFileError` listing every problem at once."""
    try:
        return TariffDefinition.model_validate(data)
    except ValidationError as exc:
        raise _file_error(source, problems_of(exc, source)) from None


def stored_version(definition: dict[str, Any], source: str = "<stored tariff>") -> TariffVersionDef:
    """A stored version's definition read back and validated again, checks and all: a version
    stored before a rule existed is refused (``tariff.invalid_stored``) instead of rated."""
    try:
        return TariffVersionDef.model_validate(definition)
    except ValidationError as exc:
        problems = problems_of(exc, source)
        raise TariffFileError(
            _file_error(source, problems, "stored tariff version no longer validates").message,
            problems,
            code="tariff.invalid_stored",
        ) from None


def load_tariff_file(path: str | Path) -> TariffDefinition:
    """Read and validate one tariff file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        problem = Problem("tariff.unreadable", str(exc), source=str(path))
        raise TariffFileError(f"{path}: {exc}", [problem], code="tariff.unreadable") from exc
    except UnicodeDecodeError as exc:
        problem = Problem("tariff.not_utf8", f"not UTF-8 text: {exc}", source=str(path))
        raise TariffFileError(f"{path}: not UTF-8 text: {exc}", [problem], code="tariff.not_utf8") from exc
    return parse_tariff(text, str(path))


def version_json(version: TariffVersionDef) -> dict[str, Any]:
    return version.model_dump(mode="json")


def version_hash(version: TariffVersionDef) -> str:
    canonical = json.dumps(version_json(version), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def store_tariff(
    session: Session, definition: TariffDefinition, source_text: str = ""
) -> list[TariffVersion]:
    """Store every version of ``definition``; idempotent by content hash.

    A version whose ``code``/``effective_from`` is stored with different content raises
    :class:`Conflict` (``tariff.conflict``): publish a new version instead of changing one that
    bills may already use. Flushes, does not commit.
    """
    stored = {
        tv.effective_from: tv
        for tv in session.scalars(select(TariffVersion).where(TariffVersion.code == definition.code))
    }
    out: list[TariffVersion] = []
    for v in definition.versions:
        sha = version_hash(v)
        existing = stored.get(v.effective_from)
        if existing is not None:
            if existing.sha256 != sha:
                raise Conflict(
                    f"tariff {definition.code} version from {v.effective_from} is already loaded with "
                    "different content; add a new version with a later effective_from instead",
                    code="tariff.conflict",
                    tariff=definition.code,
                    effective_from=v.effective_from.isoformat(),
                )
            out.append(existing)
            continue
        row = TariffVersion(
            code=definition.code,
            name=v.name,
            effective_from=v.effective_from,
            effective_to=v.effective_to,
            currency=definition.currency,
            definition=version_json(v),
            source=source_text,
            sha256=sha,
        )
        session.add(row)
        out.append(row)
    session.flush()
    return out


def tariff_version_on(definition: TariffDefinition, period: str) -> TariffVersionDef:
    """The version of a tariff file in effect on the first day of ``period`` (``YYYY-MM``)."""
    y, m = (int(x) for x in period.split("-"))
    v = definition.version_on(date(y, m, 1))
    if v is None:
        raise NotFound(f"no version of {definition.code} on {period}-01", code="tariff.not_found")
    return v


def tariff_version_for(session: Session, code: str, on: date) -> tuple[TariffVersion, TariffVersionDef]:
    """The stored version of tariff ``code`` in effect on ``on`` (``tariff.not_found`` if none)."""
    row = session.scalars(
        select(TariffVersion)
        .where(
            TariffVersion.code == code,
            TariffVersion.effective_from <= on,
            or_(TariffVersion.effective_to.is_(None), TariffVersion.effective_to >= on),
        )
        .order_by(TariffVersion.effective_from.desc())
        .limit(1)
    ).first()
    if row is None:
        raise NotFound(f"no version of tariff {code!r} is in effect on {on}", code="tariff.not_found")
    return row, stored_version(row.definition, f"tariff {code} from {row.effective_from}")
