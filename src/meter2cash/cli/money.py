"""``m2c pay``, ``m2c prepaid``, ``m2c collections``, ``m2c gateway-sandbox``, ``m2c notify`` and the
ledger reports (``m2c ledger statement|ageing|collections|revenue``)."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from zoneinfo import ZoneInfo

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from meter2cash.cli.billing import ledger_app
from meter2cash.cli.common import console, err_console, platform

prepaid_app = typer.Typer(
    help="Prepaid wallets: the daily charge run, wallets, connection commands.", no_args_is_help=True
)
collections_app = typer.Typer(help="Collections: dunning, promises to pay, write-off.", no_args_is_help=True)
notify_app = typer.Typer(help="Notifications: send pending SMS and e-mail.", no_args_is_help=True)


def _today(tz: str) -> date:
    return datetime.now(ZoneInfo(tz)).date()


def _amount(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation as exc:
        raise typer.BadParameter(f"{text!r} is not an amount") from exc


def _table(title: str, rows: list[dict[str, object]]) -> Table:
    table = Table(title=title)
    if not rows:
        table.add_column("result")
        table.add_row("nothing in this period")
    for col in rows[0] if rows else []:
        table.add_column(str(col), justify="right" if col in ("amount", "count") else "left")
    for r in rows:
        table.add_row(*(str(v) for v in r.values()))
    return table


def pay(
    account: str = typer.Argument(..., help="account number"),
    amount: str = typer.Argument(..., help="amount, e.g. 450.00"),
    channel: str = typer.Option("cash", help="cash, cheque, agent or online"),
    purpose: str = typer.Option("payment", help="payment, recharge or deposit"),
    reference: str = typer.Option("", help="cheque number, agent reference…"),
    on: datetime | None = typer.Option(None, formats=["%Y-%m-%d"], help="date received (default today)"),
    batch: Path | None = typer.Option(
        None, help="an agent batch CSV instead of one payment (ACCOUNT/AMOUNT ignored)"
    ),
) -> None:
    """Record a payment at an office, or load an agent batch file (bad lines reported, good ones kept)."""
    with platform() as p, p.sessions() as s:
        cur = p.settings.currency
        if batch is not None:
            from meter2cash.cis.agent_batch import load_agent_batch

            result = load_agent_batch(s, batch.read_text(encoding="utf-8"), currency=cur, source=str(batch))
            s.commit()
            console.print(f"recorded {len(result.receipts)} payment(s), total {cur} {result.total}")
            for prob in result.problems:
                where = escape(f"[{prob.field}]") if prob.field else ""
                err_console.print(f"  line {prob.line} {where} {prob.code}: {escape(prob.message)}")
            if result.problems:
                raise typer.Exit(1)
            return
        from meter2cash.cis.payments import account_by_number, account_summary, receive
        from meter2cash.cis.prepaid_wallet import recharge_account

        acct = account_by_number(s, account)
        kw = dict(channel=channel, currency=cur, received_on=on.date() if on else None, reference=reference)
        if purpose == "recharge":
            pmt = recharge_account(s, acct.id, _amount(amount), tz=p.settings.timezone, **kw)  # type: ignore[arg-type]
        else:
            pmt = receive(s, acct.id, _amount(amount), purpose=purpose, **kw)  # type: ignore[arg-type]
        summary = account_summary(s, acct.id)
        s.commit()
    console.print(f"receipt {pmt.receipt_number}: {cur} {pmt.amount} from {account} by {channel} ({purpose})")
    console.print(
        f"  receivable {summary['receivable']}  wallet {summary['wallet']}  deposit {summary['deposit_held']}"
    )


@prepaid_app.command("run-daily")
def run_daily_cmd(
    day: datetime = typer.Option(..., "--date", formats=["%Y-%m-%d"], help="local day to charge"),
    at: datetime | None = typer.Option(None, help="when balances are checked (ISO, default end of the day)"),
) -> None:
    """Charge every prepaid wallet for a day; fire alerts; request disconnects and reconnects."""
    from meter2cash.cis.prepaid import run_daily

    with platform() as p, p.sessions() as s:
        with Progress(
            TextColumn("charging"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
        ) as bar:
            task = bar.add_task("charge", total=None)
            result = run_daily(
                s,
                day.date(),
                tz=p.settings.timezone,
                currency=p.settings.currency,
                at=at.astimezone() if at else None,
                on_progress=lambda d, t: bar.update(task, completed=d, total=t),
            )
        s.commit()
    console.print_json(json.dumps(result.to_dict()))


@prepaid_app.command("command")
def command_cmd(
    command_id: int, status: str = typer.Argument(..., help="sent, acknowledged, executed, failed")
) -> None:
    """Report progress of a disconnect/reconnect command (from the head-end)."""
    from meter2cash.cis.prepaid_wallet import advance_command

    with platform() as p, p.sessions() as s:
        cmd = advance_command(s, command_id, status)
        s.commit()
        console.print(f"command {cmd.id} ({cmd.action}) is {cmd.status}")


@prepaid_app.command("reconnects")
def reconnects_cmd() -> None:
    """Reconnection times against the 2-hour target."""
    from meter2cash.cis.prepaid_wallet import reconnect_report

    with platform() as p, p.sessions() as s:
        console.print_json(json.dumps(reconnect_report(s)))


@collections_app.command("run")
def collections_run(
    on: datetime | None = typer.Option(
        None, "--date", formats=["%Y-%m-%d"], help="day of the run (default today)"
    ),
) -> None:
    """Surcharges, reminders, notices and disconnection requests for overdue debt."""
    from meter2cash.cis.collections import run_collections

    with platform() as p, p.sessions() as s:
        day = on.date() if on else _today(p.settings.timezone)
        result = run_collections(s, day, currency=p.settings.currency, tz=p.settings.timezone)
        s.commit()
    console.print_json(json.dumps(result.to_dict()))


@collections_app.command("write-off")
def write_off_cmd(
    account: str, amount: str, reason: str = typer.Option(..., help="why the debt is written off")
) -> None:
    """Write off bad debt of an account (oldest items first)."""
    from meter2cash.cis.collections import write_off
    from meter2cash.cis.payments import account_by_number

    with platform() as p, p.sessions() as s:
        acct = account_by_number(s, account)
        doc = write_off(
            s,
            acct.id,
            _amount(amount),
            on=_today(p.settings.timezone),
            currency=p.settings.currency,
            reason=reason,
        )
        s.commit()
    console.print(f"written off {amount} on {account} ({doc.receipt_number})")


@collections_app.command("promise")
def promise_cmd(account: str, amount: str, due: datetime = typer.Option(..., formats=["%Y-%m-%d"])) -> None:
    """Record a promise to pay; dunning waits until the date."""
    from meter2cash.cis.collections import promise_to_pay
    from meter2cash.cis.payments import account_by_number

    with platform() as p, p.sessions() as s:
        promise_to_pay(s, account_by_number(s, account).id, _amount(amount), due.date(), p.settings.currency)
        s.commit()
    console.print(f"promise by {account} to pay {amount} by {due.date()}")


@notify_app.command("send")
def notify_send() -> None:
    """Send pending notifications through the configured SMS and SMTP adapters (M2C_NOTIFY_*)."""
    from meter2cash.cis.notifications import send_pending
    from meter2cash.integration.notify import adapters_from_settings

    sms, email = adapters_from_settings()
    with platform() as p, p.sessions() as s:
        result = send_pending(s, sms, email)
        s.commit()
    console.print_json(json.dumps(result.to_dict()))


def gateway_sandbox(
    port: int = typer.Option(8765, help="port on 127.0.0.1"),
    webhook: str = typer.Option(
        "http://127.0.0.1:8000/api/v1/payments/webhook", help="where to send webhooks"
    ),
    secret: str = typer.Option("", help="signing secret (default M2C_GATEWAY_SECRET)"),
) -> None:
    """Run the sandbox payment gateway on loopback until interrupted."""
    from meter2cash.config import get_settings
    from meter2cash.integration.gateway.sandbox import SandboxGateway

    gw = SandboxGateway(secret or get_settings().gateway_secret, webhook, port=port, verbose=True)
    console.print(f"sandbox gateway on {gw.url}, webhooks to {webhook}")
    try:
        gw.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        gw.stop()


@ledger_app.command("statement")
def statement_cmd(account: str) -> None:
    """A customer's ledger lines with balances of receivables, wallet and deposit."""
    from meter2cash.cis.payments import account_by_number
    from meter2cash.cis.reports import customer_statement

    with platform() as p, p.sessions() as s:
        st = customer_statement(s, account_by_number(s, account).id)
    console.print(_table(f"Statement {account}", st["lines"]))
    console.print(f"receivable {st['receivable']}  wallet {st['wallet']}  deposit held {st['deposit_held']}")


