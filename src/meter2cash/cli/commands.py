"""``m2c commands``: issue commands to meters (one or a group), follow them, cancel, report."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import typer
from rich.markup import escape

from meter2cash.cli.common import console, key_values, platform
from meter2cash.cli.render import Key, Num, print_json, table
from meter2cash.core.errors import InvalidInput

app = typer.Typer(
    help="Commands to meters through the head-end: connect, disconnect, reads, re-acquisition, "
    "time sync, configuration, credit, payment mode, firmware.",
    no_args_is_help=True,
)
JSON_OPTION = typer.Option(False, "--json", help="print the result as JSON")
ACTOR = typer.Option("cli", "--actor", help="who asks (audit)")


def _params(pairs: list[str], raw: str) -> dict[str, Any]:
    return key_values(pairs, raw, option="--param", code="command.bad_params")


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S}" if value else ""


@app.command("issue")
def issue_cmd(
    kind: str = typer.Argument(
        ...,
        help="connect, disconnect, read, reacquire, time_sync, configure, "
        "credit_update, payment_mode, firmware",
    ),
    meters: list[str] = typer.Argument(..., help="meter serials (more than one: a group command)"),
    param: list[str] = typer.Option([], "--param", help="a parameter name=value (repeatable)"),
    params: str = typer.Option("", "--params", help="parameters as a JSON object"),
    reason: str = typer.Option("manual", help="why (kept in the audit trail)"),
    key: str = typer.Option("", "--key", help="idempotency key: the same key again changes nothing"),
    actor: str = ACTOR,
    as_json: bool = JSON_OPTION,
) -> None:
    """Issue a command to one meter, or to several as one group."""
    from meter2cash.integration.commands import issue, show

    with platform() as p, p.sessions() as s:
        cmd = issue(s, kind=kind, serials=meters, actor=actor, reason=reason,
                    params=_params(param, params), idempotency_key=key or None)  # fmt: skip
        s.commit()
        out = show(s, cmd.id).to_dict()
    if as_json:
        print_json(out)
        return
    what = f"group of {len(meters)} meters" if out["group"] else f"meter {escape(meters[0])}"
    console.print(
        f"command {out['id']}: {out['kind']} to {what}, {out['status']} (deadline {out['deadline']})"
    )


@app.command("list")
def list_cmd(
    status: str = typer.Option("", help="only commands in this status"),
    kind: str = typer.Option("", help="only this kind"),
    meter: str = typer.Option("", help="only this meter's"),
    group: int | None = typer.Option(None, help="only the children of this group"),
    limit: int = typer.Option(50, min=1, max=1000),
    as_json: bool = JSON_OPTION,
) -> None:
    """Commands, newest first."""
    from meter2cash.integration.commands import find

    with platform() as p, p.sessions() as s:
        rows = [v.to_dict() for v in find(s, status=status or None, kind=kind or None, serial=meter or None,
                                          parent_id=group, limit=limit)]  # fmt: skip
    if as_json:
        print_json(rows)
        return
    out = table(
        "Commands",
        Num("Id"),
        "Kind",
        Key("Meter"),
        "Status",
        Num("Tries"),
        Key("Requested"),
        "Relay",
        "Reason",
    )
    for r in rows:
        out.add_row(
            str(r["id"]),
            r["kind"],
            "group" if r["group"] else (r["meter"] or "—"),
            r["status"],
            str(r["attempts"]),
            r["requested_at"][:19],
            r["relay_state"] or "",
            r["reason"],
        )
    console.print(out)


@app.command("show")
def show_cmd(command_id: int, as_json: bool = JSON_OPTION) -> None:
    """One command with its audit trail (a group: its outcome and children by status)."""
    from meter2cash.integration.commands import show

    with platform() as p, p.sessions() as s:
        out = show(s, command_id).to_dict()
    if as_json:
        print_json(out)
        return
    console.print(
        f"command {out['id']}: {out['kind']} to {escape(out['meter'] or 'a group')} — {out['status']}"
        + (f", relay read back {out['relay_state']}" if out["relay_state"] else ""),
        highlight=False,
    )
    if out["progress"]:
        by = ", ".join(f"{k} {v}" for k, v in out["progress"]["by_status"].items())
        console.print(f"group outcome {out['progress']['outcome']}: {by}", highlight=False)
    trail = table("Audit trail", Key("At"), "From", "To", "By", "Detail")
    for st in out["steps"]:
        trail.add_row(st["at"][:19], st["from"] or "", st["to"], st["by"], escape(st["detail"]))
    console.print(trail)


@app.command("cancel")
def cancel_cmd(
    command_id: int,
    reason: str = typer.Option(..., help="why (kept in the audit trail)"),
    actor: str = ACTOR,
    as_json: bool = JSON_OPTION,
) -> None:
    """Withdraw a command that was not sent yet."""
    from meter2cash.integration.commands import cancel

    with platform() as p, p.sessions() as s:
        cmd = cancel(s, command_id, actor=actor, reason=reason)
        s.commit()
        out = {"id": cmd.id, "status": cmd.status}
    if as_json:
        print_json(out)
    else:
        console.print(f"command {out['id']} is {out['status']}")


@app.command("report")
def report_cmd(
    command_id: int,
    status: str = typer.Argument(
        ..., help="queued, sent, acknowledged, executed, failed, timed_out, cancelled"
    ),
    relay: str | None = typer.Option(None, help="the relay state read back: connected or disconnected"),
    detail: str = typer.Option("", help="what the head-end said"),
    by: str = typer.Option("hes", help="who reports"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Record a head-end's report on a command (for a head-end without a link)."""
    from meter2cash.integration.commands import report

    with platform() as p, p.sessions() as s:
        cmd = report(s, command_id=command_id, status=status, detail=detail,
                     result={"relay": relay} if relay else None, by=by)  # fmt: skip
        s.commit()
        out = {"id": cmd.id, "kind": cmd.kind, "status": cmd.status, "relay_state": cmd.relay_state}
    if as_json:
        print_json(out)
    else:
        console.print(f"command {out['id']} ({out['kind']}) is {out['status']}")


