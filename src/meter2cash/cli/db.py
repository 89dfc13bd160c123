"""``m2c db``: schema migrations."""

from __future__ import annotations

import typer

from meter2cash.cli.common import console
from meter2cash.cli.render import print_json
from meter2cash.config import get_settings
from meter2cash.db import current_revision, head_revision, make_engine, upgrade

app = typer.Typer(help="Database schema: apply and inspect migrations.", no_args_is_help=True)
JSON_OPTION = typer.Option(False, "--json", help="print the result as JSON")


@app.command("upgrade")
def upgrade_cmd(
    revision: str = typer.Argument("head", help="target revision"), as_json: bool = JSON_OPTION
) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    url = get_settings().database_url
    upgrade(url, revision)
    engine = make_engine(url)
    try:
        now = current_revision(engine)
    finally:
        engine.dispose()
    if as_json:
        print_json({"revision": now})
    else:
        console.print(f"database at revision [bold]{now}[/bold] ({engine.url!r})", highlight=False)


@app.command("current")
def current_cmd(as_json: bool = JSON_OPTION) -> None:
    """Show the database's revision and the code's newest one."""
    engine = make_engine(get_settings().database_url)
    try:
        now = current_revision(engine)
    finally:
        engine.dispose()
    if as_json:
        print_json({"database": now, "code": head_revision()})
    else:
        console.print(f"database: {now}  code: {head_revision()}")
