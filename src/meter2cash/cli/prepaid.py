"""``m2c prepaid`` (the daily charge run, connection commands and their time-outs) and
``m2c wallet`` (one prepaid wallet)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from meter2cash.cli.common import console, err_console, platform
from meter2cash.cli.render import Key, Num, money, print_json, quantity, summary_table, table

prepaid_app = typer.Typer(
    help="Prepaid wallets: the daily charge run, connection commands and their time-outs.",
    no_args_is_help=True,
)
wallet_app = typer.Typer(
    help="Prepaid wallets: balance, supply state, charges and recharges.", no_args_is_help=True
)
JSON_OPTION = typer.Option(False, "--json", help="print the result as JSON")


def _aware(at: datetime | None) -> datetime | None:
    """A time typed without a zone is local to this machine."""
    return None if at is None else at.astimezone()


@prepaid_app.command("run-daily")
def run_daily_cmd(
    day: datetime = typer.Option(..., "--date", formats=["%Y-%m-%d"], help="local day to charge"),
    at: datetime | None = typer.Option(None, help="when balances are checked (ISO, default end of the day)"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Charge every prepaid wallet for a day; fire alerts; request disconnects and reconnects.

    Exit 1 when some wallets could not be charged (counted by error code)."""
    from meter2cash.cis.prepaid.daily_charge import run_daily

    with platform() as p, p.sessions() as s:
        columns = (TextColumn("charging"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err_console, disable=as_json or not err_console.is_terminal) as bar:
            task = bar.add_task("charge", total=None)
            result = run_daily(
                s,
                day.date(),
                tz=p.settings.timezone,
                currency=p.settings.currency,
                at=_aware(at),
                on_progress=lambda d, t: bar.update(task, completed=d, total=t),
                usage=p.usage,
            )
        s.commit()
    out = result.to_dict()
    if as_json:
        print_json(out | {"amount": money(result.amount, p.settings.currency, grouped=False)})
    else:
        console.print(summary_table(f"Prepaid daily charge {out.pop('day')}", out, p.settings.currency))
    if result.errors:
        raise typer.Exit(1)


@prepaid_app.command("command")
def command_cmd(
    command_id: int,
    status: str = typer.Argument(
        ..., help="queued, sent, acknowledged, executed, failed, cancelled, in_doubt, timed_out"
    ),
    relay: str | None = typer.Option(
        None, help="the relay state the meter read back: connected or disconnected"
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Report progress of a disconnect/connect command (from the head-end); the supply follows
    only a relay state read back (``--relay``, or the read-back command the store issues)."""
    from meter2cash.cis.prepaid.wallet import report_command

    with platform() as p, p.sessions() as s:
        cmd = report_command(s, command_id, status, result={"relay": relay} if relay else None, by="operator")
        s.commit()
        out = {"id": cmd.id, "action": cmd.kind, "status": cmd.status, "relay": cmd.relay_state}
    if as_json:
        print_json(out)
    else:
        console.print(f"command {out['id']} ({out['action']}) is {out['status']}")


@prepaid_app.command("reconnects")
def reconnects_cmd(as_json: bool = JSON_OPTION) -> None:
    """Reconnection times against the 2-hour target."""
    from meter2cash.cis.prepaid.wallet import reconnect_report

    with platform() as p, p.sessions() as s:
        rep = reconnect_report(s)
    if as_json:
        print_json(rep)
        return
    out = table("Reconnections", "", Num(""))
    out.add_row("executed", f"{rep['executed']:,}")
    for key, label in (("median_min", "median minutes"), ("max_min", "worst minutes")):
        out.add_row(label, "" if rep[key] is None else f"{rep[key]:,}")
    share = rep["within_target"]
    out.add_row("within 2 hours", "" if share is None else f"{share:.1%}")
    console.print(out)


@prepaid_app.command("time-out-commands")
def time_out_cmd(
    at: datetime | None = typer.Option(None, help="the time to judge by (ISO, default now)"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Connection commands without a final report ``command_timeout_h`` hours after their request:
    never sent → timed out (the supply stays as it was); sent → in doubt, and the relay is read
    back to settle it. Run it every hour."""
    from meter2cash.cis.prepaid.policy import PrepaidPolicy
    from meter2cash.cis.prepaid.queries import connection_commands
    from meter2cash.cis.prepaid.wallet import time_out_supply_commands
    from meter2cash.core.timeutil import utcnow

    policy = PrepaidPolicy()
    when = _aware(at) or utcnow()
    with platform() as p, p.sessions() as s:
        ids = [c.id for c in time_out_supply_commands(s, when, policy)]
        rows = connection_commands(s, ids=ids, limit=len(ids) or 1)
        s.commit()
    if as_json:
        print_json(
            {
                "at": when,
                "timeout_hours": policy.command_timeout_h,
                "timed_out": [r._asdict() for r in rows],
            }
        )
        return
    if not rows:
        console.print(f"no command older than {policy.command_timeout_h} h waits for an answer")
        return
    out = table(
        f"Timed out after {policy.command_timeout_h} h",
        Num("Id"),
        Key("Agreement"),
        "Action",
        "Status",
        "Reason",
        Key("Requested"),
    )
    for r in rows:
        out.add_row(
            str(r.id),
            r.service_agreement,
            r.action,
            r.status,
            r.reason,
            r.requested_at.strftime("%Y-%m-%d %H:%M"),
        )
    console.print(out)


@wallet_app.command("show")
def wallet_show(
    key: str = typer.Argument(..., help="service agreement number or account number"),
    charges: int = typer.Option(7, min=0, max=366, help="how many daily charges to show"),
    as_json: bool = JSON_OPTION,
) -> None:
    """A prepaid wallet: balance, supply state, alert level, last charges and recharges."""
    from meter2cash.cis.prepaid.policy import PrepaidPolicy
    from meter2cash.cis.prepaid.queries import wallet_view

    with platform() as p, p.sessions() as s:
        w = wallet_view(s, key, charges=charges)
    cur = p.settings.currency
    alerts = PrepaidPolicy().alerts
    level = alerts[w.alert_level] if 0 <= w.alert_level < len(alerts) else None
    if as_json:
        print_json(_wallet_json(w, cur, level))
        return
    console.print(
        f"[bold]Wallet of {escape(w.service_agreement)}[/bold] (account {escape(w.account)}): balance "
        f"[bold]{cur} {money(w.balance, cur)}[/bold] · supply {w.supply} · alert "
        f"{'none' if level is None else level + ' reached'}",
        highlight=False,
    )
    extra = [
        f"last recharge {cur} {money(w.last_recharge, cur)}",
        f"emergency credit {money(w.emergency_credit, cur)}" if w.emergency_credit else "",
        f"grace until {w.grace_until:%Y-%m-%d %H:%M}" if w.grace_until else "",
        f"charged up to {w.last_charged_on}" if w.last_charged_on else "not charged yet",
    ]
    console.print(" · ".join(x for x in extra if x), highlight=False)
    if w.charges:
        out = table("Daily charges", Key("Day"), Num("kWh"), Num(f"Amount {cur}"), "Tariff")
        for c in w.charges:
            out.add_row(str(c.day), quantity(c.kwh, grouped=True), money(c.amount, cur), c.tariff)
        console.print(out)
    if w.recharges:
        out = table("Recharges", Key("Receipt"), Key("Received"), "Channel", Num(f"Amount {cur}"), "Status")
        for r in w.recharges:
            out.add_row(r.receipt_number, str(r.received_on), r.channel, money(r.amount, cur), r.status)
        console.print(out)
    if w.commands:
        out = table("Connection commands", Num("Id"), "Action", "Status", Key("Requested"), "Reason")
        for cmd in w.commands:
            out.add_row(str(cmd.id), cmd.action, cmd.status, f"{cmd.requested_at:%Y-%m-%d %H:%M}", cmd.reason)
        console.print(out)


def _wallet_json(w: Any, cur: str, level: str | None) -> dict[str, Any]:
    return {
        "account": w.account,
        "service_agreement": w.service_agreement,
        "currency": cur,
        "balance": money(w.balance, cur, grouped=False),
        "supply": w.supply,
        "alert_level": w.alert_level,
        "alert": level,
        "last_recharge": money(w.last_recharge, cur, grouped=False),
        "emergency_credit": money(w.emergency_credit, cur, grouped=False),
        "grace_until": w.grace_until,
        "last_charged_on": w.last_charged_on,
        "charges": [
            {
                "day": c.day,
                "kwh": quantity(c.kwh),
                "amount": money(c.amount, cur, grouped=False),
                "tariff": c.tariff,
            }
            for c in w.charges
        ],
        "recharges": [r._asdict() | {"amount": money(r.amount, cur, grouped=False)} for r in w.recharges],
        "commands": [c._asdict() for c in w.commands],
    }
