"""``m2c serve``: the REST API."""

from __future__ import annotations

import typer

from meter2cash.cli.common import err_console, platform


def serve(
    host: str = typer.Option("127.0.0.1", help="interface to listen on"),
    port: int = typer.Option(8000, help="TCP port"),
    reload: bool = typer.Option(False, "--reload", help="restart on code changes (development)"),
) -> None:
    """Start the REST API (OpenAPI at /docs). Refuses an unmigrated database, and outside
    M2C_ENVIRONMENT=development settings without API keys or with a default secret (exit code 2)."""
    import uvicorn

    from meter2cash.api.app import create_app, start_warnings

    with platform() as p:
        p.settings.check_safe()
        for warning in start_warnings(p.settings):
            err_console.print(f"[yellow]{warning}[/yellow]", soft_wrap=True, highlight=False)
        if reload:
            p.dispose()
            uvicorn.run("meter2cash.api.app:create_app", factory=True, host=host, port=port, reload=True)
        else:
            uvicorn.run(create_app(p), host=host, port=port)
