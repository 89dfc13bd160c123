"""``m2c tariff``, ``m2c bill-run``, ``m2c bill`` and ``m2c ledger``."""

from __future__ import annotations

import typer

tariff_app = typer.Typer(help="Tariffs: validate, load and show tariff files.", no_args_is_help=True)
ledger_app = typer.Typer(help="The double-entry ledger.", no_args_is_help=True)
bill_app = typer.Typer(help="Bills: show and render.", no_args_is_help=True)


def bill_run(period: str = typer.Option(..., help="billing month, YYYY-MM")) -> None:
    """Rate every active service agreement for a month and post the bills to the ledger."""
    raise typer.Exit(1)
