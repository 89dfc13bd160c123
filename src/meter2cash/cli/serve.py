"""``m2c serve``: the REST API."""

from __future__ import annotations

import typer


def serve(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Start the REST API (OpenAPI at /docs)."""
    raise typer.Exit(1)
