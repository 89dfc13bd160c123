"""``m2c masterdata``: load and export master data bundles."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Master data: people, accounts, premises, service points, meters.", no_args_is_help=True
)
