"""``m2c hes``: reading ingestion over NATS JetStream (``publish``, ``m2c worker ingest``), re-reads,
and the MDM's end of a head-end link (``serve``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from meter2cash.cli.common import console, err_console, platform
from meter2cash.cli.render import print_json, table
from meter2cash.config import get_settings
from meter2cash.core.errors import M2CError
from meter2cash.integration.nats_bus import NatsConfig

hes_app = typer.Typer(
    help="The head-end interface: publish reading files, re-reads, serve a head-end link.",
    no_args_is_help=True,
)
worker_app = typer.Typer(help="Stateless workers that take work from NATS JetStream.", no_args_is_help=True)

STREAM = "M2C_HES"
JSON_OPTION = typer.Option(False, "--json", help="print the result as JSON")


def _config(nats_url: str, stream: str, prefix: str = "m2c") -> NatsConfig:
    url = nats_url or get_settings().nats_url
    if not url:
        raise M2CError("give --nats or set M2C_NATS_URL", code="bus.not_configured")
    return NatsConfig(url=url, stream=stream, prefix=prefix)


@hes_app.command("publish")
def publish(
    files: list[Path] = typer.Argument(..., exists=True, dir_okay=False, help="CSV or JSON reading files"),
    nats_url: str = typer.Option("", "--nats", help="NATS URL (default: M2C_NATS_URL)"),
    stream: str = typer.Option(STREAM, help="JetStream stream for readings"),
    source: str = typer.Option("hes", help="recorded as the readings' source"),
    prefix: str = typer.Option("m2c", help="subject prefix: <prefix>.hes.readings"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Publish reading files for the ingest workers (large files are split; retries are de-duplicated)."""
    from meter2cash.integration.nats_ingest import publish_files

    stored = publish_files(files, _config(nats_url, stream, prefix), source=source)
    if as_json:
        print_json({"files": len(files), "new_messages": stored, "stream": stream})
    else:
        console.print(f"published {len(files)} file(s): {stored} new message(s) in {stream}")


@worker_app.command("ingest")
def ingest_worker(
    nats_url: str = typer.Option("", "--nats", help="NATS URL (default: M2C_NATS_URL)"),
    stream: str = typer.Option(STREAM, help="JetStream stream for readings"),
    durable: str = typer.Option(
        "m2c-ingest", help="the shared consumer: workers with one name split the work"
    ),
    idle: float = typer.Option(5.0, help="stop after this many seconds without a message"),
    prefix: str = typer.Option("m2c", help="subject prefix: <prefix>.hes.readings"),
    as_json: bool = typer.Option(False, "--json", help="one JSON line per message, and a last one"),
) -> None:
    """Ingest published reading files until the stream is idle (run several for more throughput)."""
    from meter2cash.integration.nats_ingest import run_worker

    cfg = _config(nats_url, stream, prefix)

    def done(name: str, result: object) -> None:
        r = result  # IngestResult
        if as_json:
            to_dict = getattr(r, "to_dict", None)
            typer.echo(json.dumps({"message": name, "result": to_dict() if to_dict else str(r)}, default=str))
            return
        state = (
            "already ingested"
            if getattr(r, "duplicate_file", False)
            else (f"{getattr(r, 'rows_accepted', 0):,} accepted, {getattr(r, 'rows_rejected', 0):,} rejected")
        )
        console.print(f"{name}: {state}")

    def failed(name: str, exc: M2CError) -> None:
        if as_json:
            typer.echo(json.dumps({"message": name, "error": exc.to_dict()}, default=str))
        else:
            err_console.print(f"[red]{escape(name)}[/red] {exc.code}: {escape(exc.message)}", highlight=False)

    with platform() as p:
        n = run_worker(p.sessions, cfg, durable=durable, idle_timeout_s=idle, on_result=done, on_error=failed)
    if as_json:
        typer.echo(json.dumps({"handled": n}))
    else:
        console.print(f"{n} message(s) handled")


