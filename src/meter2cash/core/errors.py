"""Errors with stable dotted codes, so they can be counted, filtered and shown."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


class M2CError(Exception):
    """Base error. ``code`` is stable (``ingest.unknown_meter``); ``data`` is JSON-serialisable."""

    code = "m2c.error"
    http_status = 400

    def __init__(self, message: str, *, code: str | None = None, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.data = data

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "data": self.data}


class NotFound(M2CError):
    code = "m2c.not_found"
    http_status = 404


class Conflict(M2CError):
    code = "m2c.conflict"
    http_status = 409


class Forbidden(M2CError):
    """The caller's role may not do this."""

    code = "m2c.forbidden"
    http_status = 403


class InvalidInput(M2CError):
    code = "m2c.invalid_input"
    http_status = 422


class DatabaseNotMigrated(M2CError):
    code = "db.not_migrated"
    http_status = 503


@dataclass(frozen=True, slots=True)
class Problem:
    """One bad record in an input: where it is, what is wrong, with a stable code."""

    code: str
    message: str
    line: int | None = None
    field: str | None = None
    source: str | None = None
    data: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "line": self.line,
            "field": self.field,
            "source": self.source,
            **({"data": self.data} if self.data else {}),
        }

    def __str__(self) -> str:
        where = ":".join(str(p) for p in (self.source, self.line) if p is not None)
        col = f" [{self.field}]" if self.field else ""
        return f"{where}{col} {self.code}: {self.message}".strip()


def error_path(loc: tuple[int | str, ...]) -> str:
    """A validation error's location (pydantic's ``loc``) as a path into the document:
    ``versions[0].energy.slabs[2]``; the validators' own steps (``function-…``) are left out."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith("function-") or part in ("constrained-str",):
            continue
        else:
            out += f".{part}" if out else part
    return out
