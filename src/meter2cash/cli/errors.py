"""The error boundary of every ``m2c`` command: one line on stderr with a stable code, exit 2.

Exit codes: 0 done; 1 done in part (some input was rejected and listed); 2 nothing done (bad
usage, bad input, an unreachable database, an unexpected error). ``--debug`` (or
``M2C_DEBUG=1``) shows the traceback of an unexpected error instead.
"""

from __future__ import annotations

import errno
import json
import re
from typing import Any

import typer
from rich.markup import escape
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from typer.core import TyperGroup

from meter2cash.cli.common import err_console
from meter2cash.core.errors import M2CError

#: Exit code of a command that could not do its work.
EXIT_FATAL = 2
DEBUG_HINT = "run again with --debug (or M2C_DEBUG=1) to see the traceback"
_MAX_MESSAGE = 300


class ErrorBoundary(TyperGroup):
    """The root command group: turns any exception of a command into :func:`report` and exit 2."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except Exception as exc:
            if ctx.params.get("debug") or (isinstance(exc, OSError) and exc.errno == errno.EPIPE):
                raise
            report(exc)
            raise typer.Exit(EXIT_FATAL) from None


def report(exc: BaseException) -> None:
    """Print ``exc`` as one line: ``error CODE: message``."""
    code, message = describe(exc)
    err_console.print(f"[red]error[/red] {code}: {escape(message)}", soft_wrap=True, highlight=False)


def describe(exc: BaseException) -> tuple[str, str]:
    """The stable code and a one-line message for an exception (no password, no SQL)."""
    if isinstance(exc, M2CError):
        return exc.code, _one_line(exc.message)
    if isinstance(exc, sa_exc.ArgumentError | sa_exc.NoSuchModuleError):
        return "db.bad_url", f"M2C_DATABASE_URL is not a database URL: {_one_line(str(exc))}"
    if isinstance(exc, sa_exc.DBAPIError):
        return _database_error(exc)
    if isinstance(exc, UnicodeDecodeError):
        return "input.not_utf8", (
            f"input is not UTF-8 text: byte 0x{exc.object[exc.start]:02x} at offset {exc.start}"
        )
    if isinstance(exc, RecursionError):
        return "input.too_deep", "input nested too deep to read"
    if isinstance(exc, json.JSONDecodeError):
        return "input.invalid_json", f"not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return "io.error", f"{exc.strerror or _one_line(str(exc))}{where}"
    detail = _one_line(str(exc))
    return "internal.error", f"{type(exc).__name__}{': ' + detail if detail else ''}; {DEBUG_HINT}"


def _database_error(exc: sa_exc.DBAPIError) -> tuple[str, str]:
    where, password = _database_place()
    reason = _one_line(str(exc.orig) if exc.orig is not None else str(exc), password)
    lost = exc.statement is None or exc.connection_invalidated or isinstance(exc, sa_exc.InterfaceError)
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError) and lost:
        return "db.unreachable", f"cannot reach the database {where}: {reason}"
    return "db.error", f"the database {where} refused a statement: {reason}; {DEBUG_HINT}"


def _database_place() -> tuple[str, str | None]:
    """Where the configured database is (``postgresql at host:port/name``), and its password
    (to be kept out of messages)."""
    from meter2cash.config import get_settings

    try:
        url = make_url(get_settings().database_url)
    except Exception:
        return "(M2C_DATABASE_URL)", None
    backend = url.get_backend_name()
    if backend == "sqlite":
        return f"sqlite file {url.database or ':memory:'}", None
    host = url.host or "localhost"
    port = f":{url.port}" if url.port else ""
    return f"{backend} at {host}{port}/{url.database or ''}", url.password and str(url.password)


def _one_line(text: str, secret: str | None = None) -> str:
    if secret:
        text = text.replace(secret, "***")
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."
