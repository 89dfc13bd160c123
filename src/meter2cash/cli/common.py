"""Helpers shared by the CLI commands: the platform, the consoles, input files and periods.

Errors are not caught here: the root group (:mod:`meter2cash.cli.errors`) turns every error of a
command into one line with its stable code and exit code 2.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

from rich.console import Console

from meter2cash.bootstrap import Platform, bootstrap
from meter2cash.core.errors import InvalidInput
from meter2cash.core.jsonsafe import loads_bounded
from meter2cash.core.timeutil import check_date, parse_month

console = Console()
err_console = Console(stderr=True)


@contextmanager
def platform(*, check_migrated: bool = True) -> Iterator[Platform]:
    """A connected platform, disposed of afterwards."""
    p = bootstrap(check_migrated=check_migrated)
    try:
        yield p
    finally:
        p.dispose()


def period(value: str, field: str = "--period") -> str:
    """A billing period ``YYYY-MM`` as given, checked by the one shared parser
    (``period.invalid`` otherwise)."""
    parse_month(value, field)
    return value


@contextmanager
def reading(path: Path) -> Iterator[None]:
    """Errors met while reading the input file ``path`` name it: ``input.not_utf8`` with the byte
    offset, ``input.too_deep``, ``input.invalid_json``, ``input.unreadable``."""
    try:
        yield
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start] if isinstance(exc.object, bytes) else 0
        raise InvalidInput(
            f"{path} is not UTF-8 text: byte 0x{byte:02x} at offset {exc.start}",
            code="input.not_utf8",
            file=str(path),
            offset=exc.start,
        ) from None
    except RecursionError:
        raise InvalidInput(
            f"{path} is nested too deep to read", code="input.too_deep", file=str(path)
        ) from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"{path} is not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
            code="input.invalid_json",
            file=str(path),
        ) from None
    except InvalidInput as exc:
        if exc.code == "input.too_deep" and "file" not in exc.data:
            raise InvalidInput(f"{path}: {exc.message}", code=exc.code, file=str(path), **exc.data) from None
        raise
    except OSError as exc:
        raise InvalidInput(
            f"cannot read {path}: {exc.strerror or exc}", code="input.unreadable", file=str(path)
        ) from None


def read_text(path: Path) -> str:
    """The UTF-8 text of an input file (errors as :func:`reading`)."""
    with reading(path):
        return path.read_bytes().decode("utf-8")


def read_json(path: Path, max_depth: int = 64) -> Any:
    """An input JSON file, nested at most ``max_depth`` deep (errors as :func:`reading`)."""
    with reading(path):
        return loads_bounded(path.read_bytes(), max_depth)


def day(value: str, field: str) -> date:
    """A date ``YYYY-MM-DD`` given on the command line (``date.invalid`` otherwise)."""
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"{field} {value!r} is not a date YYYY-MM-DD", code="date.invalid", field=field
        ) from None
    return check_date(parsed, field, code="date.invalid")


def key_values(pairs: list[str], raw: str, *, option: str, code: str) -> dict[str, Any]:
    """Values given as a JSON object (``raw``, the ``s`` form of ``option``) and as repeated
    ``name=value`` pairs (the pairs win); ``code`` names a value that is neither."""
    values: dict[str, Any] = {}
    if raw:
        try:
            loaded = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{option}s is not JSON: {exc}", code=code) from None
        if not isinstance(loaded, dict):
            raise InvalidInput(f"{option}s must be a JSON object", code=code)
        values.update(loaded)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"{option} {pair!r}: write it as name=value", code=code)
        values[key] = value
    return values
