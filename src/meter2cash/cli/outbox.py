"""``m2c outbox``: the events waiting to leave, and their relay to NATS JetStream."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import typer
from sqlalchemy import func, select

from meter2cash.cli.common import console, platform
from meter2cash.cli.render import Num, print_json, table
from meter2cash.core.errors import M2CError
from meter2cash.events.models import OutboxMessage

app = typer.Typer(
    help="Events: what waits in the outbox, and the relay to NATS JetStream.", no_args_is_help=True
)


JSON_OPTION = typer.Option(
    False, "--json", help="print the result as JSON (one line per batch when draining)"
)


@app.command("status")
def status(as_json: bool = JSON_OPTION) -> None:
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
    if as_json:
        print_json(
            {
                "topics": [
                    {
                        "topic": topic,
                        "messages": total,
                        "dispatched": sent,
                        "waiting": total - sent,
                        "oldest_waiting": oldest,
                    }
                    for topic, total, sent, oldest in rows
                ]
            }
        )
        return
    out = table("Outbox", "topic", Num("messages"), Num("dispatched"), Num("waiting"), "oldest waiting")
    for topic, total, sent, oldest in rows:
        when = "" if oldest is None else f"{oldest:%Y-%m-%d %H:%M:%S}"
        out.add_row(topic, f"{total:,}", f"{sent:,}", f"{total - sent:,}", when)
    console.print(out)


def _drain(
    step: Callable[[], int], verb: str, *, follow: bool, interval: float, batch: int, as_json: bool = False
) -> None:
    """Run ``step`` (one batch, returns how many events it handled) until nothing waits, or forever.
    With ``as_json`` one JSON line per batch (``{"events": n, "total": t}``) and one at the end."""
    total = 0
    while True:
        n = step()
        total += n
        if n and as_json:
            typer.echo(json.dumps({"events": n, "total": total}))
        elif n:
            console.print(f"{verb} {n:,} events ({total:,} in all)")
        if not follow:
            break
        if n < batch:
            time.sleep(interval)
    if as_json:
        typer.echo(json.dumps({"events": 0, "total": total, "done": True}))
    elif total == 0:
        console.print("nothing waiting")


@app.command("dispatch")
def dispatch(
    follow: bool = typer.Option(False, "--follow", help="keep dispatching as new events commit"),
    interval: float = typer.Option(1.0, help="seconds between polls with --follow"),
    batch: int = typer.Option(1000, min=1, help="messages per transaction"),
    as_json: bool = JSON_OPTION,
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
            as_json=as_json,
        )


@app.command("relay")
def relay(
    nats_url: str = typer.Option("", "--nats", help="NATS URL (default: M2C_NATS_URL)"),
    stream: str = typer.Option("M2C_EVENTS", help="JetStream stream"),
    follow: bool = typer.Option(False, "--follow", help="keep relaying as new events commit"),
    interval: float = typer.Option(1.0, help="seconds between polls with --follow"),
    batch: int = typer.Option(1000, min=1, help="messages per transaction"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Publish committed events to NATS JetStream subjects m2c.events.<topic> (each exactly once)."""
    from meter2cash.integration.nats_bus import NatsConfig, relay_outbox

    with platform() as p:
        url = nats_url or p.settings.nats_url
        if not url:
            raise M2CError("give --nats or set M2C_NATS_URL", code="bus.not_configured")
        cfg = NatsConfig(url=url, stream=stream)
        _drain(
            lambda: relay_outbox(p.sessions, cfg, limit=batch),
            f"relayed to {cfg.stream}",
            follow=follow,
            interval=interval,
            batch=batch,
            as_json=as_json,
        )
