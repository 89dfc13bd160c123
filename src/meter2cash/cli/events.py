"""``m2c events``, ``m2c outages``, ``m2c work-orders``: meter events, their routing, outages and
the field work orders."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import typer

from meter2cash.cli.common import console, platform
from meter2cash.cli.render import Key, Num, print_json, table
from meter2cash.core.errors import InvalidInput
from meter2cash.core.timeutil import check_date
from meter2cash.db import transaction
from meter2cash.integration.event_routing import route_events
from meter2cash.integration.load_violations import detect_load_violations
from meter2cash.integration.work_orders import WorkOrderView, views, work_order_page
from meter2cash.mdm.events.queries import list_outages, meter_events
from meter2cash.mdm.events.routing_config import load_rules
from meter2cash.workforce import service as workforce

events_app = typer.Typer(
    help="Meter events: list a meter's events, route new events by rule.", no_args_is_help=True
)
work_orders_app = typer.Typer(help="Field work orders: list, assign, complete.", no_args_is_help=True)
JSON_OPTION = typer.Option(False, "--json", help="print the result as JSON")


def register(app: typer.Typer) -> None:
    """Add the commands of this module to the root command."""
    app.add_typer(events_app, name="events")
    app.command("outages")(outages)
    app.add_typer(work_orders_app, name="work-orders")


def _time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{option} {value!r} is not an ISO 8601 time", code="events.bad_time") from None
    if ts.tzinfo is None:
        raise InvalidInput(
            f"{option} {value} has no time zone; give an offset such as +05:30 or Z",
            code="events.naive_timestamp",
        )
    check_date(ts.date(), option, code="events.invalid_window")
    return ts


def _stamp(ts: datetime | None) -> str:
    return "" if ts is None else f"{ts:%Y-%m-%d %H:%M:%S}"


@events_app.command("list")
def list_events(
    serial: str = typer.Argument(..., help="meter serial"),
    from_: str | None = typer.Option(None, "--from", help="from (ISO 8601 with offset)"),
    to: str | None = typer.Option(None, "--to", help="until, exclusive (ISO 8601 with offset)"),
    category: str | None = typer.Option(
        None, "--category", help="voltage, current, power, tamper, relay, load"
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """A meter's events with their CIM type, category, priority and episode."""
    start, end = _time(from_, "--from"), _time(to, "--to")
    with platform() as p, p.sessions() as s:
        rows = meter_events(s, serial, start=start, end=end, category=category)
    if as_json:
        print_json({"meter": serial, "events": [_event_dict(r) for r in rows]})
        return
    out = table(f"Events of {serial}", "occurred (UTC)", Key("ID"), "name", Key("CIM type"), "category",
                "priority", Num("episode"), "closed (UTC)", optional=("closed (UTC)",))  # fmt: skip
    for r in rows:
        out.add_row(
            _stamp(r.occurred_at), r.code, r.name or r.description or "(not catalogued)", r.cim_type or "",
            r.category, r.priority or "", "" if r.episode_id is None else str(r.episode_id),
            _stamp(r.episode_closed_at),
        )  # fmt: skip
    console.print(out)
    console.print(f"{len(rows):,} events")


def _event_dict(r: Any) -> dict[str, Any]:
    return {k: getattr(r, k) for k in r.__slots__}


