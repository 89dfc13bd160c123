"""``m2c ingest``: load reading files."""

from __future__ import annotations

from pathlib import Path

import typer


def ingest(files: list[Path] = typer.Argument(..., help="CSV or JSON reading files")) -> None:
    """Ingest reading files (CSV or JSON)."""
    raise typer.Exit(1)
