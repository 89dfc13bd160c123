"""``m2c hes-sim``: a simulated head-end with its fleet of meters, run as a separate process."""

from __future__ import annotations

import json
import signal
from datetime import date
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from meter2cash.cli.common import console, platform
from meter2cash.cli.render import Key, Num, print_json, table
from meter2cash.config import get_settings
from meter2cash.core.errors import InvalidInput
from meter2cash.mdm.events.catalogue import BY_ID, LOAD_VIOLATION

app = typer.Typer(
    help="A simulated head-end: a fleet of smart meters behind DCUs speaking the HES protocol.",
    no_args_is_help=True,
)

TRANSPORTS = ("mqtt", "nats", "rest")
JSON_OPTION = typer.Option(False, "--json", help="print the result as JSON")


@app.command("init")
def init(
    meters: int = typer.Option(100, "--meters", min=1, help="consumer meters"),
    dcus: int = typer.Option(4, "--dcus", min=1, help="DCUs, one per distribution transformer"),
    start: str = typer.Option("2026-10-01", "--start", help="first simulated local day, YYYY-MM-DD"),
    days: int = typer.Option(1, "--days", min=1, max=3660, help="days a run simulates unless told otherwise"),
    interval: int = typer.Option(15, "--interval", help="block-load capture period in minutes: 15 or 30"),
    seed: int = typer.Option(42, "--seed", help="random seed (same seed, same fleet)"),
    dts_per_feeder: int = typer.Option(10, "--dts-per-feeder", min=1, help="transformers on each feeder"),
    tz: str = typer.Option("", "--tz", help="the meters' time zone (default: M2C_TIMEZONE)"),
    out: Path = typer.Option(
        ..., "--out", file_okay=False, help="directory for fleet.json and masterdata.json"
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a fleet: DIR/fleet.json (for hes-sim run) and DIR/masterdata.json (for masterdata load)."""
    from meter2cash.hes.fleet import FleetSpec, build_sim_fleet, write_fleet_json
    from meter2cash.hes.sim_masterdata import write_bundle

    spec = FleetSpec(
        meters=meters,
        dcus=dcus,
        start=start,
        days=days,
        interval_s=interval * 60,
        seed=seed,
        tz=tz or get_settings().timezone,
        dts_per_feeder=dts_per_feeder,
    )
    fleet = build_sim_fleet(spec)
    out.mkdir(parents=True, exist_ok=True)
    write_fleet_json(fleet, out / "fleet.json")
    counts = write_bundle(fleet, out / "masterdata.json")
    if as_json:
        print_json(
            {"fleet": str(out / "fleet.json"), "masterdata": str(out / "masterdata.json"), "counts": counts}
        )
        return
    report = table(f"Simulated fleet in {out}", Key("entity"), Num("records"))
    for name, n in counts.items():
        report.add_row(name.lstrip("$").replace("_", " "), f"{n:,}")
    console.print(report)
    console.print(f"load the master data with: m2c masterdata load {out / 'masterdata.json'}")


@app.command("boundary")
def boundary(
    bundle: Path = typer.Argument(..., exists=True, dir_okay=False, help="the fleet's masterdata.json"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Record the fleet's DT and feeder boundary meters in the database (after masterdata load)."""
    from datetime import datetime

    from meter2cash.db import transaction
    from meter2cash.mdm.network import assign_boundary_meter

    try:
        items = [
            (b["serial"], b.get("transformer"), b.get("feeder"), datetime.fromisoformat(b["from"]))
            for b in json.loads(bundle.read_text(encoding="utf-8")).get("$boundary_meters") or []
        ]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidInput(
            f"{bundle} has no readable $boundary_meters: {exc}", code="hes_sim.bad_bundle"
        ) from None
    with platform() as p, transaction(p.sessions) as session:
        for serial, dt, feeder, at in items:
            assign_boundary_meter(session, serial=serial, dt=dt, feeder=feeder, at=at)
    if as_json:
        print_json({"boundary_meters": len(items)})
    else:
        console.print(f"{len(items)} boundary meter(s) recorded")


@app.command("run")
def run(
    fleet_path: Path = typer.Option(
        ..., "--fleet", exists=True, dir_okay=False, help="fleet.json of hes-sim init"
    ),
    transport: str = typer.Option("mqtt", "--transport", help="mqtt, nats or rest"),
    url: str = typer.Option("", "--url", help="broker or MDM URL (default: the transport's local one)"),
    hes: str = typer.Option("hes", "--hes", help="the head-end's name in topics, subjects and messages"),
    prefix: str = typer.Option("m2c", "--prefix", help="topic/subject prefix"),
    api_key: str = typer.Option("", "--api-key", envvar="M2C_HES_API_KEY", help="API key (rest)"),
    speed: float = typer.Option(0.0, "--speed", min=0, help="simulated seconds per real second; 0: at once"),
    miss: float = typer.Option(0.02, "--miss", min=0, max=1, help="share of DCU pushes lost"),
    fail: float = typer.Option(0.01, "--fail", min=0, max=1, help="share of commands that fail"),
    no_answer: float = typer.Option(
        0.005, "--no-answer", min=0, max=1, help="share of commands never answered"
    ),
    lost: float = typer.Option(0.005, "--lost", min=0, max=1, help="share of commands whose answer is lost"),
    push_every: int = typer.Option(60, "--push-every", min=15, help="minutes between DCU pushes"),
    events: float = typer.Option(1.0, "--events", min=0, help="factor on random events (0: none)"),
    outages: float = typer.Option(0.05, "--outages", min=0, help="outages per transformer and day"),
    dcu_outages: float = typer.Option(
        0.02, "--dcu-outages", min=0, max=1, help="chance a DCU is down, per day"
    ),
    moves: float = typer.Option(0.002, "--moves", min=0, max=1, help="chance a meter changes DCU, per day"),
    report_queued: bool = typer.Option(
        True, "--report-queued/--no-report-queued", help="report 'queued' as a command arrives"
    ),
    commands_only: bool = typer.Option(
        False, "--commands-only", help="push nothing on schedule: only answer the commands that come"
    ),
    seed: int = typer.Option(7, "--seed", help="seed of the run's randomness"),
    memory_days: int = typer.Option(
        35, "--memory-days", min=1, max=400, help="days of blocks each meter keeps for re-acquisition"
    ),
    until: str = typer.Option("", "--until", help="simulate up to this local date (exclusive), YYYY-MM-DD"),
    days: int = typer.Option(0, "--days", min=0, help="days to simulate (default: the fleet's)"),
    idle: float | None = typer.Option(
        None,
        "--idle",
        min=0,
        help="after the last push, answer commands until this many seconds without a message from the MDM",
    ),
    window: int = typer.Option(
        200, "--window", min=0, help="messages sent ahead of the MDM's replies at most (0: no limit)"
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Run the fleet: push profiles and events, answer commands, then print what was done (also
    when stopped by Ctrl-C or SIGTERM)."""
    from meter2cash.hes.fleet import build_sim_fleet, read_fleet_json
    from meter2cash.hes.links import RestLink, open_link
    from meter2cash.hes.sim import SimConfig, SimEngine
    from meter2cash.hes.sim_run import run as run_engine

    if transport not in TRANSPORTS:
        raise InvalidInput(
            f"--transport must be one of {', '.join(TRANSPORTS)}", code="hes_sim.bad_transport"
        )
    if push_every * 60 % 900:
        raise InvalidInput("--push-every must be a multiple of 15 minutes", code="hes_sim.bad_push")
    spec = read_fleet_json(fleet_path)
    fleet = build_sim_fleet(spec)
    if until:
        try:
            n_days = (date.fromisoformat(until) - spec.start_date).days
        except ValueError:
            raise InvalidInput(f"--until {until!r} is not a date", code="hes_sim.bad_until") from None
    else:
        n_days = days or spec.days
    if n_days < 1:
        raise InvalidInput(
            "nothing to simulate: --until is not after the fleet's start", code="hes_sim.bad_until"
        )
    cfg = SimConfig(
        hes=hes,
        miss=miss,
        fail=fail,
        no_answer=no_answer,
        lost_answer=lost,
        push_every_s=push_every * 60,
        event_rate=events,
        outage_rate=outages,
        dcu_outage=dcu_outages,
        move_rate=moves,
        seed=seed,
        memory_days=memory_days,
        report_queued=report_queued,
        pushes=not commands_only,
    )
    link = (
        RestLink(url or "http://127.0.0.1:8000", hes=hes, api_key=api_key, prefix=prefix)
        if transport == "rest"
        else open_link(transport, url or None, role="hes", hes=hes, prefix=prefix)
    )
    engine = SimEngine(fleet, cfg, link.send)
    blocks = n_days * spec.slots
    signal.signal(signal.SIGTERM, _interrupted)
    try:
        if as_json:
            run_engine(engine, link, blocks=blocks, speed=speed, idle=idle, window=window)
        else:
            with Progress(
                TextColumn("simulating"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("blocks"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            ) as bar:
                task = bar.add_task("blocks", total=blocks)
                run_engine(
                    engine,
                    link,
                    blocks=blocks,
                    speed=speed,
                    idle=idle,
                    window=window,
                    progress=lambda done, total: bar.update(task, completed=done),
                )
        stopped = False
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: stop here and say what was done
        stopped = True
    finally:
        link.close()
    stats = {**engine.stats.to_dict(), "stopped": stopped}
    if as_json:
        print_json(stats)
        return
    _print_stats(stats, hes)


def _interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _print_stats(stats: dict[str, Any], hes: str) -> None:
    from meter2cash.hes.sim import LOAD_VIOLATION_ID

    title = f"Head-end {hes}" + (" (stopped before the end)" if stats.get("stopped") else "")
    out = table(title, Key("what"), Num("count"))
    for kind, n in sorted(stats["messages_sent"].items()):
        out.add_row(f"messages sent: {kind}", f"{n:,}")
    out.add_row("blocks simulated", f"{stats['intervals']:,}")
    out.add_row("block-load rows pushed", f"{stats['block_rows']:,}")
    out.add_row("pushes", f"{stats['pushes']:,}")
    out.add_row("missed pushes", f"{stats['missed_pushes']:,}")
    for what in ("received", "executed", "failed", "unanswered", "answer_lost", "timed_out"):
        out.add_row(f"commands {what.replace('_', ' ')}", f"{stats['commands'].get(what, 0):,}")
    for result, n in sorted(stats["replies"].items()):
        out.add_row(f"replies {result}", f"{n:,}")
    out.add_row("messages given up waiting for a reply", f"{stats.get('unanswered', 0):,}")
    console.print(out)
    ev = table("Events by type", Num("ID"), "event", Num("count"))
    for event_id, n in stats["events"].items():
        known = BY_ID.get(int(event_id))
        name = known.name if known else "(not in the catalogue)"
        if int(event_id) == LOAD_VIOLATION_ID and known is None:
            name = f"{LOAD_VIOLATION.name} (no IS 15959 ID in the catalogue)"
        ev.add_row(event_id, name, f"{n:,}")
    console.print(ev)