@events_app.command("route")
def route(
    rules: Path | None = typer.Option(None, "--rules", help="routing rules TOML file (default: packaged)"),
    limit: int = typer.Option(50_000, min=1, max=1_000_000, help="events per run at most"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Route the meter events stored since the last run: outages, tampers, load violations."""
    chosen = load_rules(rules)
    with platform() as p, transaction(p.sessions) as s:
        result = route_events(s, now=p.clock(), rules=chosen, limit=limit)
    data = result.to_dict()
    if as_json:
        print_json(data)
        return
    console.print(
        f"routed {result.events:,} events (cursor {result.cursor_before} → {result.cursor}) "
        f"with rules {result.rules_version}"
    )
    out = table("What became of the events", "disposition", Num("events"))
    for name, n in data["dispositions"].items():
        if n:
            out.add_row(name, f"{n:,}")
    console.print(out)
    done = table("What routing did", "action", Num("count"))
    counted = ("episodes_opened", "episodes_closed", "outages_started", "outages_updated", "outages_restored",
               "tamper_flags", "disconnects", "load_violations", "messages")  # fmt: skip
    for key in counted:
        done.add_row(key.replace("_", " "), f"{data[key]:,}")
    done.add_row("work orders", f"{len(result.work_orders):,}")
    console.print(done)
    if result.work_orders:
        console.print("work orders: " + ", ".join(result.work_orders))


@events_app.command("load-violations")
def load_violations(
    day: datetime = typer.Option(..., "--day", formats=["%Y-%m-%d"], help="UTC day"),
    rules: Path | None = typer.Option(None, "--rules", help="routing rules TOML file (default: packaged)"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Find the load violations of a day from interval energy and MD registers."""
    chosen = load_rules(rules)
    with platform() as p, transaction(p.sessions) as s:
        result = detect_load_violations(s, day.date(), rules=chosen, now=p.clock())
    if as_json:
        print_json(result.to_dict())
        return
    console.print(
        f"{day:%Y-%m-%d}: {result.channel_days:,} channel-days and {result.registers:,} MD reads checked, "
        f"{result.recorded:,} new load violations ({result.already_known:,} known), {result.sms:,} SMS queued"
    )


def outages(
    open_: bool = typer.Option(False, "--open", help="only outages not restored yet"),
    limit: int = typer.Option(100, min=1, max=10_000, help="outages at most"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Outages coalesced from power failures, the latest first."""
    with platform() as p, p.sessions() as s:
        rows = list_outages(s, open_only=True if open_ else None, limit=limit)
    if as_json:
        print_json({"outages": [_event_dict(r) for r in rows]})
        return
    out = table("Outages", Num("id"), "level", Key("where"), "started (UTC)", "restored (UTC)", Num("meters"),
                Num("restored"))  # fmt: skip
    for o in rows:
        where = o.dt or o.feeder or o.meter or ""
        out.add_row(str(o.id), o.level, where, _stamp(o.started_at), _stamp(o.restored_at) or "open",
                    f"{o.meters_affected:,}", f"{o.meters_restored:,}")  # fmt: skip
    console.print(out)


def _show_orders(items: list[WorkOrderView], title: str) -> None:
    out = table(title, Key("number"), "kind", "status", "priority", Key("meter"), "assigned to", "due (UTC)",
                "outcome", optional=("outcome", "due (UTC)"))  # fmt: skip
    for w in items:
        out.add_row(w.number, w.kind, w.status, w.priority, w.meter or "", w.assigned_to, _stamp(w.due_at),
                    w.outcome)  # fmt: skip
    console.print(out)


@work_orders_app.command("list")
def list_orders(
    status: str | None = typer.Option(
        None, "--status", help="open, assigned, in_progress, completed, cancelled"
    ),
    limit: int = typer.Option(100, min=1, max=10_000, help="work orders at most"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Work orders, the newest first."""
    with platform() as p, p.sessions() as s:
        items, total = work_order_page(s, status=status, limit=limit)
    if as_json:
        print_json({"work_orders": [_event_dict(w) for w in items], "total": total})
        return
    _show_orders(items, f"Work orders ({total:,})")


@work_orders_app.command("assign")
def assign(
    number: str = typer.Argument(..., help="work order number"),
    assignee: str = typer.Argument(..., help="crew or technician"),
    actor: str = typer.Option("cli", help="who assigns (audit)"),
) -> None:
    """Assign a work order to a crew or technician."""
    with platform() as p, transaction(p.sessions) as s:
        wo = views(s, [workforce.assign(s, number, assignee, actor=actor, at=p.clock())])[0]
    _show_orders([wo], f"Work order {number}")


@work_orders_app.command("complete")
def complete(
    number: str = typer.Argument(..., help="work order number"),
    outcome: str = typer.Argument(..., help="what the crew found, e.g. tamper_confirmed"),
    notes: str = typer.Option("", help="the crew's notes"),
    actor: str = typer.Option("cli", help="who reports it (audit)"),
) -> None:
    """Record a work order as done, with its outcome."""
    with platform() as p, transaction(p.sessions) as s:
        wo = views(s, [workforce.complete(s, number, outcome, actor=actor, at=p.clock(), notes=notes)])[0]
    _show_orders([wo], f"Work order {number}")
