"""``m2c audit``, ``m2c reads`` and ``m2c network``: the energy audit of transformers and feeders,
missed intervals and read success, and the network hierarchy with its history."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

import typer
from rich.markup import escape

from meter2cash.cli.common import console, day, platform
from meter2cash.cli.render import Key, Num, print_json, table
from meter2cash.core.errors import InvalidInput

audit_app = typer.Typer(
    help="Energy audit: energy in against consumers, per transformer or feeder.", no_args_is_help=True
)
reads_app = typer.Typer(
    help="Read success and missed intervals, and their re-acquisition.", no_args_is_help=True
)
network_app = typer.Typer(
    help="The network hierarchy (meter, DCU, transformer, feeder) and its history.", no_args_is_help=True
)
JSON_OPTION = typer.Option(False, "--json", help="print the result as JSON")


def when(value: str, field: str, tz: str, *, end_of_day: bool = False) -> datetime:
    """A time given on the command line: ISO 8601 with an offset, a local time without one, or a
    date (the start of that local day; with ``end_of_day``, its end). ``time.invalid`` otherwise."""
    try:
        if len(value) == 10:
            d = date.fromisoformat(value)
            d = d + timedelta(days=1) if end_of_day else d
            return datetime(d.year, d.month, d.day, tzinfo=ZoneInfo(tz))
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"{field} {value!r} is not a date or an ISO 8601 time", code="time.invalid", field=field
        ) from None
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=ZoneInfo(tz))


def pct(share: float | None) -> str:
    """A fraction as a percentage with one decimal (``—`` when undefined)."""
    return "—" if share is None else f"{100 * share:.1f} %"


def kwh(value: float | None) -> str:
    return "—" if value is None else f"{value:,.3f}"


@audit_app.command("energy")
def energy(
    from_: str = typer.Option(..., "--from", help="first local day, YYYY-MM-DD"),
    to: str = typer.Option(..., "--to", help="last local day (inclusive), YYYY-MM-DD"),
    by: str = typer.Option("day", "--by", help="day or month"),
    level: str = typer.Option("dt", "--level", help="dt (distribution transformers) or feeder"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Energy in (boundary meter) against the consumers below each node, the loss, and how much
    of it is estimated or missing (local days in the utility's time zone)."""
    from meter2cash.mdm.energy_audit import energy_audit

    first, last = day(from_, "--from"), day(to, "--to")
    with platform() as p, p.sessions() as s:
        result = energy_audit(s, first, last, tz=p.settings.timezone, by=by, level=level)
    if as_json:
        print_json(result.to_dict())
        return
    grid = table(
        f"Energy audit by {'transformer' if level == 'dt' else 'feeder'}, {first} to {last}",
        Key("Node"),
        Key("Period"),
        Num("In kWh"),
        Num("Consumers kWh"),
        Num("Loss kWh"),
        Num("Loss"),
        Num("Estimated"),
        Num("Complete"),
        caption=f"local days in {result.timezone}; — : no boundary meter or nothing to divide by",
        optional=("Estimated", "Period"),
    )
    for r in result.rows:
        grid.add_row(
            r.node, r.period, kwh(r.energy_in), kwh(r.consumers), kwh(r.loss), pct(r.loss_share),
            pct(r.estimated_share), pct(r.completeness),
        )  # fmt: skip
    console.print(grid)
    if not result.rows:
        console.print("no transformer or feeder with a boundary meter or consumers in the window")


