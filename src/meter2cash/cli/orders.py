"""``m2c orders``: service orders run by their workflow files: the types, open one, take an
action, show one, list a queue, carry out what the actions set off."""

from __future__ import annotations

from datetime import datetime

import typer

from meter2cash.cis.orders import service as orders
from meter2cash.cli.common import console, key_values, platform
from meter2cash.cli.render import Key, Num, print_json, table
from meter2cash.core.timeutil import utcnow
from meter2cash.db import transaction
from meter2cash.integration import orders as ops
from meter2cash.integration.order_triggers import context_of, run_triggers

app = typer.Typer(help="Service orders: open, act, show, list, run their triggers.", no_args_is_help=True)
JSON_OPTION = typer.Option(False, "--json", help="print the result as JSON")
BY = typer.Option("cli", "--by", help="who acts (audit)")
ROLE = typer.Option("operator", "--role", help="the role acted in (the workflow checks it)")
REASON = typer.Option("", "--reason", help="why (audit)")
DATA = typer.Option([], "--data", help="a field name=value (repeatable)")
DATA_JSON = typer.Option("", "--datas", help="fields as a JSON object")


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value else ""


def _show(view: orders.OrderView, as_json: bool) -> None:
    if as_json:
        print_json(view.to_dict())
        return
    out = table(f"{view.number}: {view.type}", Key("field"), "value")
    for label, value in (
        ("state", f"{view.state} ({view.state_label})"),
        ("team", view.team),
        ("area", view.area),
        ("opened (UTC)", _when(view.created_at)),
        ("due (UTC)", _when(view.due_at)),
        ("state due (UTC)", _when(view.state_due_at)),
        ("closed (UTC)", _when(view.closed_at)),
        ("next actions", ", ".join(view.next_actions) or "(closed)"),
        *((f"data: {k}", str(v)) for k, v in sorted(view.data.items())),
    ):
        out.add_row(label, value)
    console.print(out)
    steps = table("Steps", "at (UTC)", Key("action"), "from", "to", "by", "role", "reason")
    for st in view.steps:
        when = st["at"][:16].replace("T", " ")
        steps.add_row(when, st["action"], st["from"] or "", st["to"], st["by"], st["role"], st["reason"])
    console.print(steps)
    if view.escalations:
        esc = table("Escalations", "at (UTC)", "state", Num("level"), "to")
        for e in view.escalations:
            esc.add_row(e["at"][:16].replace("T", " "), e["state"], str(e["level"]), e["to"])
        console.print(esc)
    if view.triggers:
        trig = table("Set off", Key("kind"), "what", "status", "result")
        for t in view.triggers:
            what = ", ".join(f"{k}={v}" for k, v in t["spec"].items())
            trig.add_row(
                t["kind"],
                what,
                t["status"],
                t["error"] or ", ".join(f"{k}={v}" for k, v in t["result"].items()),
            )
        console.print(trig)


@app.command("types")
def types_cmd(as_json: bool = JSON_OPTION) -> None:
    """The order types, their workflow versions and states."""
    flows = orders.workflows()
    if as_json:
        print_json(
            {
                t: {"version": w.version, "title": w.title, "prefix": w.prefix, "initial": w.initial,
                    "states": list(w.states), "actions": list(w.actions)}
                for t, w in sorted(flows.items())
            }
        )  # fmt: skip
        return
    out = table("Order types", Key("type"), "title", "version", "prefix", Num("states"), "actions")
    for t, w in sorted(flows.items()):
        out.add_row(t, w.title, w.version, w.prefix, str(len(w.states)), ", ".join(w.actions))
    console.print(out)