@ledger_app.command("ageing")
def ageing_cmd(as_of: datetime | None = typer.Option(None, formats=["%Y-%m-%d"])) -> None:
    """Open receivables by days past due: 0–30, 31–60, 61–90, 90+."""
    from meter2cash.cis.reports import ageing

    with platform() as p, p.sessions() as s:
        rep = ageing(s, as_of.date() if as_of else _today(p.settings.timezone)).to_dict()
    rows = rep["rows"] + [{"account": "total", **rep["totals"], "credit": "", "total": ""}]
    console.print(_table(f"Ageing as of {rep['as_of']}", rows))


@ledger_app.command("collections")
def collections_report(
    first: datetime = typer.Option(..., "--from", formats=["%Y-%m-%d"]),
    last: datetime = typer.Option(..., "--to", formats=["%Y-%m-%d"]),
) -> None:
    """Money received per channel and purpose."""
    from meter2cash.cis.reports import collections_by_channel

    with platform() as p, p.sessions() as s:
        console.print(_table("Collections by channel", collections_by_channel(s, first.date(), last.date())))


@ledger_app.command("revenue")
def revenue_report(
    first: datetime = typer.Option(..., "--from", formats=["%Y-%m-%d"]),
    last: datetime = typer.Option(..., "--to", formats=["%Y-%m-%d"]),
) -> None:
    """Revenue and taxes per tariff and ledger account."""
    from meter2cash.cis.reports import revenue_by_tariff

    with platform() as p, p.sessions() as s:
        console.print(
            _table("Revenue by tariff and component", revenue_by_tariff(s, first.date(), last.date()))
        )


def register(app: typer.Typer) -> None:
    """Add the money-in commands to the ``m2c`` root."""
    app.command("pay")(pay)
    app.command("gateway-sandbox")(gateway_sandbox)
    app.add_typer(prepaid_app, name="prepaid")
    app.add_typer(collections_app, name="collections")
    app.add_typer(notify_app, name="notify")
