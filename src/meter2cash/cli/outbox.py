"""``m2c outbox``: the events waiting to leave, and their relay to NATS JetStream."""

from __future__ import annotations

import time
from collections.abc import Callable

import typer
from rich.table import Table
from sqlalchemy import func, select

from meter2cash.cli.common import console, platform
from meter2cash.integration.models import OutboxMessage

app = typer.Typer(
    help="Events: what waits in the outbox, and the relay to NATS JetStream.", no_args_is_help=True
)


@app.command("status")
def status() -> None:
    """Messages per topic: dispatched and still waiting."""
    with platform() as p, p.sessions() as s:
        rows = s.execute(
            select(
                OutboxMessage.topic,
                func.count(),
                func.count(OutboxMessage.dispatched_at),
                func.min(OutboxMessage.created_at).filter(OutboxMessage.dispatched_at.is_(None)),
            )
            .group_by(OutboxMessage.topic)
            .order_by(OutboxMessage.topic)
        ).all()
    table = Table(title="Outbox")
    for col in ("topic", "messages", "dispatched", "waiting", "oldest waiting"):
        table.add_column(col, justify="left" if col in ("topic", "oldest waiting") else "right")
    for topic, total, sent, oldest in rows:
        table.add_row(topic, f"{total:,}", f"{sent:,}", f"{total - sent:,}", str(oldest or ""))
    console.print(table)


def _drain(step: Callable[[], int], verb: str, *, follow: bool, interval: float, batch: int) -> None:
    """Run ``step`` (one batch, returns how many events it handled) until nothing waits, or forever."""
    total = 0
    while True:
        n = step()
        total += n
        if n:
            console.print(f"{verb} {n:,} events ({total:,} in all)")
        if not follow:
            break
        if n < batch:
            time.sleep(interval)
    if not follow and total == 0:
        console.print("nothing waiting")


@app.command("dispatch")
def dispatch(
    follow: bool = typer.Option(False, "--follow", help="keep dispatching as new events commit"),
    interval: float = typer.Option(1.0, help="seconds between polls with --follow"),
    batch: int = typer.Option(1000, min=1, help="messages per transaction"),
) -> None:
    """Hand committed events to the in-process subscribers (rebilling, receipts), each once."""
    from meter2cash.bootstrap import subscribers

    with platform() as p:
        dispatcher = subscribers(p.settings)
        _drain(
            lambda: dispatcher.dispatch_pending(p.sessions, limit=batch),
            "dispatched",
            follow=follow,
            interval=interval,
            batch=batch,
        )


@app.command("relay")
def relay(
    nats_url: str = typer.Option("", "--nats", help="NATS URL (default: M2C_NATS_URL)"),
    stream: str = typer.Option("M2C_EVENTS", help="JetStream stream"),
    follow: bool = typer.Option(False, "--follow", help="keep relaying as new events commit"),
    interval: float = typer.Option(1.0, help="seconds between polls with --follow"),
    batch: int = typer.Option(1000, min=1, help="messages per transaction"),
) -> None:
    """Publish committed events to NATS JetStream subjects m2c.events.<topic> (each exactly once)."""
    from meter2cash.integration.nats_bus import NatsConfig, relay_outbox

    with platform() as p:
        url = nats_url or p.settings.nats_url
        if not url:
            console.print("[red]error[/red] bus.not_configured: give --nats or set M2C_NATS_URL")
            raise typer.Exit(2)
        cfg = NatsConfig(url=url, stream=stream)
        _drain(
            lambda: relay_outbox(p.sessions, cfg, limit=batch),
            f"relayed to {cfg.stream}",
            follow=follow,
            interval=interval,
            batch=batch,
        )
