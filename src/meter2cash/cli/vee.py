"""``m2c vee``: validation, estimation and editing."""

from __future__ import annotations

import typer

app = typer.Typer(help="Validation, estimation and editing of interval data.", no_args_is_help=True)