@worker_app.command("events")
def events_worker(
    nats_url: str = typer.Option("", "--nats", help="NATS URL (default: M2C_NATS_URL)"),
    stream: str = typer.Option("M2C_EVENTS", help="JetStream stream of the events"),
    durable: str = typer.Option("m2c-events", help="the shared consumer"),
    idle: float = typer.Option(5.0, help="stop after this many seconds without a message"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Run the platform's event subscribers (rebilling, receipts) on events relayed to NATS."""
    from meter2cash.bootstrap import subscribers
    from meter2cash.integration.nats_bus import consume

    cfg = _config(nats_url, stream)
    with platform() as p:
        n = consume(p.sessions, cfg, subscribers(p.settings), durable=durable, idle_timeout_s=idle)
    if as_json:
        print_json({"handled": n})
    else:
        console.print(f"{n} event(s) handled")


@hes_app.command("rereads")
def rereads_list(
    status: str | None = typer.Option(None, "--status", help="requested, sent, completed or failed"),
    meter: str | None = typer.Option(None, "--meter", help="Meter serial"),
    limit: int = typer.Option(50, "--limit", min=1),
    as_json: bool = JSON_OPTION,
) -> None:
    """Re-read requests to the head-end (newest first)."""
    from meter2cash.mdm.vee.rereads import list_rereads

    with platform() as p, p.sessions() as session:
        items, total = list_rereads(session, status=status, meter=meter, limit=limit)
    if as_json:
        print_json({"total": total, "items": items})
        return
    if not items:
        console.print("no re-read requests")
        return
    out = table(
        f"Re-read requests ({len(items)} of {total})",
        "id",
        "meter / channel",
        "window (UTC)",
        "status",
        "requested / done",
        "outcome",
    )
    for r in items:
        done = r["completed_at"] or r["sent_at"]
        out.add_row(
            str(r["id"]),
            f"{r['meter'] or ''} {r['channel'] or ''}".strip(),
            f"{r['window_start'][:16]} .. {r['window_end'][:16]}",
            r["status"],
            r["requested_at"][:16] + (f" / {done[:16]}" if done else ""),
            r["outcome"] or "",
        )
    console.print(out)


@hes_app.command("send-rereads")
def send_rereads_cmd(as_json: bool = JSON_OPTION) -> None:
    """Send the pending re-read requests to the head-end (one hes.reread_requested event each)."""
    from meter2cash.db import transaction
    from meter2cash.mdm.vee.rereads import send_rereads

    with platform() as p, transaction(p.sessions) as session:
        n = send_rereads(session)
    if as_json:
        print_json({"sent": n})
    else:
        console.print(f"{n} re-read request(s) sent")


@hes_app.command("answer-rereads")
def answer_rereads_cmd(
    state: Path | None = typer.Option(
        None, "--state", help="Simulator state saved by m2c demo (default: <var>/demo/hes/simulator.json)"
    ),
    out_dir: Path | None = typer.Option(
        None, "--out", help="Where the answer files go (default: <var>/hes/rereads)"
    ),
    timeout_hours: float = typer.Option(
        24.0, "--timeout-hours", help="Fail requests sent longer ago without data"
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """The simulated head-end answers the re-read requests: sends pending ones, delivers each window's
    clean intervals as a reading file, ingests the files and completes the requests."""
    from meter2cash.hes.reread_answers import STATE_FILE, answer_round

    with platform() as p:
        out = answer_round(
            p.sessions,
            state_path=state or p.settings.var_dir / STATE_FILE,
            out_dir=out_dir or p.settings.var_dir / "hes" / "rereads",
            timeout_hours=timeout_hours,
        )
    if as_json:
        print_json(out)
        return
    console.print(
        f"re-reads: {out['sent']} sent, {out['answered']} answered ({out['files']} file(s) ingested), "
        f"{out['completed']} completed, {out['failed']} failed"
    )


SERVE_ROWS = (
    ("messages", "messages handled"),
    ("rows", "profile rows kept"),
    ("events", "events stored"),
    ("reports", "command reports applied"),
    ("changes", "network changes"),
    ("duplicates", "duplicates"),
    ("ok", "replies OK"),
    ("partial", "replies PARTIAL"),
    ("failed", "replies FAILED"),
    ("dead_letters", "dead letters"),
    ("commands_sent", "commands sent"),
    ("dispatch_errors", "failed command rounds"),
    ("events_routed", "events routed"),
    ("reacquisitions", "re-acquisitions asked"),
    ("job_errors", "failed job rounds"),
)


def _serve_table(counts: dict[str, int], title: str) -> Any:
    from meter2cash.cli.render import Num

    out = table(title, "", Num("count"))
    for key, label in SERVE_ROWS:
        style = (
            "red"
            if key == "failed" and counts[key]
            else "yellow"
            if key == "partial" and counts[key]
            else None
        )
        out.add_row(label, f"{counts[key]:,}", style=style)
    return out


@hes_app.command("serve")
def serve_cmd(
    transport: str = typer.Option(
        "mqtt", "--transport", help="mqtt or nats (rest: only send due commands to M2C_HES_CALLBACK_URL)"
    ),
    mqtt_url: str = typer.Option("mqtt://127.0.0.1:1883", "--mqtt-url", help="the MQTT broker"),
    nats_url: str = typer.Option("", "--nats", help="NATS URL (default: M2C_NATS_URL)"),
    hes: str = typer.Option("", "--hes", help="the head-end's name (default: M2C_HES_NAME)"),
    prefix: str = typer.Option("m2c", "--prefix", help="topic / subject prefix: <prefix>/hes/<hes>/<kind>"),
    idle: float | None = typer.Option(None, "--idle", help="stop after this many seconds without traffic"),
    route_every: float = typer.Option(
        5.0, "--route-every", min=0, help="route new events every S seconds (0: off)"
    ),
    acquire_every: float = typer.Option(
        0.0, "--acquire-every", min=0, help="ask again for missed intervals every S seconds (0: off)"
    ),
    acquire_days: int = typer.Option(2, "--acquire-days", min=1, max=31, help="complete days to look back"),
    as_json: bool = JSON_OPTION,
) -> None:
    """The MDM's end of a head-end link: apply what the head-end sends, reply, send due commands,
    route events and ask again for missed intervals (until --idle seconds pass without traffic,
    or Ctrl-C)."""
    from rich.live import Live

    from meter2cash.integration.hes_serve import ServeStats, serve

    if transport not in ("mqtt", "nats", "rest"):
        raise M2CError(f"--transport is mqtt, nats or rest, not {transport!r}", code="hes.bad_transport")
    url = (
        mqtt_url if transport == "mqtt" else (nats_url or get_settings().nats_url or "nats://127.0.0.1:4222")
    )
    last = ServeStats()

    def progress(stats: ServeStats) -> None:
        nonlocal last
        last = stats
        if live is not None:
            live.update(_serve_table(stats.to_dict(), f"head-end {name} over {transport}"))

    with platform() as p:
        name = hes or p.settings.hes_name
        live = None if as_json else Live(console=console, refresh_per_second=4, transient=True)
        try:
            if live is not None:
                live.start()
            serve(
                p,
                transport,
                hes=name,
                prefix=prefix,
                url=url,
                idle=idle,
                route_every=route_every,
                acquire_every=acquire_every,
                acquire_days=acquire_days,
                on_progress=progress,
            )
        except KeyboardInterrupt:
            pass
        finally:
            if live is not None:
                live.stop()
    counts = last.to_dict()
    if as_json:
        print_json({"hes": name, "transport": transport, **counts})
    else:
        console.print(_serve_table(counts, f"head-end {name} over {transport}"))