@reads_app.command("success")
def success(
    on: str = typer.Option(..., "--day", help="local day, YYYY-MM-DD"),
    target: str = typer.Option("98.5", "--target", help="target share of meters with complete data [%]"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Meters with complete interval data for a local day, per DCU and per feeder, against the
    target (AMISP: 98.5 %)."""
    from meter2cash.mdm.acquisition import read_success

    try:
        goal = Decimal(target)
    except InvalidOperation:
        raise InvalidInput(f"--target {target!r} is not a number", code="acquisition.bad_target") from None
    with platform() as p, p.sessions() as s:
        report = read_success(s, day(on, "--day"), tz=p.settings.timezone, target=goal)
    if as_json:
        print_json(report.to_dict())
        return
    grid = table(
        f"Read success on {report.day} (target {report.target} %)",
        Key("Level"),
        Key("Node"),
        Num("Expected"),
        Num("Complete"),
        Num("Share"),
        "Target",
    )
    for rows in (report.dcus, report.feeders, [report.total]):
        for i, r in enumerate(rows):
            grid.add_row(
                r.level, r.node, str(r.expected), str(r.complete),
                "—" if r.share is None else f"{r.share:.2f} %", "met" if r.meets_target else "missed",
                end_section=i == len(rows) - 1,
            )  # fmt: skip
    console.print(grid)


@reads_app.command("gaps")
def gaps(
    from_: str = typer.Option(..., "--from", help="start: a local day YYYY-MM-DD or an ISO 8601 time"),
    to: str = typer.Option(..., "--to", help="end: a local day (inclusive) or an ISO 8601 time (exclusive)"),
    request: bool = typer.Option(False, "--request", help="issue a reacquire command for every gap"),
    by: str = typer.Option("cli", "--by", help="who requests the re-acquisition"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Missing intervals of every expected channel, one line per contiguous window; with
    ``--request``, ask the head-end to read each window again (once: repeating is harmless)."""
    from meter2cash.core.timeutil import utcnow
    from meter2cash.mdm.acquisition import find_gaps, request_reacquisition

    with platform() as p, p.sessions() as s:
        tz = p.settings.timezone
        found = find_gaps(s, when(from_, "--from", tz), when(to, "--to", tz, end_of_day=True))
        rows: list[dict[str, Any]] = [g.to_dict() for g in found]
        if request:
            rows = [r.to_dict() for r in request_reacquisition(s, found, requested_by=by, at=utcnow())]
            s.commit()
    if as_json:
        print_json({"gaps": rows, "requested": request})
        return
    grid = table(None, Key("Meter"), Key("Channel"), Key("From"), Key("To"), Num("Intervals"),
                 *(["Command"] if request else []))  # fmt: skip
    for r in rows:
        extra = [f"{r['command_id']} {r['status']}"] if request else []
        grid.add_row(r["meter"], r["channel"], r["from"], r["to"], str(r["intervals"]), *extra)
    console.print(grid)
    console.print(f"{len(rows)} gap(s)" + (", re-acquisition requested" if request and rows else ""))


@network_app.command("show")
def show(
    code: str = typer.Argument(..., help="a feeder, transformer, DCU, meter serial or service point code"),
    as_json: bool = JSON_OPTION,
) -> None:
    """What ``code`` is, what it hangs below, what hangs below it, and the history of its links."""
    from meter2cash.mdm.network import describe_node

    with platform() as p, p.sessions() as s:
        node = describe_node(s, code)
    if as_json:
        print_json(node)
        return
    parent = node["parent"]
    console.print(
        f"{escape(code)}: {node['kind']}"
        + (f", below {parent['kind']} {escape(parent['code'])}" if parent else ""),
        highlight=False,
    )
    if node["children"]:
        console.print(f"below it: {escape(', '.join(node['children']))}", highlight=False)
    if node["history"]:
        grid = table("History", Key("Parent"), Key("From"), Key("To"), "Source")
        for h in node["history"]:
            grid.add_row(h["parent"] or "", h["from"] or "(first known)", h["to"] or "(current)", h["source"])
        console.print(grid)
    for b in node.get("boundary_meters", []):
        console.print(f"boundary meter {escape(b['meter'])} from {b['from']} to {b['to'] or '(current)'}")


@network_app.command("change")
def change(
    link: str = typer.Option(..., "--link", help="meter_dcu, service_point_dt or dt_feeder"),
    child: str = typer.Option(..., "--child", help="meter serial, service point code or transformer code"),
    parent: str = typer.Option(..., "--parent", help="DCU, transformer or feeder code"),
    at: str = typer.Option(..., "--at", help="when: ISO 8601 time, a local time, or a local day"),
    by: str = typer.Option("cli", "--by", help="who records the change (audit log)"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Record a change of the hierarchy from a time on (audited); a change already known does
    nothing."""
    from meter2cash.mdm.network import apply_network_change

    with platform() as p, p.sessions() as s:
        effective = when(at, "--at", p.settings.timezone)
        changed = apply_network_change(
            s, link=link, child=child, parent=parent, effective_at=effective, source="cli", actor=by
        )
        s.commit()
    if as_json:
        print_json(
            {"link": link, "child": child, "parent": parent, "at": effective.isoformat(), "changed": changed}
        )
        return
    console.print(
        f"[green]recorded[/green] {escape(child)} below {escape(parent)} from {effective.isoformat()}"
        if changed
        else f"already known: {escape(child)} is below {escape(parent)} at {effective.isoformat()}",
        highlight=False,
    )
