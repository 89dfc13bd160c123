"""``m2c pay``, ``m2c collections``, ``m2c notify`` and ``m2c gateway-sandbox``."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from meter2cash.cli.common import console, err_console, platform, read_text
from meter2cash.cli.ledger import today
from meter2cash.cli.render import money, print_json, summary_table
from meter2cash.core.money import parse_money

collections_app = typer.Typer(help="Collections: dunning, promises to pay, write-off.", no_args_is_help=True)
notify_app = typer.Typer(help="Notifications: send pending SMS and e-mail.", no_args_is_help=True)
JSON_OPTION = typer.Option(False, "--json", help="print the result as JSON")


def amount_arg(text: str, currency: str, field: str = "AMOUNT") -> Decimal:
    """A positive amount typed on the command line, in the currency's minor units at most
    (``money.invalid`` otherwise)."""
    return parse_money(text, currency, field=field)


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
    as_json: bool = JSON_OPTION,
) -> None:
    """Record a payment at an office, or load an agent batch file.

    A batch stores its good lines and lists each bad one (exit 1 when some were rejected)."""
    if batch is not None:
        _pay_batch(batch, as_json)
        return
    from meter2cash.cis.payments.receipts import account_by_number, account_summary, receive
    from meter2cash.cis.prepaid.wallet import recharge_account

    with platform() as p, p.sessions() as s:
        cur = p.settings.currency
        value = amount_arg(amount, cur)
        acct = account_by_number(s, account)
        kw: dict[str, Any] = dict(
            channel=channel, currency=cur, received_on=on.date() if on else None, reference=reference
        )
        if purpose == "recharge":
            pmt = recharge_account(s, acct.id, value, tz=p.settings.timezone, **kw)
        else:
            pmt = receive(s, acct.id, value, purpose=purpose, **kw)
        summary = account_summary(s, acct.id)
        s.commit()
        receipt = {
            "receipt_number": pmt.receipt_number,
            "account": account,
            "amount": money(pmt.amount, cur, grouped=False),
            "currency": cur,
            "channel": channel,
            "purpose": purpose,
            "received_on": pmt.received_on,
        }
    balances = {
        k: money(summary[k], cur, grouped=False)  # type: ignore[arg-type]
        for k in ("receivable", "wallet", "deposit_held")
    }
    if as_json:
        print_json(receipt | balances)
        return
    console.print(
        f"receipt {receipt['receipt_number']}: {cur} {money(pmt.amount, cur)} from {escape(account)}"
        f" by {escape(channel)} ({escape(purpose)})",
        highlight=False,
    )
    console.print(
        f"  receivable {balances['receivable']}  wallet {balances['wallet']}"
        f"  deposit {balances['deposit_held']}",
        highlight=False,
    )


def _pay_batch(batch: Path, as_json: bool) -> None:
    from meter2cash.cis.payments.agents import load_agent_batch

    text = read_text(batch)
    with platform() as p, p.sessions() as s:
        cur = p.settings.currency
        result = load_agent_batch(s, text, currency=cur, source=str(batch))
        s.commit()
    if as_json:
        print_json(result.to_dict() | {"total": money(result.total, cur, grouped=False)})
    else:
        console.print(f"recorded {len(result.receipts)} payment(s), total {cur} {money(result.total, cur)}")
        for prob in result.problems:
            where = escape(f"[{prob.field}]") if prob.field else ""
            err_console.print(
                f"  line {prob.line} {where} {prob.code}: {escape(prob.message)}", highlight=False
            )
    if result.problems:
        raise typer.Exit(1)


@collections_app.command("run")
def collections_run(
    on: datetime | None = typer.Option(
        None, "--date", formats=["%Y-%m-%d"], help="day of the run (default today)"
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Surcharges, reminders, notices and disconnection requests for overdue debt."""
    from meter2cash.cis.collections.dunning import run_collections

    with platform() as p, p.sessions() as s:
        day = on.date() if on else today(p.settings.timezone)
        result = run_collections(s, day, currency=p.settings.currency, tz=p.settings.timezone)
        s.commit()
    cur = p.settings.currency
    out = result.to_dict()
    if as_json:
        print_json(out)
        return
    console.print(summary_table(f"Collections run {out.pop('on')}", out, cur))


@collections_app.command("write-off")
def write_off_cmd(
    account: str,
    amount: str,
    reason: str = typer.Option(..., help="why the debt is written off"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Write off bad debt of an account (oldest items first)."""
    from meter2cash.cis.collections.dunning import write_off
    from meter2cash.cis.payments.receipts import account_by_number

    with platform() as p, p.sessions() as s:
        cur = p.settings.currency
        value = amount_arg(amount, cur)
        acct = account_by_number(s, account)
        doc = write_off(s, acct.id, value, on=today(p.settings.timezone), currency=cur, reason=reason)
        s.commit()
    if as_json:
        print_json(
            {
                "account": account,
                "amount": money(value, cur, grouped=False),
                "document": doc.receipt_number,
                "reason": reason,
            }
        )
        return
    console.print(f"written off {cur} {money(value, cur)} on {escape(account)} ({doc.receipt_number})")


@collections_app.command("promise")
def promise_cmd(
    account: str,
    amount: str,
    due: datetime = typer.Option(..., formats=["%Y-%m-%d"]),
    as_json: bool = JSON_OPTION,
) -> None:
    """Record a promise to pay; dunning waits until the date."""
    from meter2cash.cis.collections.dunning import promise_to_pay
    from meter2cash.cis.payments.receipts import account_by_number

    with platform() as p, p.sessions() as s:
        cur = p.settings.currency
        value = amount_arg(amount, cur)
        promise_to_pay(s, account_by_number(s, account).id, value, due.date(), cur)
        s.commit()
    if as_json:
        print_json({"account": account, "amount": money(value, cur, grouped=False), "due": due.date()})
        return
    console.print(f"promise by {escape(account)} to pay {cur} {money(value, cur)} by {due.date()}")


@notify_app.command("send")
def notify_send(as_json: bool = JSON_OPTION) -> None:
    """Send pending notifications through the configured SMS and SMTP adapters (M2C_NOTIFY_*)."""
    from meter2cash.notify.sender import send_pending

    with platform() as p, p.sessions() as s:
        result = send_pending(s, p.sms, p.email)
        s.commit()
    out = result.to_dict()
    if as_json:
        print_json(out)
        return
    console.print(summary_table("Notifications", out, ""))


def gateway_sandbox(
    port: int = typer.Option(8765, help="port on 127.0.0.1"),
    webhook: str = typer.Option(
        "http://127.0.0.1:8000/api/v1/payments/webhook", help="where to send webhooks"
    ),
    secret: str = typer.Option("", help="signing secret (default M2C_GATEWAY_SECRET)"),
) -> None:
    """Run the sandbox payment gateway on loopback until interrupted."""
    from meter2cash.config import get_settings
    from meter2cash.payment_gateway.sandbox import SandboxGateway

    gw = SandboxGateway(secret or get_settings().gateway_secret, webhook, port=port, verbose=True)
    console.print(f"sandbox gateway on {gw.url}, webhooks to {webhook}")
    try:
        gw.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        gw.stop()
