"""``m2c demo``: the main job on a simulated utility."""

from __future__ import annotations

import typer


def demo() -> None:
    """Simulate a utility and take it from meter reads to bills."""
    raise typer.Exit(1)
