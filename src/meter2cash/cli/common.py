"""Helpers shared by the CLI commands: the platform, the console, errors as exit codes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

from meter2cash.bootstrap import Platform, bootstrap
from meter2cash.core.errors import M2CError

console = Console()
err_console = Console(stderr=True)


@contextmanager
def platform(*, check_migrated: bool = True) -> Iterator[Platform]:
    """A connected platform; an :class:`M2CError` becomes a one-line message and exit code 2."""
    try:
        p = bootstrap(check_migrated=check_migrated)
    except M2CError as exc:
        err_console.print(f"[red]error[/red] {exc.code}: {exc.message}")
        raise typer.Exit(2) from exc
    try:
        yield p
    except M2CError as exc:
        err_console.print(f"[red]error[/red] {exc.code}: {exc.message}")
        raise typer.Exit(2) from exc
    finally:
        p.dispose()
