"""``m2c db``: schema migrations."""

from __future__ import annotations

import typer

from meter2cash.cli.common import console
from meter2cash.config import get_settings
from meter2cash.db import current_revision, head_revision, make_engine, upgrade

app = typer.Typer(help="Database schema: apply and inspect migrations.", no_args_is_help=True)


@app.command("upgrade")
def upgrade_cmd(revision: str = typer.Argument("head", help="target revision")) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    url = get_settings().database_url
    upgrade(url, revision)
    engine = make_engine(url)
    console.print(f"database at revision [bold]{current_revision(engine)}[/bold] ({engine.url!r})")
    engine.dispose()


@app.command("current")
def current_cmd() -> None:
    """Show the database's revision and the code's newest one."""
    engine = make_engine(get_settings().database_url)
    console.print(f"database: {current_revision(engine)}  code: {head_revision()}")
    engine.dispose()