@app.command("expire")
def expire_cmd(
    at: datetime | None = typer.Option(None, help="the time to judge by (ISO, default now)"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Commands past their deadline: never sent → timed out; sent without an answer → in doubt
    (a relay is then read back). Run it every few minutes (or let ``m2c hes serve`` do it)."""
    from meter2cash.cis.prepaid.wallet import follow_supply
    from meter2cash.core.timeutil import utcnow
    from meter2cash.mdm.commands.service import expire_commands

    with platform() as p, p.sessions() as s:
        cmds = expire_commands(s, at.astimezone() if at else utcnow())
        follow_supply(s, cmds)
        s.commit()
        out = [{"id": c.id, "kind": c.kind, "status": c.status} for c in cmds]
    if as_json:
        print_json(out)
        return
    if not out:
        console.print("no command is past its deadline")
        return
    t = table("Past their deadline", Num("Id"), "Kind", "Status")
    for r in out:
        t.add_row(str(r["id"]), str(r["kind"]), str(r["status"]))
    console.print(t)


@app.command("firmware")
def firmware_cmd(
    image: str = typer.Argument(..., help="the image's name as the head-end knows it"),
    version: str = typer.Option(..., help="the firmware version the image installs"),
    sha256: str = typer.Option(..., help="the image's SHA-256 (hex)"),
    meters: list[str] = typer.Option(
        [], "--meter", help="meters in rollout order (default: every installed meter)"
    ),
    stages: str = typer.Option("0.01,0.1,1", help="cumulative shares of the meters per stage"),
    min_success: float = typer.Option(0.95, help="share a stage must reach before the next starts"),
    key: str = typer.Option("", "--key", help="idempotency key"),
    actor: str = ACTOR,
    as_json: bool = JSON_OPTION,
) -> None:
    """Start a staged firmware rollout: the pilot stage now, the next ones with ``advance``."""
    from meter2cash.integration.commands import rollout, show

    try:
        shares = [float(x) for x in stages.split(",") if x.strip()]
    except ValueError:
        raise InvalidInput(
            f"--stages {stages!r}: numbers separated by commas", code="command.bad_rollout"
        ) from None
    with platform() as p, p.sessions() as s:
        parent = rollout(s, serials=meters, image=image, version=version, sha256=sha256, stages=shares,
                         min_success=min_success, actor=actor, idempotency_key=key or None)  # fmt: skip
        s.commit()
        out = show(s, parent.id).to_dict()
    if as_json:
        print_json(out)
        return
    plan = out["result"]["rollout"]
    console.print(
        f"rollout {out['id']}: {len(plan['meters'])} meters in stages of {plan['sizes']}; "
        f"stage 1 issued ({plan['sizes'][0]} meters)",
        highlight=False,
    )


@app.command("advance")
def advance_cmd(command_id: int, actor: str = ACTOR, as_json: bool = JSON_OPTION) -> None:
    """Move a firmware rollout to its next stage once the current one succeeded well enough."""
    from meter2cash.integration.commands import advance

    with platform() as p, p.sessions() as s:
        plan = advance(s, command_id, actor=actor)
        s.commit()
    out = {k: v for k, v in plan.items() if k != "meters"}
    if as_json:
        print_json(out)
    elif out["halted"]:
        console.print(f"rollout {command_id} halted: {out['halted']}", highlight=False)
    else:
        console.print(
            f"rollout {command_id} is at stage {out['stage']} of {len(out['sizes'])}", highlight=False
        )
