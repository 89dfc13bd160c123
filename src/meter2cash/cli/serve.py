"""``m2c serve``: the REST API."""

from __future__ import annotations

import typer

from meter2cash.cli.common import platform


def serve(
    host: str = typer.Option("127.0.0.1", help="interface to listen on"),
    port: int = typer.Option(8000, help="TCP port"),
    reload: bool = typer.Option(False, "--reload", help="restart on code changes (development)"),
) -> None:
    """Start the REST API (OpenAPI at /docs). Refuses an unmigrated database (exit code 2)."""
    import uvicorn

    from meter2cash.api.app import create_app

    with platform() as p:
        if reload:
            p.dispose()
            uvicorn.run("meter2cash.api.app:create_app", factory=True, host=host, port=port, reload=True)
        else:
            uvicorn.run(create_app(p), host=host, port=port)