@app.command("open")
def open_cmd(
    order_type: str = typer.Argument(..., metavar="TYPE", help="the order type (m2c orders types)"),
    account: str = typer.Option("", "--account", help="account number"),
    agreement: str = typer.Option("", "--agreement", help="service agreement number"),
    service_point: str = typer.Option("", "--service-point", help="service point code"),
    meter: str = typer.Option("", "--meter", help="meter serial"),
    area: str = typer.Option("", "--area", help="metro, urban or rural (the deadline depends on it)"),
    data: list[str] = DATA,
    datas: str = DATA_JSON,
    key: str = typer.Option("", "--key", help="idempotency key: the same key again opens nothing new"),
    by: str = BY,
    role: str = ROLE,
    reason: str = REASON,
    as_json: bool = JSON_OPTION,
) -> None:
    """Open a service order in its workflow's first state."""
    fields = key_values(data, datas, option="--data", code="order.bad_data")
    with platform() as p, transaction(p.sessions) as s:
        view = ops.open_order(
            s, type=order_type, by=by, role=role, reason=reason, area=area, account=account or None,
            agreement=agreement or None, service_point=service_point or None, meter=meter or None,
            data=fields, idempotency_key=key or None, at=p.clock(),
        )  # fmt: skip
    _show(view, as_json)


@app.command("act")
def act_cmd(
    number: str = typer.Argument(..., help="the order number"),
    action: str = typer.Argument(..., help="the action (m2c orders show lists the next ones)"),
    data: list[str] = DATA,
    datas: str = DATA_JSON,
    by: str = BY,
    role: str = ROLE,
    reason: str = REASON,
    run: bool = typer.Option(True, "--run/--no-run", help="carry out what the action sets off at once"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Take an action on an order (the workflow checks the state, the role and the data)."""
    fields = key_values(data, datas, option="--data", code="order.bad_data")
    with platform() as p, transaction(p.sessions) as s:
        view = ops.act(
            s, number, action=action, by=by, role=role, reason=reason, data=fields, run=run, at=p.clock(),
            context=context_of(p),
        )  # fmt: skip
    _show(view, as_json)


@app.command("show")
def show_cmd(number: str = typer.Argument(..., help="the order number"), as_json: bool = JSON_OPTION) -> None:
    """An order: its state, deadlines, data, next actions, steps and what they set off."""
    with platform() as p, p.sessions() as s:
        view = orders.view_order(s, number)
    _show(view, as_json)


@app.command("list")
def list_cmd(
    order_type: str = typer.Option("", "--type", help="only this order type"),
    state: str = typer.Option("", "--state", help="only orders in this state"),
    team: str = typer.Option("", "--team", help="only this team's queue"),
    open_only: bool = typer.Option(False, "--open", help="only open orders"),
    overdue: bool = typer.Option(False, "--overdue", help="only orders past their state's SLA now"),
    limit: int = typer.Option(100, "--limit", min=1, max=10000),
    as_json: bool = JSON_OPTION,
) -> None:
    """Orders, oldest first."""
    with platform() as p, p.sessions() as s:
        rows = orders.list_orders(
            s, type=order_type or None, state=state or None, team=team or None, open_only=open_only,
            overdue_at=utcnow() if overdue else None, limit=limit,
        )  # fmt: skip
    if as_json:
        print_json([{"number": o.number, "type": o.type, "state": o.state, "team": o.team,
                     "state_due_at": o.state_due_at.isoformat() if o.state_due_at else None,
                     "due_at": o.due_at.isoformat() if o.due_at else None} for o in rows])  # fmt: skip
        return
    out = table("Service orders", Key("number"), "type", "state", "team", "state due (UTC)", "due (UTC)")
    for o in rows:
        out.add_row(o.number, o.type, o.state, o.team, _when(o.state_due_at), _when(o.due_at))
    console.print(out)


@app.command("triggers")
def triggers_cmd(as_json: bool = JSON_OPTION) -> None:
    """Carry out what the actions set off and is still pending (commands, work orders, notices)."""
    with platform() as p, transaction(p.sessions) as s:
        done = run_triggers(s, p.clock(), context=context_of(p))
    if as_json:
        print_json(done.to_dict())
        return
    console.print(f"{done.done} done, {done.failed} failed, {done.waiting} waiting")
