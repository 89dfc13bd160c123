"""``m2c ledger``: the trial balance and the receivables reports."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import typer

from meter2cash.cli.common import console, err_console, platform
from meter2cash.cli.render import Key, Num, money, print_json, table

app = typer.Typer(help="The double-entry ledger and the receivables reports.", no_args_is_help=True)
JSON_OPTION = typer.Option(False, "--json", help="print the result as JSON")


def today(tz: str) -> date:
    return datetime.now(ZoneInfo(tz)).date()


def _money_fields(rows: list[dict[str, Any]], fields: tuple[str, ...], currency: str) -> list[dict[str, Any]]:
    """``rows`` with the amounts of ``fields`` in the currency's minor units (JSON: no grouping)."""
    return [{k: money(v, currency, grouped=False) if k in fields else v for k, v in r.items()} for r in rows]


@app.command("trial-balance")
def trial_balance_cmd(as_json: bool = JSON_OPTION) -> None:
    """Debits and credits per ledger account; the total must be 0.00 (exit 1 otherwise)."""
    from meter2cash.cis.ledger.journal import trial_balance

    with platform() as p, p.sessions() as s:
        tb = trial_balance(s)
    cur = p.settings.currency
    if as_json:
        print_json(
            {
                "rows": [
                    {
                        "code": r.code,
                        "name": r.name,
                        "debit": money(r.debit, cur, grouped=False),
                        "credit": money(r.credit, cur, grouped=False),
                        "balance": money(r.balance, cur, grouped=False),
                    }
                    for r in tb.rows
                ],
                "total_debit": money(tb.total_debit, cur, grouped=False),
                "total_credit": money(tb.total_credit, cur, grouped=False),
                "total": money(tb.total, cur, grouped=False),
            }
        )
    else:
        out = table("Trial balance", Key("Account"), "Name", Num("Debit"), Num("Credit"), Num("Balance"))
        for r in tb.rows:
            out.add_row(r.code, r.name, money(r.debit, cur), money(r.credit, cur), money(r.balance, cur))
        out.add_row(
            "",
            "total",
            money(tb.total_debit, cur),
            money(tb.total_credit, cur),
            money(tb.total, cur),
            style="bold",
        )
        console.print(out)
    if tb.total != 0:
        err_console.print(f"[red]the ledger does not balance: {money(tb.total, cur)}[/red]")
        raise typer.Exit(1)


@app.command("statement")
def statement_cmd(account: str, as_json: bool = JSON_OPTION) -> None:
    """A customer's ledger lines with balances of receivables, wallet and deposit."""
    from meter2cash.cis.payments.receipts import account_by_number
    from meter2cash.cis.reports.receivables import customer_statement

    with platform() as p, p.sessions() as s:
        st = customer_statement(s, account_by_number(s, account).id)
    cur = p.settings.currency
    balances = {k: money(st[k], cur, grouped=False) for k in ("receivable", "wallet", "deposit_held")}
    if as_json:
        print_json({"account": account, **balances, "lines": _money_fields(st["lines"], ("amount",), cur)})
        return
    out = table(
        f"Statement {account}",
        Key("Date"),
        "Kind",
        Key("Reference"),
        "Memo",
        Key("A/c"),
        Num(f"Amount {cur}"),
        optional=("A/c", "Kind"),
        min_width={"Memo": 24},
    )
    for ln in st["lines"]:
        out.add_row(
            ln["date"],
            ln["kind"],
            ln["reference"],
            ln["memo"],
            ln["ledger_account"],
            money(ln["amount"], cur),
        )
    if not st["lines"]:
        out.add_row("", "no ledger lines", "", "", "", "")
    console.print(out)
    console.print(
        f"receivable {money(st['receivable'], cur)}  wallet {money(st['wallet'], cur)}"
        f"  deposit held {money(st['deposit_held'], cur)}",
        highlight=False,
    )


@app.command("ageing")
def ageing_cmd(
    as_of: datetime | None = typer.Option(
        None, formats=["%Y-%m-%d"], help="day of the report (default today)"
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Open receivables by days past due: 0–30, 31–60, 61–90, 90+."""
    from meter2cash.cis.reports.receivables import BUCKETS, ageing

    with platform() as p, p.sessions() as s:
        rep = ageing(s, as_of.date() if as_of else today(p.settings.timezone)).to_dict()
    cur = p.settings.currency
    amounts = (*BUCKETS, "credit", "total")
    if as_json:
        print_json(
            {
                "as_of": rep["as_of"],
                "rows": _money_fields(rep["rows"], amounts, cur),
                "totals": _money_fields([rep["totals"]], amounts, cur)[0],
            }
        )
        return
    out = table(f"Ageing as of {rep['as_of']} ({cur})", Key("Account"), *(Num(b) for b in amounts))
    for r in rep["rows"]:
        out.add_row(r["account"], *(money(r[b], cur) for b in amounts))
    if not rep["rows"]:
        out.add_row("no open items", *("" for _ in amounts))
    else:
        totals = {b: sum((Decimal(r[b]) for r in rep["rows"]), Decimal(0)) for b in amounts}
        out.add_row("total", *(money(totals[b], cur) for b in amounts), style="bold")
    console.print(out)


@app.command("collections")
def collections_report(
    first: datetime = typer.Option(..., "--from", formats=["%Y-%m-%d"]),
    last: datetime = typer.Option(..., "--to", formats=["%Y-%m-%d"]),
    as_json: bool = JSON_OPTION,
) -> None:
    """Money received per channel and purpose."""
    from meter2cash.cis.reports.receivables import collections_by_channel

    with platform() as p, p.sessions() as s:
        rows = collections_by_channel(s, first.date(), last.date())
    cur = p.settings.currency
    if as_json:
        print_json({"from": first.date(), "to": last.date(), "rows": _money_fields(rows, ("amount",), cur)})
        return
    out = table(
        f"Collections {first.date()} to {last.date()}",
        "Channel",
        "Purpose",
        Num("Receipts"),
        Num(f"Amount {cur}"),
    )
    for r in rows:
        out.add_row(r["channel"], r["purpose"], f"{r['count']:,}", money(r["amount"], cur))
    if not rows:
        out.add_row("nothing received", "", "", "")
    console.print(out)


@app.command("revenue")
def revenue_report(
    first: datetime = typer.Option(..., "--from", formats=["%Y-%m-%d"]),
    last: datetime = typer.Option(..., "--to", formats=["%Y-%m-%d"]),
    as_json: bool = JSON_OPTION,
) -> None:
    """Revenue and taxes per tariff and ledger account."""
    from meter2cash.cis.reports.receivables import revenue_by_tariff

    with platform() as p, p.sessions() as s:
        rows = revenue_by_tariff(s, first.date(), last.date())
    cur = p.settings.currency
    if as_json:
        print_json({"from": first.date(), "to": last.date(), "rows": _money_fields(rows, ("amount",), cur)})
        return
    out = table(
        f"Revenue {first.date()} to {last.date()}",
        Key("Tariff"),
        Key("Account"),
        "Name",
        Num(f"Amount {cur}"),
    )
    for r in rows:
        out.add_row(r["tariff"], r["ledger_account"], r["name"], money(r["amount"], cur))
    if not rows:
        out.add_row("no revenue", "", "", "")
    console.print(out)
